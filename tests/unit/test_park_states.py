"""The generated park states run on moto's Step Functions and write the saga record an operator resumes from: the
stalled retriable step FAILED with its error (not left RUNNING), and the `pending` list in the order resume runs it.

A participant here is a loop that answers each command from a script; the record is written as the starter writes it.
"""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from local_runtime.moto_workarounds import all_workarounds
from saga_records import SagaRecordRepository
from statemachines import SAGA_TABLE_KEY, compile_saga, parse_definition, queue_url_key
from tests.unit.tables import create_saga_table

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/sfn"
TABLE = "sagas"


def _step(name: str, action: str, compensation: str | None = None) -> dict:
    return {
        "name": name,
        "service": "TripService",
        "action": action,
        **({"compensation": compensation} if compensation else {"retriable": True}),
        "sla": {"timeout_seconds": 30, "heartbeat_seconds": 20},
        "retry": {"errors": ["Trip.Busy"], "max_attempts": 1, "interval_seconds": 1},
        "permanent_errors": [],
    }


DEFINITION = parse_definition(
    {
        "name": "TripBooking",
        "description": "hold, charge, then issue and notify (retriable)",
        "steps": [
            _step("hold_seat", "HoldSeat", "ReleaseSeat"),
            _step("charge", "Charge", "Refund"),
            _step("issue_tickets", "IssueTickets"),
            _step("send_itinerary", "SendItinerary"),
        ],
    }
)


def _deploy(definition) -> str:
    """The compiled saga on moto with its placeholders filled (one queue for every command) and a saga table."""
    create_saga_table(TABLE)
    queue = boto3.client("sqs").create_queue(QueueName="commands")["QueueUrl"]
    text = json.dumps(compile_saga(definition))
    for step in definition.steps:
        for command in step.commands:
            text = text.replace(f"${{{queue_url_key(command)}}}", queue)
    text = text.replace(f"${{{SAGA_TABLE_KEY}}}", TABLE)
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name=definition.name, definition=text, roleArn=ROLE)["stateMachineArn"]
    return machine, queue


def _run(script: dict[tuple[str, str], dict], saga_id: str) -> dict:
    """Start a saga whose participant answers each (step, kind) as `script` says; its record once it stopped."""
    records = SagaRecordRepository(TABLE)
    machine, queue = _deploy(DEFINITION)
    records.create(saga_id=saga_id, saga_type=DEFINITION.name, steps=[s.name for s in DEFINITION.steps], saga_input={})
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=saga_id, input=json.dumps({"input": {}, "results": {}}))[
        "executionArn"
    ]
    records.mark_running(saga_id, arn, DEFINITION.steps[0].name)
    stop = threading.Event()

    def participant() -> None:
        while not stop.is_set():
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                time.sleep(0.02)
            for message in messages:
                command = json.loads(message["Body"])
                answer = script.get((command["step"], command["kind"]), {})
                if "error" in answer:
                    sfn.send_task_failure(taskToken=command["task_token"], error=answer["error"], cause=answer["cause"])
                else:
                    sfn.send_task_success(taskToken=command["task_token"], output=json.dumps(answer))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    thread = threading.Thread(target=participant, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=3)
    return sfn.describe_execution(executionArn=arn) | {"record": records.get(saga_id)}


@pytest.fixture
def moto_saga(moto_sfn):
    with all_workarounds(time_scale=0.05):
        yield


def test_a_stalled_retriable_step_is_recorded_failed_and_the_steps_left_are_pending(moto_saga):
    # Given a retriable step whose participant fails for good (an error its retries do not cover)
    ended = _run({("issue_tickets", "action"): {"error": "Trip.FareExpired", "cause": "fare 42 gone"}}, "trip-1")
    # Then the saga is parked, its step FAILED with that error, and the pending list is that step, then the rest
    record = ended["record"]
    assert (ended["status"], ended["error"]) == ("FAILED", "Saga.ForwardRecoveryFailed")
    assert (record["status"], record["failed_step"]) == ("FORWARD_RECOVERY_FAILED", "issue_tickets")
    stalled = record["steps"]["issue_tickets"]
    assert (stalled["status"], stalled["error"], stalled["cause"]) == ("FAILED", "Trip.FareExpired", "fare 42 gone")
    assert stalled["finished_at"]
    assert record["pending"] == [
        {"step": "issue_tickets", "kind": "action"},
        {"step": "send_itinerary", "kind": "action"},
    ]


def test_a_parked_compensation_lists_it_and_every_earlier_compensation(moto_saga):
    # Given a charge refused, whose compensation then fails for good
    ended = _run(
        {
            ("charge", "action"): {"error": "Trip.CardDeclined", "cause": "declined"},
            ("hold_seat", "compensation"): {"error": "Trip.GdsDown", "cause": "no GDS"},
        },
        "trip-2",
    )
    record = ended["record"]
    assert (record["status"], record["failed_step"]) == ("COMPENSATION_FAILED", "hold_seat")
    assert record["pending"] == [{"step": "hold_seat", "kind": "compensation"}]
    assert (record["error"], record["compensation_error"]) == ("Trip.CardDeclined", "Trip.GdsDown")
