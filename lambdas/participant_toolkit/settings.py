"""Environment of a participant function, parsed once at cold start."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class ParticipantSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    service_table_name: str = Field(alias="SERVICE_TABLE_NAME", min_length=1)
    saga_table_name: str = Field(alias="SAGA_TABLE_NAME", min_length=1)
    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME", min_length=1)
    # How long a processed command is remembered, seconds; beyond it the domain's own conditional writes dedupe.
    idempotency_ttl_seconds: int = Field(alias="IDEMPOTENCY_TTL_SECONDS", default=3600, ge=60)
    # The local runtime runs time faster (e.g. 0.02); heartbeats follow the same clock. 1.0 on AWS.
    time_scale: float = Field(alias="SAGA_TIME_SCALE", default=1.0, gt=0, le=1)
    # The saga bus a choreographed command is answered on; unset for a participant of orchestrated sagas only.
    saga_bus_name: str | None = Field(alias="SAGA_BUS_NAME", default=None)

    @classmethod
    def from_env(cls) -> ParticipantSettings:
        return cls.model_validate(dict(os.environ))
