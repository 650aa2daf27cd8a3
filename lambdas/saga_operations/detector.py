"""The stuck-saga detector: sagas past their deadline, and sagas parked for a human.

A saga is stuck when it is still in flight (STARTED, PENDING, COMPENSATING) past the deadline its definition's
step SLAs allow (computed at synth by statemachines.deadline), or parked (COMPENSATION_FAILED,
FORWARD_RECOVERY_FAILED, EXECUTION_FAILED). Each one is sent to the stuck-sagas queue, and as a notice to the alarm
topic, once per incident: an incident is the saga's status, step and the time it entered them, claimed on the saga
record with a conditional write before the message goes out (and released if sending fails, so nothing is lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from saga_operations.records import OperationsRecords
from saga_records import IN_FLIGHT_STATUSES, PARKED_STATUSES, SagaStatus

PARKED_ORDER = sorted(PARKED_STATUSES)


class ReportSink(Protocol):
    def send(self, report: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class StuckSaga:
    saga_id: str
    saga_type: str
    status: str
    reason: str  # "parked" or "past_deadline"
    step: str
    error: str
    cause: str
    execution_arn: str
    created_at: str
    updated_at: str

    @property
    def incident(self) -> str:
        """Same status, same step, entered at the same time: the same incident, reported once."""
        return f"{self.status}|{self.step}|{self.updated_at}"

    def report(self) -> dict[str, Any]:
        return {**asdict(self), "incident": self.incident}


@dataclass(frozen=True)
class Detection:
    stuck: list[StuckSaga]
    reported: list[StuckSaga]  # new incidents sent to the queue by this run
    in_status: dict[str, int]  # sagas per non-terminal status


def iso(moment: datetime) -> str:
    """The saga record's timestamp format (saga_records.utc_now), so that strings compare as times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class StuckSagaDetector:
    def __init__(
        self,
        records: OperationsRecords,
        sink: ReportSink | None,
        *,
        deadlines: dict[str, int],
        time_scale: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not deadlines:
            raise ValueError("deadlines: at least one saga type's deadline is needed")
        self.records = records
        self.sink = sink
        self.time_scale = time_scale
        self.deadlines = deadlines
        self.clock = clock

    def deadline_of(self, saga_type: str) -> timedelta:
        # An unknown type (a definition removed while its sagas run) gets the most patient deadline known.
        seconds = self.deadlines.get(saga_type, max(self.deadlines.values()))
        return timedelta(seconds=seconds * self.time_scale)

    def find(self) -> list[StuckSaga]:
        now = self.clock()
        found = [
            _stuck(record, "parked") for status in PARKED_ORDER for record in self.records.in_status(SagaStatus(status))
        ]
        # The index's sort key is created_at: only sagas older than the shortest deadline are read.
        oldest_allowed = iso(now - min(self.deadline_of(saga_type) for saga_type in self.deadlines))
        for status in IN_FLIGHT_STATUSES:
            for record in self.records.in_status(status, created_before=oldest_allowed):
                if iso(now - self.deadline_of(record.get("saga_type", ""))) > record["created_at"]:
                    found.append(_stuck(record, "past_deadline"))
        return found

    def run(self) -> Detection:
        stuck = self.find()
        reported = [saga for saga in stuck if self._report_once(saga)]
        in_status = {
            status.value: self.records.count_in_status(SagaStatus(status))
            for status in (*IN_FLIGHT_STATUSES, *PARKED_ORDER)
        }
        return Detection(stuck=stuck, reported=reported, in_status=in_status)

    def _report_once(self, saga: StuckSaga) -> bool:
        if self.sink is None:
            return False
        if not self.records.claim_incident(saga.saga_id, saga.status, saga.incident):
            return False
        try:
            self.sink.send(saga.report())
        except Exception:
            self.records.release_incident(saga.saga_id, saga.incident)
            raise
        return True


def _stuck(record: dict[str, Any], reason: str) -> StuckSaga:
    compensation_failed = record["status"] == SagaStatus.COMPENSATION_FAILED
    error_prefix = "compensation_" if compensation_failed else ""
    return StuckSaga(
        saga_id=record["saga_id"],
        saga_type=record.get("saga_type", ""),
        status=record["status"],
        reason=reason,
        step=record.get("failed_step") or record.get("current_step") or "",
        error=record.get(f"{error_prefix}error") or record.get("error") or "",
        cause=record.get(f"{error_prefix}cause") or record.get("cause") or "",
        execution_arn=record.get("execution_arn") or "",
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )
