"""The participant toolkit's requests on saga records stay within saga_records.access, which the stack grants.

On AWS a participant's role may call PARTICIPANT_ACTIONS only, on requests naming PARTICIPANT_ATTRIBUTES only
(`dynamodb:Attributes`), and reads only with a projection (`dynamodb:Select`). moto enforces none of it: here the
order saga's participants run every outcome they have (success, rejection, transient failure, compensation, a late
success undone, an operator's re-run) on the real repository over moto, and every request they send to the saga
table is checked against the lists.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from moto.core.botocore_stubber import BotocoreStubber

from participant_toolkit import PermanentFailure, TransientFailure
from saga_records.access import PARTICIPANT_ACTIONS, PARTICIPANT_ATTRIBUTES, PARTICIPANT_READ_ATTRIBUTES
from tests.unit.toolkit.harness import SAGA_TABLE, context, sqs_event

pytestmark = pytest.mark.unit

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


@contextmanager
def saga_table_requests() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(operation, request) of every request moto serves on the saga table inside the block."""
    seen: list[tuple[str, dict[str, Any]]] = []
    process_request = BotocoreStubber.process_request

    def recording(stubber: BotocoreStubber, request: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if target.startswith("DynamoDB_") and request.body:
            body = json.loads(request.body)
            if body.get("TableName") == SAGA_TABLE:
                seen.append((target.split(".", 1)[1], body))
        return process_request(stubber, request)

    with mock.patch.object(BotocoreStubber, "process_request", recording):
        yield seen


def rejected(_command):
    raise PermanentFailure("Inventory.InsufficientStock", "no stock")


def transient(_command):
    raise TransientFailure("Inventory.StoreUnavailable", "throttled")


def action(saga, participants, **domain):
    participant = participants.new("InventoryService", **domain)
    with saga_table_requests() as seen:
        participant.handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    return seen


def compensation(saga, participants, *, token=True, **domain):
    participants["InventoryService"].handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    body = saga.command("reserve_inventory", "compensation")
    if not token:  # an operator's re-run (saga_ops resume): no task waits for it
        body["task_token"] = None
    participant = participants.new("InventoryService", **domain)
    with saga_table_requests() as seen:
        participant.handle(body["command"], sqs_event(body), context())
    return seen


def late_action_undone(saga, participants, board):
    """The step's first delivery acted and answers slowly; meanwhile its task times out and the saga compensates the
    step. Its success is then refused, and the toolkit reads the record to decide (and undoes it)."""
    body = saga.command("reserve_inventory")
    release = board.hold_next_answer()
    late = participants.new("InventoryService")
    with saga_table_requests() as seen:
        thread = threading.Thread(target=lambda: late.handle(body["command"], sqs_event(body), context()))
        thread.start()
        assert board.answering.wait(5)
        board.time_out(body["task_token"])
        compensation = saga.command("reserve_inventory", "compensation")
        participants["InventoryService"].handle("ReleaseReservation", sqs_event(compensation), context())
        release.set()
        thread.join(5)
    assert board.refused == [("succeed", body["task_token"])]
    return seen


SCENARIOS = {
    "action succeeds": lambda saga, participants, board: action(saga, participants),
    "action rejected": lambda saga, participants, board: action(saga, participants, action=rejected),
    "action fails transiently": lambda saga, participants, board: action(saga, participants, action=transient),
    "late action undone": late_action_undone,
    "compensation succeeds": lambda saga, participants, board: compensation(saga, participants),
    "compensation fails": lambda saga, participants, board: compensation(saga, participants, compensation=rejected),
    "operator's compensation": lambda saga, participants, board: compensation(saga, participants, token=False),
    "operator's compensation fails": lambda saga, participants, board: compensation(
        saga, participants, token=False, compensation=rejected
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_participant_touches_only_the_granted_actions_and_attributes_of_saga_records(
    saga, participants, board, scenario
):
    # When a participant handles a command to this outcome
    seen = SCENARIOS[scenario](saga, participants, board)
    # Then it used the saga record with the granted actions only, naming the granted attributes only (a transient
    # failure leaves the record alone: the state machine retries it)
    if scenario == "action fails transiently":
        assert seen == []
    else:
        assert seen, "the participant sent nothing to the saga table: this test would prove nothing"
    for operation, request in seen:
        assert f"dynamodb:{operation}" in PARTICIPANT_ACTIONS, operation
        assert top_level_attributes(request) <= set(PARTICIPANT_ATTRIBUTES), (operation, request)
        if operation == "GetItem":  # a read without a projection returns (and IAM refuses) the whole record
            assert top_level_attributes(request) <= set(PARTICIPANT_READ_ATTRIBUTES), request
            assert request.get("ProjectionExpression"), request


def test_the_late_success_reads_the_record_through_a_projection(saga, participants, board):
    # The one read a participant makes is the verdict on a refused success: the scenario must exercise it.
    seen = late_action_undone(saga, participants, board)
    assert "GetItem" in [operation for operation, _ in seen]


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
