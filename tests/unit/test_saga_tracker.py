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
from statemachines.compiler import pending_after_compensation_failure, pending_after_forward_recovery_failure
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.unit.tables import create_saga_table

pytestmark = pytest.mark.unit

DEFINITION = load_definition(SAGA_FILE.with_name("order_fulfillment_choreographed.saga.yaml"))
STEPS = [step.name for step in DEFINITION.steps]
# A choreographed saga with a pivot and a retriable step past it (forward recovery)
TRIP = load_definition(SAGA_FILE.with_name("trip_booking_choreographed.saga.yaml"))
TRIP_STEPS = [step.name for step in TRIP.steps]
PIVOT = TRIP.pivot
RETRIABLE = next(step for step in TRIP.steps if step.retriable)


class FakeBus:
    def __init__(self) -> None:
        self.published: list[SagaEventDetail] = []

    def publish(self, detail: SagaEventDetail) -> None:
        self.published.append(detail)


class FakeScheduler:
    def __init__(self) -> None:
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}

    def set(
        self,
        *,
        saga_id: str,
        step: str,
        seconds: float,
        source: str,
        detail_type: str,
        detail: str,
        attempt: int = 1,
    ) -> bool:
        key = (saga_id, step) if attempt == 1 else (saga_id, step, attempt)
        if key in self.schedules:
            return False
        self.schedules[key] = {
            "seconds": seconds,
            "source": source,
            "detail_type": detail_type,
            "detail": detail,
        }
        return True

    def fire(self, saga_id: str, step: str, attempt: int = 1) -> dict[str, Any]:
        schedule = self.schedules[(saga_id, step) if attempt == 1 else (saga_id, step, attempt)]
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


# --- forward recovery: the pivot and a retriable step are retried after their deadline, parked when out of retries ---


@pytest.fixture
def trip_tracker(records, bus, scheduler):
    setting = Choreography.model_validate(choreography.tracker_setting(TRIP))
    return SagaTracker(records, bus, scheduler, (setting,), time_scale=0.5)


@pytest.fixture
def trip_at_pivot(records):
    """A choreographed trip whose steps before the pivot succeeded: the pivot is RUNNING."""
    saga_input = {"trip_id": "o-1"}
    records.create(saga_id="o-1", saga_type=TRIP.name, steps=TRIP_STEPS, saga_input=saga_input)
    records.mark_running("o-1", "choreography:bus/o-1", TRIP_STEPS[0])
    pivot_index = TRIP_STEPS.index(PIVOT.name)
    for index, step in enumerate(TRIP_STEPS[:pivot_index]):
        records.action_claimed("o-1", step, StepStatus.SUCCEEDED, next_step=TRIP_STEPS[index + 1], result={"n": index})
    return "o-1"


def _trip_event(detail_type: str, *, deadline: bool = False, **fields: Any) -> dict[str, Any]:
    source = deadline_source(TRIP.name) if deadline else saga_source(TRIP.name)
    event = _event(detail_type, source=source, saga_type=TRIP.name, input={"trip_id": "o-1"}, **fields)
    return event


