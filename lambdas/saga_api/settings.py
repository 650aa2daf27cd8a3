"""Environment of the API and reconciler functions, parsed once at cold start."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    saga_table_name: str = Field(alias="SAGA_TABLE_NAME", min_length=1)
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=r"^arn:[^:]+:states:")
    saga_type: str = Field(alias="SAGA_TYPE", min_length=1)
    saga_steps: tuple[str, ...] = Field(alias="SAGA_STEPS", min_length=1)  # comma-separated in the environment
    # Largest POST /orders body, bytes: what the saga can carry through Step Functions (see infra/constants.py).
    max_request_bytes: int = Field(alias="MAX_REQUEST_BYTES", gt=0)
    # A saga STARTED this long without its execution is an orphan for the reconciler to start, seconds.
    start_grace_seconds: float = Field(alias="START_GRACE_SECONDS", gt=0)
    # ... and one STARTED longer than this is failed instead: its client has long stopped waiting, seconds.
    start_give_up_seconds: float = Field(alias="START_GIVE_UP_SECONDS", gt=0)
    # The local runtime runs time faster (e.g. 0.02); 1.0 on AWS.
    time_scale: float = Field(alias="SAGA_TIME_SCALE", default=1.0, gt=0, le=1)

    @field_validator("saga_steps", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return tuple(step for step in value.split(",") if step) if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.model_validate(dict(os.environ))
