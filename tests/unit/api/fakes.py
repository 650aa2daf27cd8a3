"""Fakes and sample data for the API's unit tests: in-memory stand-ins for the saga table and Step Functions
(so "nothing was written, nothing started" is a plain look at the fakes), and API Gateway REST proxy events."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from saga_records import SagaAlreadyExists, SagaStatus
from saga_records.starter import SagaSpec

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderFulfillment"
STEPS = ["reserve_inventory", "process_payment", "create_shipment", "send_confirmation"]
ORDERS = SagaSpec("OrderFulfillment", STATE_MACHINE_ARN, tuple(STEPS))
# A second saga type behind the same API: no id field, so each start is named by its Idempotency-Key.
PARCELS = SagaSpec(
    "ParcelDelivery", "arn:aws:states:us-east-1:123456789012:stateMachine:ParcelDelivery", ("pick_up", "deliver")
)
MAX_REQUEST_BYTES = 65_536


class ParcelInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    parcel: str
    weight_grams: int


PARCEL = {"parcel": "p-1", "weight_grams": 1200}
ORDER: dict[str, Any] = {
    "order_id": "ord-0001",
    "customer": {"customer_id": "c-1", "email": "ana@example.com"},
    "items": [
        {"sku": "SKU-KEYBOARD", "quantity": 1},
        {"sku": "SKU-MOUSE", "quantity": 2},
    ],
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {
        "name": "Ana",
        "line1": "1 Main St",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
}


class FakeMac:
    """KMS's HMAC key, in memory: a MAC this object made verifies, any other does not."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self.signed = 0
        self.verified = 0

    def sign(self, message: bytes) -> bytes:
        self.signed += 1
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def verify(self, message: bytes, mac: bytes) -> bool:
        self.verified += 1
        return hmac.compare_digest(self.sign(message), mac)


class FakeBucket:
    """The start-rate buckets: `refuse_for_us` set, every start is refused for that long; else taken and counted."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.refuse_for_us: int | None = None
        self.rooms: dict[str, tuple[int | None, int]] = {}  # saga type -> (read at, room left)

    def take(self, saga_type, limits, now_us):
        if self.refuse_for_us is not None:
            return self.refuse_for_us
        self.taken.append(saga_type)
        return None

    def take_room(self, saga_type, limits, now_us, read_every_us, fullest):
        """The backlog room, as the admission table keeps it (tested on moto in test_admission.py)."""
        read_at, room = self.rooms.get(saga_type, (None, 0))
        if read_at is None or read_at <= now_us - read_every_us:
            waiting = fullest()
            if waiting is None:
                return None
            read_at, room = now_us, limits.max_queue_backlog - waiting
        self.rooms[saga_type] = (read_at, max(room - 1, 0))
        return room > 0


class FakeBacklogs:
    """Participant queues of each saga type, `depth` commands waiting in each; `reads` counts the reads."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}
        self.reads = 0

    def queues(self, saga_type):
        return [f"https://sqs/{saga_type}-first", f"https://sqs/{saga_type}-second"]

    def waiting(self, queue_urls):
        self.reads += 1
        return {url: self.depth.get(url, 0) for url in queue_urls}


class FakeRecords:
    """The saga table's behaviour that matters here: conditional create, status moves, the by_status index."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._clock = 0

    def create(self, *, saga_id, saga_type, steps, saga_input, request_hash=None):
        with self._lock:
            if saga_id in self.items:
                raise SagaAlreadyExists(copy.deepcopy(self.items[saga_id]))
            self._clock += 1
            now = f"2026-01-01T00:00:{self._clock:02d}.000Z"
            item = {
                "saga_id": saga_id,
                "saga_type": saga_type,
                "status": SagaStatus.STARTED.value,
                "current_step": None,
                "steps": {step: {"status": "NOT_STARTED"} for step in steps},
                "input": copy.deepcopy(saga_input),
                "request_hash": request_hash,
                "created_at": now,
                "updated_at": now,
            }
            self.items[saga_id] = item
            return copy.deepcopy(item)

    def get(self, saga_id):
        with self._lock:
            return copy.deepcopy(self.items.get(saga_id))

    def mark_running(self, saga_id, execution_arn, first_step=None):
        with self._lock:
            item = self.items[saga_id]
            item["execution_arn"] = execution_arn
            if item["status"] == SagaStatus.STARTED:
                item["status"] = SagaStatus.PENDING.value
                if first_step is not None and item["steps"][first_step]["status"] == "NOT_STARTED":
                    item["current_step"] = first_step
                    item["steps"][first_step]["status"] = "RUNNING"
            return True

    def page_by_status(self, status, *, limit, start_key=None, saga_type=None):
        with self._lock:
            matching = sorted(
                (
                    item
                    for item in self.items.values()
                    if item["status"] == status.value and saga_type in (None, item["saga_type"])
                ),
                key=lambda item: item["created_at"],
                reverse=True,
            )
        if start_key:
            matching = [item for item in matching if item["created_at"] < start_key["created_at"]]
        page = matching[:limit]
        last = page[-1] if len(matching) > limit else None
        key = {"saga_id": last["saga_id"], "status": last["status"], "created_at": last["created_at"]} if last else None
        return copy.deepcopy(page), key


class FakeStepFunctions:
    """StartExecution as AWS answers it: same name and input -> the same execution; otherwise ExecutionAlreadyExists."""

    def __init__(self) -> None:
        self.executions: dict[str, str] = {}  # name -> input
        self.failures_left = 0
        self.calls = 0
        self._lock = threading.Lock()

    def start_execution(self, *, stateMachineArn, name, input):
        with self._lock:
            self.calls += 1
            if self.failures_left:
                self.failures_left -= 1
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution"
                )
            if name in self.executions and self.executions[name] != input:
                raise ClientError({"Error": {"Code": "ExecutionAlreadyExists", "Message": name}}, "StartExecution")
            self.executions[name] = input
        return {"executionArn": stateMachineArn.replace(":stateMachine:", ":execution:") + f":{name}"}


@dataclass
class ApiUnderTest:
    records: FakeRecords
    sfn: FakeStepFunctions
    resolver: Any
    mac: FakeMac
    bucket: FakeBucket
    backlogs: FakeBacklogs

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | str | dict | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        path_parameters: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        encoded = None
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, bytes):
            if _utf8(body):
                body = body.decode("utf-8")
            else:  # API Gateway hands a body that is not text to the function base64-encoded
                encoded, body = base64.b64encode(body).decode(), None
        event = rest_event(
            method, path, body=body, headers=headers, query=query, path_parameters=path_parameters, base64_body=encoded
        )
        answer = self.resolver.resolve(event, LambdaContextStub())
        headers = dict(answer.get("headers") or {})
        headers |= {name: ", ".join(values) for name, values in (answer.get("multiValueHeaders") or {}).items()}
        return answer["statusCode"], json.loads(answer["body"]), headers


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def rest_event(method, path, *, body=None, headers=None, query=None, path_parameters=None, base64_body=None):
    """An API Gateway REST proxy event (payload v1), as the gateway hands it to the function."""
    resource = f"/{path.split('/')[1]}/{{id}}" if path_parameters else path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {name: [value] for name, value in (headers or {}).items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "accessKey": "AKIDEXAMPLE"},
        },
        "body": base64_body if base64_body is not None else body,
        "isBase64Encoded": base64_body is not None,
    }


class LambdaContextStub:
    function_name = "saga-api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:saga-api"
    aws_request_id = "req-1"
