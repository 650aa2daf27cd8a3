"""A retriable step an operator re-runs on a parked saga (saga_ops resume --retry): its action comes without a task
token, runs under the operator's idempotency key, and its outcome goes on the saga record, the only answer anyone
waits for. A step that is not retriable is never run so: its action still needs a token."""

from __future__ import annotations

import json

import pytest

from participant_toolkit import PermanentFailure, TransientFailure
from participant_toolkit.command import MalformedCommand, parse_command
from saga_operations.records import OperationsRecords
from saga_records import SagaStatus, StepStatus
from tests.unit.toolkit.harness import SAGA_TABLE, context, sqs_event

pytestmark = pytest.mark.unit


@pytest.fixture
def parked_confirmation(saga_of, raw_definition, participants):
    """An order saga whose last step, send_confirmation, is retriable, every step before it done, and the record as
    the operator's resume leaves it: the saga PENDING again, the step RUNNING, before the tokenless action is sent."""
    last = raw_definition["steps"][3]
    last["retriable"] = True
    del last["compensation"]
    saga = saga_of(raw_definition)
    for step in ("reserve_inventory", "process_payment", "create_shipment"):
        body = saga.command(step)
        participants[saga.service(step)].handle(body["command"], sqs_event(body), context())
    OperationsRecords(SAGA_TABLE).mark_step(
        saga.saga_id, "send_confirmation", StepStatus.RUNNING, saga_status=SagaStatus.PENDING, current=True
    )
    body = saga.command("send_confirmation")
    assert body["retriable"] is True
    return saga, body | {"task_token": None, "idempotency_key": f"{saga.saga_id}#send_confirmation#action#operator-1"}


def test_a_retriable_action_without_a_token_records_its_success_and_calls_back_nobody(
    parked_confirmation, participants, board
):
    saga, body = parked_confirmation
    answered_before = list(board.answers)
    # When the operator's action arrives (twice: SQS delivers at least once)
    for _ in range(2):
        response = participants["NotificationService"].handle(body["command"], sqs_event(body), context())
        assert response == {"batchItemFailures": []}
    # Then the step is SUCCEEDED on the record with its result, and no callback or heartbeat was attempted
    step = saga.record()["steps"]["send_confirmation"]
    assert step["status"] == "SUCCEEDED"
    assert step["result"]
    assert board.answers == answered_before
    assert board.beats == []


@pytest.mark.parametrize(
    "failure",
    [
        PermanentFailure("Notification.RecipientRejected", "mailbox gone"),
        TransientFailure("Notification.ProviderUnavailable", "still down"),
    ],
)
def test_a_failing_retriable_action_without_a_token_records_the_failure(parked_confirmation, participants, failure):
    saga, body = parked_confirmation

    def refuse(_command):
        raise failure

    participants.new("NotificationService", action=refuse).handle(body["command"], sqs_event(body), context())
    step = saga.record()["steps"]["send_confirmation"]
    assert (step["status"], step["error"]) == ("FAILED", failure.error)


def test_a_tokenless_action_of_a_step_that_is_not_retriable_is_still_refused(saga):
    body = saga.command("reserve_inventory")
    assert "retriable" not in body
    with pytest.raises(MalformedCommand, match="task_token"):
        parse_command(json.dumps(body | {"task_token": None}))
