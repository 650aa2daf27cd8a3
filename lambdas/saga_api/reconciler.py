"""Sweep for orphans: sagas whose record was written but whose execution never started.

Run on a schedule. A saga STARTED for longer than the grace period is started now (the same idempotent
start a client retry does); one STARTED for longer than the give-up period is failed instead, because
its client stopped waiting long ago and nothing of it ran (so there is nothing to compensate).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from saga_records import SagaStatus
from saga_records.starter import SagaStartDeferred, StartedSaga

START_FAILED_ERROR = "Saga.StartFailed"


class Resumer(Protocol):
    def resume(self, record: dict[str, Any]) -> StartedSaga: ...


class StartedRecords(Protocol):
    def in_status(self, status: SagaStatus, *, created_before: str | None = None) -> Iterable[dict[str, Any]]: ...

    def mark_start_failed(self, saga_id: str, error: str, cause: str) -> bool: ...


@dataclass
class Sweep:
    started: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # StartExecution still failing: next sweep


class OrphanReconciler:
    def __init__(self, starter: Resumer, records: StartedRecords, *, grace_seconds: float, give_up_seconds: float):
        self.starter = starter
        self.records = records
        self.grace = timedelta(seconds=grace_seconds)
        self.give_up = timedelta(seconds=give_up_seconds)

    def sweep(self, now: datetime | None = None) -> Sweep:
        now = now or datetime.now(UTC)
        result = Sweep()
        for record in self.records.in_status(SagaStatus.STARTED, created_before=_timestamp(now - self.grace)):
            saga_id = record["saga_id"]
            if record["created_at"] < _timestamp(now - self.give_up):
                if self.records.mark_start_failed(
                    saga_id, START_FAILED_ERROR, f"execution not started within {self.give_up.total_seconds():g} s"
                ):
                    result.failed.append(saga_id)
                continue
            try:
                self.starter.resume(record)
                result.started.append(saga_id)
            except SagaStartDeferred:
                result.deferred.append(saga_id)
        return result


def _timestamp(moment: datetime) -> str:
    """The saga record's timestamp format (saga_records.utc_now), so that strings compare as times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
