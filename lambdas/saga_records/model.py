"""Statuses of a saga and of its steps, as stored on the saga record."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum


class SagaStatus(StrEnum):
    STARTED = "STARTED"  # record written, execution not yet confirmed
    PENDING = "PENDING"  # running forward
    COMPENSATING = "COMPENSATING"  # undoing completed steps
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # every completed step compensated: a business outcome, not an incident
    COMPENSATION_FAILED = "COMPENSATION_FAILED"  # parked: a compensation ran out of retries
    FORWARD_RECOVERY_FAILED = "FORWARD_RECOVERY_FAILED"  # parked: a retriable step ran out of retries
    # parked: the execution itself failed, timed out or was aborted, where no Catch runs (set by the reconciler)
    EXECUTION_FAILED = "EXECUTION_FAILED"
    RESOLVED = "RESOLVED"  # closed by an operator by hand; who, when and why are in its operator_actions


TERMINAL_STATUSES = frozenset({SagaStatus.COMPLETED, SagaStatus.FAILED, SagaStatus.RESOLVED})
PARKED_STATUSES = frozenset(
    {SagaStatus.COMPENSATION_FAILED, SagaStatus.FORWARD_RECOVERY_FAILED, SagaStatus.EXECUTION_FAILED}
)
# Still running (or never got going): what the stuck-saga detector checks against the saga's deadline.
IN_FLIGHT_STATUSES = (SagaStatus.STARTED, SagaStatus.PENDING, SagaStatus.COMPENSATING)


class StepStatus(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, the format Step Functions writes for $$.State.EnteredTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
