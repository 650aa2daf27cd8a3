"""Environment of the operations functions, parsed once at cold start."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OperationsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    saga_table_name: str = Field(alias="SAGA_TABLE_NAME", min_length=1)
    # Detector only: where operators are told about stuck sagas.
    stuck_sagas_queue_url: str | None = Field(alias="STUCK_SAGAS_QUEUE_URL", default=None, min_length=1)
    # Detector only: the alarm topic, where each new incident is also a notice to a human.
    incident_topic_arn: str | None = Field(alias="INCIDENT_TOPIC_ARN", default=None, min_length=1)
    # Detector only: saga type -> deadline in seconds after its start, computed at synth from the step SLAs.
    saga_deadlines: dict[str, int] = Field(alias="SAGA_DEADLINES_JSON", default_factory=dict)
    # The local runtime runs time faster (e.g. 0.02); deadlines follow the same clock. 1.0 on AWS.
    time_scale: float = Field(alias="SAGA_TIME_SCALE", default=1.0, gt=0, le=1)

    @field_validator("saga_deadlines", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> OperationsSettings:
        return cls.model_validate(dict(os.environ))