def test_a_pivot_past_its_deadline_is_requested_again_not_compensated(
    trip_tracker, trip_at_pivot, scheduler, bus, records
):
    # Given the pivot was requested (the step before it succeeded)
    before_pivot = TRIP_STEPS[TRIP_STEPS.index(PIVOT.name) - 1]
    trip_tracker.handle(_trip_event(f"{before_pivot}.Succeeded"))
    # When its deadline fires while it still runs
    assert trip_tracker.handle(scheduler.fire(trip_at_pivot, PIVOT.name)) == "retried"
    # Then it stays RUNNING, its second attempt counted, and the saga's Retried (no TimedOut) asks its action again
    step = records.get(trip_at_pivot)["steps"][PIVOT.name]
    assert (step["status"], step["attempt"]) == (StepStatus.RUNNING, 2)
    (published,) = bus.published
    assert (published.detail_type, published.attempt) == (f"{PIVOT.name}.Retried", 2)
    assert published.input == {"trip_id": "o-1"}
    done = TRIP_STEPS[: TRIP_STEPS.index(PIVOT.name)]
    assert published.results == {step: {"n": index} for index, step in enumerate(done)}
    # And seen by the tracker, the Retried sets the second attempt's own deadline
    trip_tracker.handle(_trip_event(f"{PIVOT.name}.Retried", attempt=2))
    assert scheduler.schedules[(trip_at_pivot, PIVOT.name, 2)]["seconds"] == PIVOT.sla.timeout_seconds * 0.5
    # And the same deadline delivered twice requests nothing more
    assert trip_tracker.handle(scheduler.fire(trip_at_pivot, PIVOT.name)) == "answered in time"
    assert len(bus.published) == 1


def test_a_pivot_out_of_timeout_retries_stalls_and_parks_for_forward_recovery(
    trip_tracker, trip_at_pivot, scheduler, bus, records
):
    # Given the pivot timed out on every attempt its retry policy allows
    retries = PIVOT.action_retry.max_attempts
    assert retries > 0
    for attempt in range(1, retries + 1):
        deadline = _trip_event(f"{PIVOT.name}.TimedOut", deadline=True, attempt=attempt)
        assert trip_tracker.handle(deadline) == "retried"
    # When the last attempt's deadline passes too
    last = _trip_event(f"{PIVOT.name}.TimedOut", deadline=True, attempt=retries + 1)
    assert trip_tracker.handle(last) == "stalled"
    # Then the step is FAILED with the timeout and the saga's Stalled published, never a TimedOut that compensates
    assert [detail.detail_type for detail in bus.published] == [f"{PIVOT.name}.Retried"] * retries + [
        f"{PIVOT.name}.Stalled"
    ]
    assert records.get(trip_at_pivot)["steps"][PIVOT.name]["error"] == "States.Timeout"
    # And the Stalled parks the saga as the orchestrated park state does: the step, the error, what a resume runs
    assert trip_tracker.handle(_trip_event(f"{PIVOT.name}.Stalled", error="States.Timeout", cause="late")) == (
        "parked for forward recovery"
    )
    record = records.get(trip_at_pivot)
    assert (record["status"], record["failed_step"], record["error"]) == (
        SagaStatus.FORWARD_RECOVERY_FAILED,
        PIVOT.name,
        "States.Timeout",
    )
    assert record["steps"][PIVOT.name]["status"] == StepStatus.FAILED
    assert record["pending"] == pending_after_forward_recovery_failure(TRIP, PIVOT.name)
    assert [entry["step"] for entry in record["pending"]] == TRIP_STEPS[TRIP_STEPS.index(PIVOT.name) :]


def test_a_retriable_steps_failure_parks_the_saga_and_the_pivots_refusal_compensates(
    trip_tracker, trip_at_pivot, records
):
    # The pivot's refusal leaves the saga to the compensation of the step before it
    assert trip_tracker.handle(_trip_event(f"{PIVOT.name}.Failed", error=PIVOT.permanent_errors[0])) == "compensating"
    assert records.get(trip_at_pivot)["status"] != SagaStatus.FORWARD_RECOVERY_FAILED
    # A retriable step is never compensated: its failure parks the saga for forward recovery
    error = "Notification.RecipientRejected"
    assert trip_tracker.handle(_trip_event(f"{RETRIABLE.name}.Failed", error=error, cause="no")) == (
        "parked for forward recovery"
    )
    record = records.get(trip_at_pivot)
    assert (record["status"], record["failed_step"], record["error"]) == (
        SagaStatus.FORWARD_RECOVERY_FAILED,
        RETRIABLE.name,
        error,
    )
    assert record["pending"] == [{"step": RETRIABLE.name, "kind": "action"}]
