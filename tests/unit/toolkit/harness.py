"""What the toolkit's tests run participants against: Step Functions' side of task tokens (a fake: a task board), the
state machine's part for one saga (commands built from the compiled ASL, the terminal record writes), the four
services on moto, and a count of the DynamoDB requests moto serves."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from moto.core.botocore_stubber import BotocoreStubber

from local_runtime.cloud import LocalLambdaContext
from participant_toolkit import ParticipantSettings, SagaParticipant
from participant_toolkit.callbacks import HeartbeatSchedule, LateCallback, TaskCallbacks
from saga_records import SagaRecordRepository, SagaStatus
from services.inventory.repository import InventoryRepository
from services.inventory.service import InventoryService
from services.notification.repository import NotificationRepository
from services.notification.service import NotificationService
from services.payment.repository import PaymentRepository
from services.payment.service import PaymentService
from services.shipping.repository import ShippingRepository
from services.shipping.service import ShippingService
from statemachines import SagaDefinition
from statemachines.compiler import compile_saga
from tests.sagas.order_fulfillment.reconciliation import Reconciliation, reconcile

SAGA_TABLE = "sagas"
IDEMPOTENCY_TABLE = "idempotency"
SERVICE_TABLES = {
    "InventoryService": "inventory",
    "PaymentService": "payments",
    "ShippingService": "shipping",
    "NotificationService": "notifications",
}
SKU = "SKU-KEYBOARD"
INITIAL_STOCK = 10
UNIT_PRICE_CENTS = 1250  # the catalog's price of SKU
_tokens = itertools.count(1)


def order(*, country: str = "DE") -> dict[str, Any]:
    return {
        "order_id": f"ord-{uuid.uuid4().hex[:8]}",
        "customer": {"customer_id": "c-1", "email": "ana@example.com"},
        "items": [{"sku": SKU, "quantity": 2}],
        "payment": {"card_token": "tok_visa"},
        "shipping_address": {
            "name": "Ana",
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": country,
        },
    }


class Crash(BaseException):
    """The participant's process dies here: no Python handler runs, so an idempotency lock taken stays taken."""


class TaskBoard:
    """Step Functions' side of task tokens: a token takes one answer while its task waits; after that, or once the
    task timed out, every answer and heartbeat is refused (LateCallback). Records what it took and what it refused.

    `hold_next_answer()` makes the next answer wait inside the call until `release()`: Step Functions answering slowly.
    `crash_on_answer(accepted=...)` makes the next answer crash the participant, before or after Step Functions took it.
    """

    def __init__(self) -> None:
        self.waiting: set[str] = set()
        self.answers: list[tuple[str, str, Any]] = []  # (kind, token, output or error), as taken
        self.refused: list[tuple[str, str]] = []  # (kind, token)
        self.beats: list[str] = []
        self.causes: list[str] = []  # the cause of each failure taken
        self._lock = threading.Lock()
        self._hold: threading.Event | None = None
        self._holds: list[threading.Event] = []
        self.answering = threading.Event()
        self._crash: bool | None = None

    def open_task(self) -> str:
        token = f"token-{next(_tokens)}-{uuid.uuid4().hex}"
        with self._lock:
            self.waiting.add(token)
        return token

    def time_out(self, token: str) -> None:
        with self._lock:
            self.waiting.discard(token)

    def hold_next_answer(self) -> threading.Event:
        self.answering.clear()
        self._hold = threading.Event()
        self._holds.append(self._hold)
        return self._hold

    def release_all(self) -> None:
        """Let every held answer go on (a test that failed half way leaves no participant thread waiting)."""
        for hold in self._holds:
            hold.set()

    def crash_on_answer(self, *, accepted: bool) -> None:
        self._crash = accepted

    # --- the TaskCallbacks interface ---

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        self._take("succeed", task_token, output)

    def fail(self, task_token: str, error: str, cause: str) -> None:
        self._take("fail", task_token, error)
        self.causes.append(cause)

    def heartbeat(self, task_token: str) -> None:
        with self._lock:
            if task_token not in self.waiting:
                raise LateCallback("TaskTimedOut")
            self.beats.append(task_token)

    def heartbeats_for(self, schedule: HeartbeatSchedule) -> Any:
        return TaskCallbacks.heartbeats_for(self, schedule)  # type: ignore[arg-type]

    def _take(self, kind: str, token: str, detail: Any) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            self.answering.set()
            hold.wait(10)
        crash, self._crash = self._crash, None
        if crash is False:
            raise Crash("before the answer reached Step Functions")
        with self._lock:
            if token not in self.waiting:
                self.refused.append((kind, token))
                raise LateCallback("InvalidToken")
            self.waiting.discard(token)
            self.answers.append((kind, token, copy.deepcopy(detail)))
        if crash is True:
            raise Crash("after Step Functions took the answer")

    def answered(self, token: str) -> list[str]:
        return [kind for kind, answered, _ in self.answers if answered == token]


