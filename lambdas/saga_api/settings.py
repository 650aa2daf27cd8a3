"""Environment of the API and reconciler functions, parsed once at cold start."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from saga_api.admission import AdmissionLimits
from saga_records.starter import SagaSpec


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    starts_per_second: float = Field(gt=0)
    burst: int = Field(ge=1)
    max_queue_backlog: int = Field(ge=1)

    def limits(self) -> AdmissionLimits:
        return AdmissionLimits(self.starts_per_second, self.burst, self.max_queue_backlog)


class SagaSetting(BaseModel):
    """One saga behind the API (infra/constructs/saga_api.py writes them, in the SAGAS variable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_type: str = Field(min_length=1)
    path: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")  # POST /<path>, GET /<path>/{id}, GET /<path>?status=
    # An orchestrated saga's state machine, or a choreographed saga's bus (exactly one of the two).
    state_machine_arn: str | None = Field(default=None, pattern=r"^arn:[^:]+:states:")
    bus_name: str | None = Field(default=None, min_length=1)
    # A choreographed saga's: the SSM parameter listing its command queues (its backlog check reads them).
    command_queues_parameter: str | None = Field(default=None, min_length=1)
    steps: tuple[str, ...] = Field(min_length=1)  # in order: the record lists them, the first is marked running
    id_field: str | None = None  # the input field that names the saga; None: the Idempotency-Key header does
    input_module: str = Field(pattern=r"^[a-z_][a-z0-9_.]*$")  # its pydantic model `Input` is the request body
    admission: Limits  # what the API admits of it: the definition's `admission:` block with its defaults

    @property
    def spec(self) -> SagaSpec:
        return SagaSpec(self.saga_type, self.state_machine_arn, self.steps, bus_name=self.bus_name)

    @model_validator(mode="after")
    def _one_way_to_start(self) -> SagaSetting:
        if (self.state_machine_arn is None) == (self.bus_name is None):
            raise ValueError(f"{self.saga_type}: give a state machine (orchestration) or a bus (choreography)")
        if self.command_queues_parameter is not None and self.bus_name is None:
            raise ValueError(f"{self.saga_type}: a command queues parameter is a choreographed saga's (with a bus)")
        return self


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    saga_table_name: str = Field(alias="SAGA_TABLE_NAME", min_length=1)
    sagas: tuple[SagaSetting, ...] = Field(alias="SAGAS", min_length=1)  # JSON in the environment
    # Largest request body, bytes: what a saga can carry through Step Functions (see infra/constants.py).
    max_request_bytes: int = Field(alias="MAX_REQUEST_BYTES", gt=0)
    # A saga STARTED this long without its execution is an orphan for the reconciler to start, seconds.
    start_grace_seconds: float = Field(alias="START_GRACE_SECONDS", gt=0)
    # ... and one STARTED longer than this is failed instead: its client has long stopped waiting, seconds.
    start_give_up_seconds: float = Field(alias="START_GIVE_UP_SECONDS", gt=0)
    # The API function's own (the reconciler, built by the same module, has neither): the KMS HMAC key that makes
    # and checks listing page tokens (its ARN), and the table of the start-rate buckets.
    page_token_key_id: str | None = Field(alias="PAGE_TOKEN_KEY_ID", default=None, min_length=1)
    admission_table_name: str | None = Field(alias="ADMISSION_TABLE_NAME", default=None, min_length=1)
    # The local runtime runs time faster (e.g. 0.02); 1.0 on AWS.
    time_scale: float = Field(alias="SAGA_TIME_SCALE", default=1.0, gt=0, le=1)

    @field_validator("sagas", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls.model_validate(dict(os.environ))
