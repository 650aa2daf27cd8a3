"""Parked sagas, end to end on moto: the generated park states write the record an operator resumes from (the stalled
retriable step FAILED with its error, not left RUNNING; the `pending` list in the order resume runs it), and the
operator CLI's resume runs that list through the participant toolkit, or resolves the saga by hand.

While the execution runs, a participant is a loop that answers each command's task token from a script and marks a
step's success on the record, as the toolkit does; the record is written as the starter writes it. Once parked, the
operator's tokenless commands go to the real toolkit.
"""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from local_runtime.moto_workarounds import all_workarounds
from participant_toolkit import ParticipantSettings, PermanentFailure, SagaParticipant, observability
from saga_ops.deployment import Deployment
from saga_ops.operations import NotResumable, OperatorError, Plan, SagaOperator
from saga_records import SagaRecordRepository, StepStatus
from statemachines import SAGA_TABLE_KEY, compile_saga, parse_definition, queue_url_key
from tests.unit.tables import create_idempotency_table, create_saga_table
from tests.unit.toolkit.harness import context, sqs_event

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/sfn"
TABLE = "sagas"


def _step(name: str, action: str, compensation: str | None = None, **extra) -> dict:
    return {
        "name": name,
        "service": "TripService",
        "action": action,
        **({"compensation": compensation} if compensation else {"retriable": True}),
        "sla": {"timeout_seconds": 30, "heartbeat_seconds": 20},
        "retry": {"errors": ["Trip.Busy"], "max_attempts": 1, "interval_seconds": 1},
        "permanent_errors": [],
        **extra,
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


# The same saga with its ticketing as the pivot: refused, it compensates what came before; stalled, it parks.
PIVOT_DEFINITION = parse_definition(
    {
        "name": "TripBooking",
        "description": "hold, charge, then issue (the pivot) and notify (retriable)",
        "steps": [
            _step("hold_seat", "HoldSeat", "ReleaseSeat"),
            _step("charge", "Charge", "Refund"),
            {
                **_step("issue_tickets", "IssueTickets", permanent_errors=["Trip.FareExpired"]),
                "retriable": False,
                "pivot": True,
            },
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


def _run(script: dict[tuple[str, str], dict], saga_id: str, definition=DEFINITION) -> dict:
    """Start a saga whose participant answers each (step, kind) as `script` says; its record once it stopped."""
    records = SagaRecordRepository(TABLE)
    machine, queue = _deploy(definition)
    DEPLOYED.update(machine=machine, queue=queue)
    records.create(saga_id=saga_id, saga_type=definition.name, steps=[s.name for s in definition.steps], saga_input={})
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=saga_id, input=json.dumps({"input": {}, "results": {}}))[
        "executionArn"
    ]
    records.mark_running(saga_id, arn, definition.steps[0].name)
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
                    if command["kind"] == "action":  # as the toolkit marks a step once its answer was taken
                        records.action_answered(
                            saga_id,
                            command["step"],
                            StepStatus.SUCCEEDED,
                            next_step=command.get("next_step"),
                            result=answer,
                        )
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    thread = threading.Thread(target=participant, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=3)
    return sfn.describe_execution(executionArn=arn) | {"record": records.get(saga_id)}


DEPLOYED: dict[str, str] = {}


@pytest.fixture
def moto_saga(moto_sfn):
    with all_workarounds(time_scale=0.05):
        yield
    DEPLOYED.clear()


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


# --- the operator's resume of a parked forward recovery, through the participant toolkit -------------------------


class Toolkit:
    """TripService's participant on the toolkit, fed from the commands queue: each action it runs is noted, and
    `failing` steps are refused for good."""

    def __init__(self, failing: set[str], refusal: str = "Trip.StillBroken") -> None:
        create_idempotency_table("idempotency")
        self.ran: list[str] = []
        self.failing = failing

        def act(command):
            if command.step in self.failing:
                raise PermanentFailure(refusal, f"{command.step} refused again")
            self.ran.append(f"{command.step} ({command.kind})" if command.kind == "compensation" else command.step)
            return {"done": command.step}

        settings = ParticipantSettings(
            SERVICE_TABLE_NAME="unused", SAGA_TABLE_NAME=TABLE, IDEMPOTENCY_TABLE_NAME="idempotency"
        )
        commands = {command: act for step in DEFINITION.steps for command in step.commands}
        self.participant = SagaParticipant(service="TripService", commands=commands, settings=settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        sqs = boto3.client("sqs")
        while not self.stop.is_set():
            messages = sqs.receive_message(QueueUrl=DEPLOYED["queue"], WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                time.sleep(0.02)
            for message in messages:
                command = json.loads(message["Body"])["command"]
                self.participant.handle(command, sqs_event(message["Body"]), context())
                sqs.delete_message(QueueUrl=DEPLOYED["queue"], ReceiptHandle=message["ReceiptHandle"])

    def __enter__(self) -> Toolkit:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=3)


@pytest.fixture
def participant_env(monkeypatch):
    """What the stack sets on a participant function, minus X-Ray (no daemon here)."""
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(observability.metrics, "namespace", "Sagas")


def _operator(definition=DEFINITION) -> SagaOperator:
    deployment = Deployment(
        stack_name="SagaStack",
        saga_table=TABLE,
        stuck_sagas_queue_url="unused",
        state_machines={definition.name: DEPLOYED["machine"]},
        dead_letter_queues=[],
    )
    return SagaOperator(deployment, definitions=[definition], poll_seconds=0.02)


def _parked_at_tickets(saga_id: str) -> dict:
    ended = _run({("issue_tickets", "action"): {"error": "Trip.GdsDown", "cause": "GDS unreachable"}}, saga_id)
    assert ended["record"]["status"] == "FORWARD_RECOVERY_FAILED"
    return ended["record"]


def test_resume_retry_runs_the_stalled_step_and_every_later_one_in_order_and_completes_the_saga(
    moto_saga, participant_env
):
    # Given a saga parked at its stalled retriable step, the GDS back now
    _parked_at_tickets("trip-3")
    # When the operator resumes it
    with Toolkit(failing=set()) as toolkit:
        outcome = _operator().resume("trip-3", reason="GDS is back", by="ana@ops", wait_seconds=10)
    # Then the pending steps ran, in order, once each, and the saga is COMPLETED with nothing pending
    assert (outcome.status, outcome.done) == ("COMPLETED", ["issue_tickets", "send_itinerary"])
    assert toolkit.ran == ["issue_tickets", "send_itinerary"]
    record = SagaRecordRepository(TABLE).get("trip-3")
    assert (record["status"], record["pending"]) == ("COMPLETED", [])
    assert {name: step["status"] for name, step in record["steps"].items()} == dict.fromkeys(
        ["hold_seat", "charge", "issue_tickets", "send_itinerary"], "SUCCEEDED"
    )
    assert "error" not in record["steps"]["issue_tickets"]
    started, finished = record["operator_actions"]
    assert (started["action"], started["from_status"], started["steps"]) == (
        "retry",
        "FORWARD_RECOVERY_FAILED",
        ["issue_tickets", "send_itinerary"],
    )
    assert finished["action"] == "retry-succeeded"


def test_a_step_that_fails_again_parks_the_saga_there_with_what_is_still_pending(moto_saga, participant_env):
    _parked_at_tickets("trip-4")
    # When the operator resumes it and the last step is refused for good
    with Toolkit(failing={"send_itinerary"}) as toolkit:
        outcome = _operator().resume("trip-4", reason="GDS is back", by="ana@ops", wait_seconds=10)
    # Then the first ran, and the saga is parked again at the second, which alone is pending
    assert (outcome.status, outcome.failed_step, outcome.error) == (
        "FORWARD_RECOVERY_FAILED",
        "send_itinerary",
        "Trip.StillBroken",
    )
    assert toolkit.ran == ["issue_tickets"]
    record = SagaRecordRepository(TABLE).get("trip-4")
    assert (record["status"], record["failed_step"], record["error"]) == (
        "FORWARD_RECOVERY_FAILED",
        "send_itinerary",
        "Trip.StillBroken",
    )
    assert record["pending"] == [{"step": "send_itinerary", "kind": "action"}]
    assert (record["steps"]["issue_tickets"]["status"], record["steps"]["send_itinerary"]["status"]) == (
        "SUCCEEDED",
        "FAILED",
    )


def test_a_parked_forward_recovery_resolved_by_hand_keeps_its_failed_step_and_drops_the_pending_list(moto_saga):
    _parked_at_tickets("trip-5")
    record = _operator().resolve("trip-5", reason="tickets issued by phone", by="ben@ops")
    assert (record["status"], record["pending"]) == ("RESOLVED", [])
    assert record["steps"]["issue_tickets"]["status"] == "FAILED"  # what happened to it, not a running step
    assert record["operator_actions"][0]["pending"] == ["issue_tickets (action)", "send_itinerary (action)"]
    with pytest.raises(NotResumable):
        _operator().resume("trip-5", reason="again", by="ben@ops")


def test_a_saga_of_a_type_no_definition_here_names_is_refused_naming_the_type(moto_saga):
    # Given a parked saga of a type this checkout has no definition of
    _parked_at_tickets("trip-6")
    unknown = SagaOperator(_operator().deployment, definitions=[], poll_seconds=0.02)
    # When resumed / Then a clear error, and the saga is left as it was
    with pytest.raises(OperatorError, match="'TripBooking' saga, and no saga definition of that name is known"):
        unknown.resume("trip-6", reason="GDS is back", by="ana@ops")
    assert SagaRecordRepository(TABLE).get("trip-6")["status"] == "FORWARD_RECOVERY_FAILED"
    # And what a resume would run is read from the record
    assert _operator().pending(SagaRecordRepository(TABLE).get("trip-6")) == [
        {"step": "issue_tickets", "kind": "action"},
        {"step": "send_itinerary", "kind": "action"},
    ]


# --- the pivot: refused, it compensates what came before it; stalled, it parks and an operator runs it forward -----


def test_a_refused_pivot_compensates_every_step_before_it_and_the_saga_fails(moto_saga):
    # Given the pivot refused for good (its permanent error)
    ended = _run(
        {("issue_tickets", "action"): {"error": "Trip.FareExpired", "cause": "fare gone"}}, "piv-1", PIVOT_DEFINITION
    )
    # Then the execution succeeds (a business outcome), the saga FAILED with that error, nothing parked
    record = ended["record"]
    assert (ended["status"], record["status"], record["error"]) == ("SUCCEEDED", "FAILED", "Trip.FareExpired")
    assert "pending" not in record


def test_a_pivot_whose_retries_run_out_parks_with_itself_and_every_later_step_pending(moto_saga):
    # Given the pivot failing transiently past its one retry
    ended = _run({("issue_tickets", "action"): {"error": "Trip.Busy", "cause": "GDS busy"}}, "piv-2", PIVOT_DEFINITION)
    record = ended["record"]
    assert (ended["status"], ended["error"]) == ("FAILED", "Saga.ForwardRecoveryFailed")
    assert (record["status"], record["failed_step"]) == ("FORWARD_RECOVERY_FAILED", "issue_tickets")
    assert record["steps"]["issue_tickets"]["status"] == "FAILED"
    assert record["pending"] == [
        {"step": "issue_tickets", "kind": "action"},
        {"step": "send_itinerary", "kind": "action"},
    ]


def _parked_at_the_pivot(saga_id: str) -> None:
    ended = _run({("issue_tickets", "action"): {"error": "Trip.Busy", "cause": "GDS busy"}}, saga_id, PIVOT_DEFINITION)
    assert ended["record"]["status"] == "FORWARD_RECOVERY_FAILED"


def test_resume_retry_of_a_parked_pivot_runs_it_and_every_later_step_and_completes_the_saga(moto_saga, participant_env):
    _parked_at_the_pivot("piv-3")
    with Toolkit(failing=set()) as toolkit:
        outcome = _operator(PIVOT_DEFINITION).resume("piv-3", reason="GDS is back", by="ana@ops", wait_seconds=10)
    assert (outcome.status, outcome.done) == ("COMPLETED", ["issue_tickets", "send_itinerary"])
    assert toolkit.ran == ["issue_tickets", "send_itinerary"]


def test_a_pivot_that_refuses_on_resume_compensates_the_steps_before_it_as_the_state_machine_would(
    moto_saga, participant_env
):
    # Given a saga parked at its pivot, which now refuses for good (its fare expired while it was parked)
    _parked_at_the_pivot("piv-4")
    # When the operator resumes it
    with Toolkit(failing={"issue_tickets"}, refusal="Trip.FareExpired") as toolkit:
        outcome = _operator(PIVOT_DEFINITION).resume("piv-4", reason="GDS is back", by="ana@ops", wait_seconds=10)
    # Then the steps before the pivot are compensated, last first, and the saga FAILED with the pivot's refusal
    assert (outcome.status, outcome.done) == ("FAILED", ["charge", "hold_seat"])
    assert toolkit.ran == ["charge (compensation)", "hold_seat (compensation)"]
    record = SagaRecordRepository(TABLE).get("piv-4")
    assert (record["status"], record["error"], record["failed_step"], record["pending"]) == (
        "FAILED",
        "Trip.FareExpired",
        "issue_tickets",
        [],
    )
    assert {name: step["status"] for name, step in record["steps"].items()} == {
        "hold_seat": "COMPENSATED",
        "charge": "COMPENSATED",
        "issue_tickets": "FAILED",
        "send_itinerary": "NOT_STARTED",
    }
    assert [entry["action"] for entry in record["operator_actions"]] == ["retry", "pivot-refused", "retry-succeeded"]


def test_a_pivot_still_failing_transiently_on_resume_parks_the_saga_there_again(moto_saga, participant_env):
    _parked_at_the_pivot("piv-5")
    with Toolkit(failing={"issue_tickets"}, refusal="Trip.Busy") as toolkit:
        outcome = _operator(PIVOT_DEFINITION).resume("piv-5", reason="GDS is back?", by="ana@ops", wait_seconds=10)
    assert (outcome.status, outcome.failed_step, outcome.error) == (
        "FORWARD_RECOVERY_FAILED",
        "issue_tickets",
        "Trip.Busy",
    )
    assert toolkit.ran == []


@pytest.mark.parametrize(
    ("failed_step", "kind", "steps"),
    [
        ("issue_tickets", "action", ["issue_tickets", "send_itinerary"]),
        ("send_itinerary", "action", ["send_itinerary"]),
        ("charge", "compensation", ["charge", "hold_seat"]),
    ],
)
def test_an_execution_that_ended_at_or_past_the_pivot_resumes_forward_and_one_before_it_compensates(
    failed_step, kind, steps
):
    # Given a saga parked EXECUTION_FAILED (its execution timed out or was aborted) at `failed_step`
    record = {"saga_id": "piv-6", "status": "EXECUTION_FAILED", "failed_step": failed_step}
    # When its resume is planned / Then past the go/no-go point it goes forward (the pivot may have acted), else back
    plan = Plan.of(PIVOT_DEFINITION, record)
    assert (plan.kind, [step.name for step in plan.steps]) == (kind, steps)
