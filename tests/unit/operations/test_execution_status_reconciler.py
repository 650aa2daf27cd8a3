"""The execution-status reconciler: an execution that ended where no Catch runs parks its saga record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from saga_operations.execution_status import ExecutionStatusReconciler, status_change_event

pytestmark = pytest.mark.unit

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderFulfillment"


def event(saga_id: str, status: str, **overrides):
    execution = {
        "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:OrderFulfillment:{saga_id}",
        "stateMachineArn": MACHINE,
        "name": saga_id,
        "status": status,
        "startDate": datetime(2026, 11, 26, 11, 0, tzinfo=UTC),
        "stopDate": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        **overrides,
    }
    return status_change_event(execution, region="us-east-1", account="123456789012")


@pytest.fixture
def reconciler(records):
    return ExecutionStatusReconciler(records)


@pytest.mark.parametrize("status", ["TIMED_OUT", "ABORTED", "FAILED"])
def test_an_in_flight_saga_whose_execution_ended_is_parked(reconciler, records, put_saga, status):
    # Given a saga the record says is still at process_payment
    put_saga("s-1", "PENDING", age=timedelta(hours=2), current_step="process_payment")
    # When its execution's status-change event arrives
    assert reconciler.reconcile(event("s-1", status)) is True
    # Then the record tells the truth: parked, at which step, and why
    record = records.get("s-1")
    assert record["status"] == "EXECUTION_FAILED"
    assert record["execution_status"] == status
    assert record["failed_step"] == "process_payment"
    assert record["error"].startswith("States.")
    assert record["version"] == 2


def test_the_execution_error_and_cause_are_kept(reconciler, records, put_saga):
    put_saga("s-2", "COMPENSATING", age=timedelta(hours=2), current_step="reserve_inventory")
    reconciler.reconcile(event("s-2", "FAILED", error="States.DataLimitExceeded", cause="payload too large"))
    record = records.get("s-2")
    assert (record["error"], record["cause"]) == ("States.DataLimitExceeded", "payload too large")


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "COMPENSATION_FAILED", "RESOLVED"])
def test_a_record_the_state_machine_already_ended_is_left_alone(reconciler, records, put_saga, status):
    # Given a saga whose state machine recorded its end (e.g. parked then failed with Saga.CompensationFailed)
    before = put_saga("s-3", status, age=timedelta(hours=2))
    # When its FAILED event arrives
    assert reconciler.reconcile(event("s-3", "FAILED", error="Saga.CompensationFailed")) is False
    # Then nothing changed
    assert records.get("s-3")["status"] == before["status"]
    assert records.get("s-3")["version"] == 1


@pytest.mark.parametrize("running", ["PENDING", "COMPENSATING"])
def test_a_late_event_leaves_a_saga_an_operator_is_resuming_to_the_operator(reconciler, records, put_saga, running):
    # Given a parked saga whose execution ended, which an operator resumed before the execution's event arrived
    resume = {"action": "retry", "by": "ana@ops", "reason": "provider is back", "at": "2026-11-26T12:00:01Z"}
    put_saga("s-6", running, age=timedelta(hours=2), operator_actions=[resume])
    # When that execution's FAILED event arrives
    assert reconciler.reconcile(event("s-6", "FAILED", error="Saga.ForwardRecoveryFailed")) is False
    # Then the operator's run keeps the record
    assert (records.get("s-6")["status"], records.get("s-6")["version"]) == (running, 1)


def test_a_redelivered_event_changes_nothing_more(reconciler, records, put_saga):
    put_saga("s-4", "PENDING", age=timedelta(hours=2))
    assert reconciler.reconcile(event("s-4", "ABORTED")) is True
    assert reconciler.reconcile(event("s-4", "ABORTED")) is False
    assert records.get("s-4")["version"] == 2


def test_an_event_of_another_execution_of_the_same_name_is_ignored(reconciler, records, put_saga):
    put_saga("s-5", "PENDING", age=timedelta(hours=2))
    other = event("s-5", "ABORTED", executionArn="arn:aws:states:us-east-1:123456789012:execution:Other:s-5")
    assert reconciler.reconcile(other) is False
    assert records.get("s-5")["status"] == "PENDING"


def test_an_event_for_an_unknown_saga_writes_nothing(reconciler, records):
    assert reconciler.reconcile(event("nobody", "TIMED_OUT")) is False
    assert records.get("nobody") is None


def test_a_foreign_event_is_refused_naming_the_field(reconciler, records, put_saga):
    put_saga("s-6", "PENDING", age=timedelta(hours=2))
    succeeded = event("s-6", "SUCCEEDED")
    with pytest.raises(ValidationError, match=r"detail\.status"):
        reconciler.reconcile(succeeded)
    assert records.get("s-6")["status"] == "PENDING"