class FakeDeliveries:
    """SQS's side of bringing a delivery back early: what the toolkit asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int]] = []

    def redeliver_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.requests.append((queue_arn, receipt_handle, seconds))


@dataclass
class Services:
    """The four services of the order saga on moto, each with its real repository."""

    inventory: InventoryRepository
    payments: PaymentRepository
    shipping: ShippingRepository
    notifications: NotificationRepository
    domain: dict[str, dict[str, Any]] = field(default_factory=dict)  # service -> {command: domain function}

    @classmethod
    def on_moto(cls) -> Services:
        services = cls(
            InventoryRepository(SERVICE_TABLES["InventoryService"]),
            PaymentRepository(SERVICE_TABLES["PaymentService"]),
            ShippingRepository(SERVICE_TABLES["ShippingService"]),
            NotificationRepository(SERVICE_TABLES["NotificationService"]),
        )
        inventory, payments = InventoryService(services.inventory), PaymentService(services.payments)
        shipping, notifications = ShippingService(services.shipping), NotificationService(services.notifications)
        services.domain = {
            "InventoryService": {
                "ReserveItems": inventory.reserve_items,
                "ReleaseReservation": inventory.release_reservation,
            },
            "PaymentService": {"ProcessPayment": payments.process_payment, "RefundPayment": payments.refund_payment},
            "ShippingService": {
                "CreateShipment": shipping.create_shipment,
                "CancelShipment": shipping.cancel_shipment,
            },
            "NotificationService": {
                "SendOrderConfirmation": notifications.send_order_confirmation,
                "SendCancellationNotice": notifications.send_cancellation_notice,
            },
        }
        services.inventory.seed_stock(SKU, INITIAL_STOCK, unit_price_cents=UNIT_PRICE_CENTS)
        return services

    def reconcile(self, records: SagaRecordRepository) -> Reconciliation:
        return reconcile(
            records.scan_all(),
            initial_stock={SKU: INITIAL_STOCK},
            prices={SKU: UNIT_PRICE_CENTS},
            inventory=self.inventory,
            payments=self.payments,
            shipping=self.shipping,
            notifications=self.notifications,
        )

    def items(self) -> dict[str, list[dict[str, Any]]]:
        """Every item of every service table: what the participants' effects are."""
        dynamodb = boto3.resource("dynamodb")
        return {
            table: sorted(
                (json.dumps(item, sort_keys=True, default=str) for item in dynamodb.Table(table).scan()["Items"]),
            )
            for table in SERVICE_TABLES.values()
        }


class Participants:
    """Warm environments of each service's participant; `new(service)` is one more (its own Powertools state)."""

    def __init__(
        self, settings: ParticipantSettings, board: TaskBoard, services: Services, deliveries: FakeDeliveries
    ) -> None:
        self.settings, self.board, self.services, self.deliveries = settings, board, services, deliveries
        self.undone: list[
            tuple[str, str]
        ] = []  # (service, saga id) of each compensation call, the saga's or a late one
        self._warm: dict[str, SagaParticipant] = {}

    def new(self, service: str, *, action: Any = None, compensation: Any = None) -> SagaParticipant:
        """One more environment of `service`'s participant; `action` / `compensation` replace its (only) action's
        and compensation's domain function."""
        (action_name, real_action), (compensation_name, real_compensation) = self.services.domain[service].items()

        def counted_compensation(command: Any) -> dict[str, Any]:
            self.undone.append((service, command.saga_id))
            return (compensation or real_compensation)(command)

        return SagaParticipant(
            service=service,
            commands={action_name: action or real_action, compensation_name: counted_compensation},
            settings=self.settings,
            callbacks=self.board,  # type: ignore[arg-type]
            records=SagaRecordRepository(SAGA_TABLE),
            idempotency_client=boto3.client("dynamodb"),
            deliveries=self.deliveries,  # type: ignore[arg-type]
        )

    def __getitem__(self, service: str) -> SagaParticipant:
        if service not in self._warm:
            self._warm[service] = self.new(service)
        return self._warm[service]


