"""The participant toolkit's requests on saga records stay within saga_records.access, which the stack grants.

On AWS a participant's role may call PARTICIPANT_ACTIONS only, on requests naming PARTICIPANT_ATTRIBUTES only
(`dynamodb:Attributes`). moto enforces neither: here a participant runs every outcome it has (success, rejection,
transient failure, compensation, a late callback, an operator's re-run) on the real repository over moto, and every
request it sends to the saga table is checked against the lists.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_runtime.cloud import LocalLambdaContext
from participant_toolkit import ParticipantSettings, PermanentFailure, SagaParticipant, TransientFailure, observability
from participant_toolkit.callbacks import LateCallback
from saga_records import SagaRecordRepository
from saga_records.access import PARTICIPANT_ACTIONS, PARTICIPANT_ATTRIBUTES

pytestmark = pytest.mark.unit

SAGA_TABLE = "sagas"
KEYWORDS = {
    "SET", "ADD", "REMOVE", "DELETE", "AND", "OR", "NOT", "IN", "BETWEEN",
    "attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains", "size",
    "if_not_exists", "list_append",
}  # fmt: skip
PATH = re.compile(r"(?<![:\w#])[#A-Za-z_][\w#]*")


def top_level_attributes(request: dict[str, Any]) -> set[str]:
    """Top-level attribute names a DynamoDB request names: its key, item, and every path of its expressions."""
    names = request.get("ExpressionAttributeNames", {})
    found = set(request.get("Key", {})) | set(request.get("Item", {}))
    for field in ("UpdateExpression", "ConditionExpression", "ProjectionExpression", "FilterExpression"):
        expression = request.get(field, "")
        # Only the first segment of a path (steps.#step.#s0 -> steps) is a top-level attribute.
        for match in PATH.finditer(expression):
            if match.start() > 0 and expression[match.start() - 1] == ".":
                continue
            token = match.group()
            if token not in KEYWORDS:
                found.add(names.get(token, token))
    return found


class Answers:
    """Step Functions' side of the callbacks: records them; optionally refuses a success (the task timed out)."""

    def __init__(self, *, refuse_success: bool = False) -> None:
        self.refuse_success = refuse_success

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        if self.refuse_success:
            raise LateCallback("TaskTimedOut")

    def fail(self, task_token: str, error: str, cause: str) -> None:
        pass

    def heartbeat(self, task_token: str) -> None:
        pass

    def heartbeats(self, task_token: str, every_seconds: float, **options: Any) -> Any:
        from participant_toolkit.callbacks import TaskCallbacks

        return TaskCallbacks.heartbeats(self, task_token, every_seconds, **options)

    def heartbeats_for(self, tokens: Any, every_seconds: float, **options: Any) -> Any:
        from participant_toolkit.callbacks import TaskCallbacks

        return TaskCallbacks.heartbeats_for(self, tokens, every_seconds, **options)


@pytest.fixture
def saga_table_requests(aws_env, monkeypatch) -> Any:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The shared Metrics object read its namespace when first imported, maybe before this test's env.
    monkeypatch.setattr(observability.metrics, "namespace", "Sagas")
    observability.metrics.clear_metrics()
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.create_table(
            TableName=SAGA_TABLE,
            KeySchema=[{"AttributeName": "saga_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "saga_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        requests: list[tuple[str, dict[str, Any]]] = []
        yield requests


def run_participant(requests, *, action, compensation, answers, kind, token="token") -> None:
    settings = ParticipantSettings(
        SERVICE_TABLE_NAME="svc", SAGA_TABLE_NAME=SAGA_TABLE, IDEMPOTENCY_TABLE_NAME="idempotency"
    )
    records = SagaRecordRepository(SAGA_TABLE)
    saga_id = f"saga-{uuid.uuid4()}"
    records.create(saga_id=saga_id, saga_type="OrderFulfillment", steps=["reserve_inventory"], saga_input={})

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if params.get("TableName") == SAGA_TABLE:
            requests.append((model.name, dict(params)))

    records._table.meta.client.meta.events.register("provide-client-params.dynamodb", record)
    participant = SagaParticipant(
        service="InventoryService",
        action=action,
        compensation=compensation,
        settings=settings,
        callbacks=answers,
        records=records,
    )
    body = {
        "saga_id": saga_id,
        "saga_type": "OrderFulfillment",
        "step": "reserve_inventory",
        "kind": kind,
        "command": "ReserveItems" if kind == "action" else "ReleaseReservation",
        "idempotency_key": f"{saga_id}#reserve_inventory#{kind}",
        "task_token": token,
        "heartbeat_seconds": 20,
        "input": {},
        "results": {},
    }
    event = {"Records": [{"messageId": "m-0", "receiptHandle": "h-0", "body": json.dumps(body), "attributes": {}}]}
    context = LocalLambdaContext("fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", 256, time.monotonic() + 30)
    handler = participant.action_handler if kind == "action" else participant.compensation_handler
    handler(event, context)


def done(_command):
    return {"ok": True}


def rejected(_command):
    raise PermanentFailure("Inventory.InsufficientStock", "no stock")


def transient(_command):
    raise TransientFailure("Inventory.StoreUnavailable", "throttled")


SCENARIOS = {
    "action succeeds": ({"action": done, "compensation": done, "answers": Answers(), "kind": "action"}),
    "action rejected": ({"action": rejected, "compensation": done, "answers": Answers(), "kind": "action"}),
    "action fails transiently": ({"action": transient, "compensation": done, "answers": Answers(), "kind": "action"}),
    "late action undone": (
        {"action": done, "compensation": done, "answers": Answers(refuse_success=True), "kind": "action"}
    ),
    "compensation succeeds": ({"action": done, "compensation": done, "answers": Answers(), "kind": "compensation"}),
    "compensation fails": ({"action": done, "compensation": rejected, "answers": Answers(), "kind": "compensation"}),
    "operator's compensation": (
        {"action": done, "compensation": done, "answers": Answers(), "kind": "compensation", "token": None}
    ),
    "operator's compensation fails": (
        {"action": done, "compensation": rejected, "answers": Answers(), "kind": "compensation", "token": None}
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_participant_touches_only_the_granted_actions_and_attributes_of_saga_records(saga_table_requests, scenario):
    # When a participant handles a command to this outcome
    run_participant(saga_table_requests, **SCENARIOS[scenario])
    # Then it wrote the saga record, with the granted actions only, naming the granted attributes only
    assert saga_table_requests, "the participant sent nothing to the saga table: this test would prove nothing"
    for operation, request in saga_table_requests:
        assert f"dynamodb:{operation}" in PARTICIPANT_ACTIONS, operation
        assert top_level_attributes(request) <= set(PARTICIPANT_ATTRIBUTES), (operation, request)


def test_the_attribute_reader_finds_names_placeholders_and_paths():
    # A change that adds an attribute must be seen: the reader is the test's eyes.
    request = {
        "Key": {"saga_id": "s"},
        "UpdateExpression": "SET updated_at = :now, #f0 = :f0, steps.#step.#s0 = :s0 ADD version :one",
        "ConditionExpression": "attribute_exists(saga_id) AND #status IN (:a0)",
        "ExpressionAttributeNames": {"#f0": "current_step", "#step": "reserve", "#s0": "status", "#status": "status"},
    }
    assert top_level_attributes(request) == {"saga_id", "updated_at", "current_step", "steps", "version", "status"}
    assert "owner" in top_level_attributes({**request, "UpdateExpression": "SET owner = :o"})
