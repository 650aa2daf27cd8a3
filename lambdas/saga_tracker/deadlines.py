"""Step deadlines as EventBridge Scheduler one-time schedules (the only module of the tracker that calls Scheduler)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

# Every deadline schedule's name starts so: the tracker's role may create schedules of this prefix only.
SCHEDULE_PREFIX = "SagaDeadline-"


def schedule_name(saga_id: str, step: str, attempt: int = 1) -> str:
    """One schedule per saga, step and attempt (a forward-recovered step's retries each have their own deadline),
    within Scheduler's 64 characters whatever the saga id's length."""
    key = f"{saga_id}#{step}" if attempt == 1 else f"{saga_id}#{step}#{attempt}"
    return SCHEDULE_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:48]


class Deadlines:
    def __init__(self, *, bus_arn: str, role_arn: str, group: str) -> None:
        self.bus_arn, self.role_arn, self.group = bus_arn, role_arn, group

    @cached_property
    def _scheduler(self) -> Any:
        return boto3.client("scheduler")

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
        """A one-time schedule that puts `detail_type` on the bus `seconds` from now and then deletes itself; False if
        it exists already (the event that asked for it came twice)."""
        at = (datetime.now(UTC) + timedelta(seconds=max(1.0, seconds))).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._scheduler.create_schedule(
                Name=schedule_name(saga_id, step, attempt),
                GroupName=self.group,
                ScheduleExpression=f"at({at})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": self.bus_arn,
                    "RoleArn": self.role_arn,
                    "Input": detail,
                    "EventBridgeParameters": {"DetailType": detail_type, "Source": source},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConflictException":
                return False
            raise
        return True