class SagaDriver:
    """The state machine's part for one saga: the record written as the starter writes it, each command as the
    compiled task state sends it (with a fresh task token on the board), the terminal status as its last state."""

    def __init__(self, definition: SagaDefinition, board: TaskBoard, records: SagaRecordRepository) -> None:
        self.definition, self.board, self.records = definition, board, records
        self.asl = compile_saga(definition)
        self.saga_id = f"saga-{uuid.uuid4().hex[:12]}"
        self.order = order()
        self.sent: list[dict[str, Any]] = []
        self._action_tokens: dict[str, str] = {}  # task token -> its action's step: whose answer is a result

    def start(self, saga_input: dict[str, Any] | None = None) -> SagaDriver:
        self.order = saga_input or self.order
        steps = [step.name for step in self.definition.steps]
        self.records.create(saga_id=self.saga_id, saga_type=self.definition.name, steps=steps, saga_input=self.order)
        self.records.mark_running(
            self.saga_id, f"arn:aws:states:us-east-1:123456789012:execution:x:{self.saga_id}", steps[0]
        )
        return self

    def command(
        self,
        step: str,
        kind: str = "action",
        *,
        error: dict[str, str] | None = None,
        results: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The command body the task state of `step` sends, with a new task token waiting on the board; `$.results`
        is what the board took of the actions before (or `results`)."""
        definition_step = self.definition.step(step)
        state = definition_step.action if kind == "action" else definition_step.compensation
        template = self.asl["States"][state]["Parameters"]["MessageBody"]
        token = self.board.open_task()
        if kind == "action":
            self._action_tokens[token] = step
        values = {
            "$$.Execution.Name": self.saga_id,
            "$$.Task.Token": token,
            "$.input": self.order,
            "$.results": self.results() if results is None else results,
            "$.error": error or {"Error": "Test.Failure", "Cause": "a later step failed"},
        }
        body: dict[str, Any] = {}
        for key, value in template.items():
            if not key.endswith(".$"):
                body[key] = value
            elif value.startswith("States.Format"):
                body[key[:-2]] = f"{self.saga_id}#{step}#{kind}"
            else:
                body[key[:-2]] = values[value]
        self.sent.append(body)
        return body

    def results(self) -> dict[str, Any]:
        """`$.results`: each action's output Step Functions took, by step (the task states' ResultPath)."""
        return {
            self._action_tokens[token]: output
            for kind, token, output in self.board.answers
            if kind == "succeed" and token in self._action_tokens
        }

    def reservation_result(self) -> dict[str, Any]:
        """What ReserveItems answers for this saga's order: its lines at the catalog's price."""
        items = [{**line, "unit_price_cents": UNIT_PRICE_CENTS} for line in self.order["items"]]
        return {"reservation_id": self.saga_id, "status": "ACTIVE", "items": items}

    def service(self, step: str) -> str:
        return self.definition.step(step).service

    def ends(self, status: SagaStatus, *, error: dict[str, str] | None = None) -> None:
        """The state machine's last state: RecordCompleted or RecordFailed, its UpdateItem as compiled."""
        state = self.asl["States"]["RecordCompleted" if status == SagaStatus.COMPLETED else "RecordFailed"]
        assert state["Parameters"]["ExpressionAttributeValues"][":status"] == {"S": status.value}
        error = error or {"Error": "Test.Failure", "Cause": "a step failed"}
        paths = {
            "$$.Execution.Name": self.saga_id,
            "$$.State.EnteredTime": "2030-01-01T00:00:00.000Z",
            "$.error.Error": error["Error"],
            "$.error.Cause": error["Cause"],
        }

        def filled(value: dict[str, str]) -> dict[str, str]:
            return {key.removesuffix(".$"): paths[path] if key.endswith(".$") else path for key, path in value.items()}

        parameters = state["Parameters"]
        boto3.client("dynamodb").update_item(
            TableName=SAGA_TABLE,
            Key={name: filled(value) for name, value in parameters["Key"].items()},
            UpdateExpression=parameters["UpdateExpression"],
            ExpressionAttributeNames=parameters["ExpressionAttributeNames"],
            ExpressionAttributeValues={
                name: filled(value) for name, value in parameters["ExpressionAttributeValues"].items()
            },
        )

    def set_status(self, status: SagaStatus) -> None:
        """The saga's status as an operator's resume (or a compensation under way) leaves it."""
        boto3.client("dynamodb").update_item(
            TableName=SAGA_TABLE,
            Key={"saga_id": {"S": self.saga_id}},
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status.value}},
        )

    def record(self) -> dict[str, Any]:
        record = self.records.get(self.saga_id)
        assert record is not None
        return record

    def step_statuses(self) -> dict[str, str]:
        return {name: state["status"] for name, state in self.record()["steps"].items()}


def sqs_event(*bodies: Any, sent_seconds_ago: float = 0.0, receives: int = 1) -> dict[str, Any]:
    sent = str(int((time.time() - sent_seconds_ago) * 1000))
    return {
        "Records": [
            {
                "messageId": f"m-{index}-{uuid.uuid4().hex[:6]}",
                "receiptHandle": f"h-{index}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": sent},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:commands",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def context(seconds: float = 30.0) -> LocalLambdaContext:
    """A Lambda context whose deadline (and so an idempotency lock it takes) is `seconds` away."""
    return LocalLambdaContext(
        "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", 256, time.monotonic() + seconds
    )


class DynamoDBRequests:
    """The DynamoDB requests moto serves, by operation (from the X-Amz-Target header), in order."""

    def __init__(self) -> None:
        self.operations: list[str] = []
        self._lock = threading.Lock()

    @contextmanager
    def counted(self) -> Iterator[DynamoDBRequests]:
        process_request = BotocoreStubber.process_request
        requests = self

        def counting(stubber: BotocoreStubber, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else target
            if target.startswith("DynamoDB_"):
                with requests._lock:
                    requests.operations.append(target.split(".", 1)[1])
            return process_request(stubber, request)

        with mock.patch.object(BotocoreStubber, "process_request", counting):
            yield self

    @contextmanager
    def window(self) -> Iterator[list[str]]:
        """The operations made inside the block (the list fills as the block runs)."""
        start = len(self.operations)
        made: list[str] = []
        yield made
        made.extend(self.operations[start:])
