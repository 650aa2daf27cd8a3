"""The saga tracker keeps a choreographed saga's record as the state machine keeps an orchestrated one's: deadlines set
when a step is requested, a timed-out step marked (and its event published) only if it has not answered, the end of
the saga, and a park with what a resume runs. The real saga record repository on moto; bus and Scheduler are fakes."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws
from saga_tracker.settings import Choreography
from saga_tracker.tracker import SagaTracker, UnknownSaga

from saga_records import SagaRecordRepository, SagaStatus, StepStatus
from saga_records.events import SagaEventDetail, deadline_source, saga_source
from statemachines import choreography, load_definition
from statemachines.compiler import pending_after_compensation_failure
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.unit.tables import create_saga_table

pytestmark = pytest.mark.unit

DEFINITION = load_definition(SAGA_FILE.with_name("order_fulfillment_choreographed.saga.yaml"))
STEPS = [step.name for step in DEFINITION.steps]


class FakeBus:
    def __init__(self) -> None:
        self.published: list[SagaEventDetail] = []

    def publish(self, detail: SagaEventDetail) -> None:
        self.published.append(detail)


class FakeScheduler:
    def __init__(self) -> None:
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}

    def set(self, *, saga_id: str, step: str, seconds: float, source: str, detail_type: str, detail: str) -> bool:
        if (saga_id, step) in self.schedules:
            return False
        self.schedules[(saga_id, step)] = {
            "seconds": seconds,
            "source": source,
            "detail_type": detail_type,
            "detail": detail,
        }
        return True

    def fire(self, saga_id: str, step: str) -> dict[str, Any]:
        schedule = self.schedules[(saga_id, step)]
        import json

        return {
            "source": schedule["source"],
            "detail-type": schedule["detail_type"],
            "detail": json.loads(schedule["detail"]),
        }


@pytest.fixture
def records(aws_env):
    with mock_aws():
        create_saga_table("sagas")
        yield SagaRecordRepository("sagas")


@pytest.fixture
def bus():
    return FakeBus()


@pytest.fixture
def scheduler():
    return FakeScheduler()


@pytest.fixture
def tracker(records, bus, scheduler):
    setting = Choreography.model_validate(choreography.tracker_setting(DEFINITION))
    return SagaTracker(records, bus, scheduler, (setting,), time_scale=0.5)


@pytest.fixture
def saga(records):
    saga_input = {"order_id": "o-1"}
    records.create(saga_id="o-1", saga_type=DEFINITION.name, steps=STEPS, saga_input=saga_input)
    records.mark_running("o-1", "choreography:bus/o-1", STEPS[0])
    return "o-1"


def _event(detail_type: str, *, source: str | None = None, **fields: Any) -> dict[str, Any]:
    step, _, outcome = detail_type.partition(".")
    if detail_type == "Saga.Started":
        detail = {"step": None, "kind": "saga", "outcome": "Started"}
    else:
        kind = "compensation" if outcome.startswith("Compensat") else "action"
        detail = {"step": step, "kind": kind, "outcome": outcome}
    detail |= {
        "saga_id": "o-1",
        "saga_type": DEFINITION.name,
        "idempotency_key": f"o-1#{detail['step']}#{detail['kind']}",
        "input": {"order_id": "o-1"},
        **fields,
    }
    return {"source": source or saga_source(DEFINITION.name), "detail-type": detail_type, "detail": detail}


def test_a_started_saga_gets_its_first_steps_deadline_on_the_scaled_clock(tracker, saga, scheduler):
    tracker.handle(_event("Saga.Started"))
    schedule = scheduler.schedules[(saga, STEPS[0])]
    assert schedule["seconds"] == DEFINITION.steps[0].sla.timeout_seconds * 0.5
    assert (schedule["source"], schedule["detail_type"]) == (deadline_source(DEFINITION.name), f"{STEPS[0]}.TimedOut")


def test_a_deadline_marks_a_running_step_timed_out_and_publishes_it_with_the_saga_context(
    tracker, saga, scheduler, bus, records
):
    # Given the first step succeeded (claimed by its participant) and the second was requested
    records.action_claimed(saga, STEPS[0], StepStatus.SUCCEEDED, next_step=STEPS[1], result={"reserved": 1})
    tracker.handle(_event(f"{STEPS[0]}.Succeeded"))
    # When the second step's deadline fires while it still runs
    assert tracker.handle(scheduler.fire(saga, STEPS[1])) == "timed out"
    # Then it is FAILED with States.Timeout, and the saga's TimedOut carries the input and the results so far
    step = records.get(saga)["steps"][STEPS[1]]
    assert (step["status"], step["error"]) == (StepStatus.FAILED, "States.Timeout")
    (published,) = bus.published
    assert published.detail_type == f"{STEPS[1]}.TimedOut"
    assert published.results == {STEPS[0]: {"reserved": 1}}
    assert published.input == {"order_id": "o-1"}
    # And a participant's claim now loses: exactly one of them wins
    assert not records.action_claimed(saga, STEPS[1], StepStatus.SUCCEEDED, next_step=STEPS[2], result={})


def test_a_deadline_after_the_answer_changes_nothing(tracker, saga, scheduler, bus, records):
    tracker.handle(_event("Saga.Started"))
    records.action_claimed(saga, STEPS[0], StepStatus.SUCCEEDED, next_step=STEPS[1], result={})
    before = records.get(saga)
    assert tracker.handle(scheduler.fire(saga, STEPS[0])) == "answered in time"
    assert bus.published == []
    assert records.get(saga)["version"] == before["version"]


def test_the_last_steps_success_completes_the_saga_as_record_completed_does(tracker, saga, records):
    for index, step in enumerate(STEPS):
        next_step = STEPS[index + 1] if index + 1 < len(STEPS) else None
        assert records.action_claimed(saga, step, StepStatus.SUCCEEDED, next_step=next_step, result={})
    assert tracker.handle(_event(f"{STEPS[-1]}.Succeeded")) == "completed"
    record = records.get(saga)
    assert record["status"] == SagaStatus.COMPLETED
    assert record["current_step"] == STEPS[-1]
    assert {step["status"] for step in record["steps"].values()} == {StepStatus.SUCCEEDED}
    # Delivered again: nothing more
    assert tracker.handle(_event(f"{STEPS[-1]}.Succeeded")) == "already ended"


def test_the_first_steps_compensation_ends_the_saga_failed_with_the_error_that_started_it(tracker, saga, records):
    records.compensation_started(saga, STEPS[0])
    error = {"Error": "Payment.CardDeclined", "Cause": "declined"}
    # A failure with more to compensate leaves the saga to the compensations
    assert tracker.handle(_event(f"{STEPS[1]}.Failed", error=error["Error"], cause=error["Cause"])) == "compensating"
    assert tracker.handle(_event(f"{STEPS[0]}.Compensated", saga_error=error)) == "failed"
    record = records.get(saga)
    assert (record["status"], record["error"], record["cause"]) == (SagaStatus.FAILED, *error.values())


def test_a_failed_compensation_parks_the_saga_with_both_errors_and_what_a_resume_runs(tracker, saga, records):
    records.compensation_started(saga, STEPS[1])
    error = {"Error": "Shipping.AddressNotServiceable", "Cause": "nowhere"}
    event = _event(f"{STEPS[1]}.CompensationFailed", error="Payment.ChargeRefunded", cause="gone", saga_error=error)
    assert tracker.handle(event) == "parked"
    record = records.get(saga)
    assert record["status"] == SagaStatus.COMPENSATION_FAILED
    assert (record["failed_step"], record["compensation_error"], record["error"]) == (
        STEPS[1],
        "Payment.ChargeRefunded",
        error["Error"],
    )
    assert record["pending"] == pending_after_compensation_failure(DEFINITION, STEPS[1])


def test_an_event_of_an_untracked_saga_or_source_is_refused(tracker, saga):
    with pytest.raises(UnknownSaga, match="not tracked"):
        tracker.handle(_event("Saga.Started") | {"detail": _event("Saga.Started")["detail"] | {"saga_type": "Other"}})
    with pytest.raises(UnknownSaga, match="is not an event"):
        tracker.handle(_event("Saga.Started", source="sagas.Other"))
