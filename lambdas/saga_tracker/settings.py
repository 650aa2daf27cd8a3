"""Environment of the tracker function, parsed once at cold start."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Choreography(BaseModel):
    """What the tracker knows of one choreographed saga (statemachines.choreography.tracker_setting writes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_type: str = Field(min_length=1)
    steps: tuple[str, ...] = Field(min_length=1)
    deadlines: dict[str, int]  # step -> its SLA's timeout, seconds
    completes_on: str  # the detail-type that ends the saga COMPLETED
    ends_failed: tuple[str, ...]  # detail-types after which nothing is left to compensate: FAILED
    pending_after_compensation_failure: dict[str, list[dict[str, str]]]  # step -> what a resume runs
    # Forward recovery (the pivot and retriable steps): the detail-types that park the saga FORWARD_RECOVERY_FAILED,
    # each such step's timeout retries, and what a resume runs once it stalled.
    parks_forward: tuple[str, ...] = ()
    timeout_retries: dict[str, int] = Field(default_factory=dict)
    pending_after_forward_recovery_failure: dict[str, list[dict[str, str]]] = Field(default_factory=dict)


class TrackerSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    saga_table_name: str = Field(alias="SAGA_TABLE_NAME", min_length=1)
    saga_bus_name: str = Field(alias="SAGA_BUS_NAME", min_length=1)
    saga_bus_arn: str = Field(alias="SAGA_BUS_ARN", pattern=r"^arn:[^:]+:events:")
    # The role EventBridge Scheduler assumes to put a deadline's event on the bus.
    scheduler_role_arn: str = Field(alias="SCHEDULER_ROLE_ARN", pattern=r"^arn:[^:]+:iam::")
    schedule_group: str = Field(alias="SCHEDULE_GROUP", default="default", min_length=1)
    choreographies: tuple[Choreography, ...] = Field(alias="CHOREOGRAPHIES", min_length=1)
    # The local runtime runs time faster (e.g. 0.02); deadlines follow the same clock. 1.0 on AWS.
    time_scale: float = Field(alias="SAGA_TIME_SCALE", default=1.0, gt=0, le=1)

    @field_validator("choreographies", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> TrackerSettings:
        return cls.model_validate(dict(os.environ))
