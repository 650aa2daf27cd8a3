"""What the tracker does with each event of a choreographed saga, so that its saga record reads as an orchestrated
saga's does (the status API, the detector, the alarms and the operator CLI serve both patterns unchanged).

Participants keep their own steps on the record (a claimed outcome, a compensation's marks); the tracker adds what an
orchestrator would: each requested step's deadline, a step timed out, and the saga's end. Every write is
conditional, so an event delivered twice (EventBridge and SQS deliver at least once) changes nothing the second time.

- `Saga.Started`, or a `<step>.Succeeded` that is not the last step's: the deadline of the step now requested, a
  one-time schedule that puts `<step>.TimedOut` on the bus under the saga's deadline source;
- a deadline: if the step is still RUNNING, it is marked FAILED with `States.Timeout` (a participant's later claim of
  an answer then loses: a late answer) and the saga's own `<step>.TimedOut` is published, which compensates as the
  definition says; a step that answered first is left alone;
- the last step's `Succeeded`: COMPLETED (every step SUCCEEDED, as the state machine's RecordCompleted writes);
- a `Failed`, `TimedOut` or `Compensated` after which nothing is left to compensate: FAILED, with the failure that
  started it;
- a `CompensationFailed`: parked COMPENSATION_FAILED with the step, both errors and what a resume runs;
- forward recovery (the pivot and retriable steps: retried, never compensated): a deadline of such a step still
  RUNNING with timeout retries left counts the next attempt on the step and publishes `<step>.Retried`, which requests
  its action again (and, seen here, the new attempt's deadline); out of retries, the step is marked timed out and
  `<step>.Stalled` published; a `Stalled` (or a retriable step's `Failed`) parks the saga FORWARD_RECOVERY_FAILED with
  the step, its error and what a resume runs (the step and every one after it).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import host_hooks
from saga_records import SagaRecordRepository, StepStatus
from saga_records.events import (
    SAGA_STARTED,
    TIMEOUT_ERROR,
    Outcome,
    SagaEventDetail,
    deadline_source,
    detail_type,
    saga_source,
)
from saga_tracker.settings import Choreography

DEADLINE_CAUSE = "The step's deadline (its SLA's timeout_seconds) passed before it answered."


class Bus(Protocol):
    def publish(self, detail: SagaEventDetail) -> None: ...


class DeadlineScheduler(Protocol):
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
    ) -> bool: ...


class UnknownSaga(Exception):
    """An event of a saga type, or from a source, this tracker does not track: a wiring error, dead-lettered."""


class SagaTracker:
    def __init__(
        self,
        records: SagaRecordRepository,
        bus: Bus,
        deadlines: DeadlineScheduler,
        choreographies: tuple[Choreography, ...],
        *,
        time_scale: float = 1.0,
    ) -> None:
        self.records, self.bus, self.deadlines = records, bus, deadlines
        self.sagas = {saga.saga_type: saga for saga in choreographies}
        self.time_scale = time_scale
        host_hooks.announce(self)

    def handle(self, event: dict[str, Any]) -> str:
        """One EventBridge event; returns what it did (for logs and tests)."""
        detail = SagaEventDetail.model_validate(event.get("detail"))
        saga = self.sagas.get(detail.saga_type)
        if saga is None:
            raise UnknownSaga(f"saga type {detail.saga_type!r} is not tracked here")
        source, kind = event.get("source"), event.get("detail-type")
        if source == deadline_source(saga.saga_type):
            return self._deadline(saga, detail)
        if source != saga_source(saga.saga_type) or kind != detail.detail_type:
            raise UnknownSaga(f"{source} {kind} is not an event of saga type {saga.saga_type}")
        if kind == SAGA_STARTED:
            return self._request(saga, detail, saga.steps[0])
        if kind == saga.completes_on:
            done = self.records.completed(detail.saga_id, list(saga.steps))
            return "completed" if done else "already ended"
        if detail.outcome == Outcome.SUCCEEDED:
            assert detail.step is not None
            return self._request(saga, detail, saga.steps[saga.steps.index(detail.step) + 1])
        if detail.outcome == Outcome.RETRIED:
            assert detail.step is not None
            return self._request(saga, detail, detail.step, attempt=detail.attempt)
        if kind in saga.parks_forward:
            return self._park_forward(saga, detail)
        if kind in saga.ends_failed:
            error = detail.saga_error or {"Error": detail.error or "", "Cause": detail.cause or ""}
            done = self.records.ended_failed(detail.saga_id, error=error["Error"], cause=error.get("Cause", ""))
            return "failed" if done else "already ended"
        if detail.outcome == Outcome.COMPENSATION_FAILED:
            return self._park(saga, detail)
        return "compensating"  # a participant's compensation reacts to it

    def _request(self, saga: Choreography, detail: SagaEventDetail, step: str, *, attempt: int = 1) -> str:
        """`step` is requested now (its `attempt`): its deadline, on the scaled clock."""
        deadline = SagaEventDetail(
            saga_id=detail.saga_id,
            saga_type=saga.saga_type,
            step=step,
            kind="action",
            outcome="TimedOut",
            idempotency_key=f"{detail.saga_id}#{step}#action",
            input={},  # the tracker reads the saga's input and results from the record when it fires
            attempt=attempt,
        )
        self.deadlines.set(
            saga_id=detail.saga_id,
            step=step,
            seconds=saga.deadlines[step] * self.time_scale,
            source=deadline_source(saga.saga_type),
            detail_type=detail_type(step, Outcome.TIMED_OUT),
            detail=deadline.model_dump_json(),
            attempt=attempt,
        )
        return f"deadline of {step}" if attempt == 1 else f"deadline of {step}, attempt {attempt}"

    def _deadline(self, saga: Choreography, detail: SagaEventDetail) -> str:
        assert detail.step is not None
        step = detail.step
        retries = saga.timeout_retries.get(step)
        if retries is not None and detail.attempt <= retries:
            # Forward recovery: the outcome is unknown and the action idempotent, so it is requested again
            if not self.records.step_retried(detail.saga_id, step, detail.attempt + 1):
                return "answered in time"
            self._publish_with_context(
                saga, detail, outcome=Outcome.RETRIED, attempt=detail.attempt + 1, error=None, cause=None
            )
            return "retried"
        if not self.records.step_timed_out(detail.saga_id, step, error=TIMEOUT_ERROR, cause=DEADLINE_CAUSE):
            return "answered in time"
        # A forward-recovered step out of timeout retries stalls (the saga parks); any other step's timeout compensates
        outcome = Outcome.STALLED if retries is not None else Outcome.TIMED_OUT
        self._publish_with_context(
            saga, detail, outcome=outcome, attempt=detail.attempt, error=TIMEOUT_ERROR, cause=DEADLINE_CAUSE
        )
        return "stalled" if retries is not None else "timed out"

    def _publish_with_context(
        self,
        saga: Choreography,
        deadline: SagaEventDetail,
        *,
        outcome: Outcome,
        attempt: int,
        error: str | None,
        cause: str | None,
    ) -> None:
        """The saga's own event about the deadline's step, with the saga's input and results read from its record."""
        record = self.records.get(deadline.saga_id) or {}
        steps = record.get("steps") or {}
        results = {
            name: steps[name]["result"]
            for name in saga.steps
            if (steps.get(name) or {}).get("status") == StepStatus.SUCCEEDED and "result" in steps[name]
        }
        self.bus.publish(
            deadline.model_copy(
                update={
                    "outcome": outcome.value,
                    "input": record.get("input") or {},
                    "results": results,
                    "error": error,
                    "cause": cause,
                    "attempt": attempt,
                }
            )
        )

    def _park(self, saga: Choreography, detail: SagaEventDetail) -> str:
        assert detail.step is not None
        error = detail.saga_error or {}
        done = self.records.compensation_parked(
            detail.saga_id,
            failed_step=detail.step,
            compensation_error=detail.error or "",
            compensation_cause=detail.cause or "",
            error=error.get("Error", ""),
            cause=error.get("Cause", ""),
            pending=saga.pending_after_compensation_failure[detail.step],
        )
        return "parked" if done else "already ended"

    def _park_forward(self, saga: Choreography, detail: SagaEventDetail) -> str:
        assert detail.step is not None
        done = self.records.forward_recovery_parked(
            detail.saga_id,
            failed_step=detail.step,
            error=detail.error or "",
            cause=detail.cause or "",
            pending=saga.pending_after_forward_recovery_failure[detail.step],
        )
        return "parked for forward recovery" if done else "already ended"


def parse_event(body: str) -> dict[str, Any]:
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("not an EventBridge event")
    return event
