"""The command envelope the generated state machine sends to a participant queue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

CommandKind = Literal["action", "compensation"]


class SagaCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_id: str = Field(min_length=1, max_length=80)
    saga_type: str = Field(min_length=1)
    step: str = Field(min_length=1)
    kind: CommandKind
    command: str = Field(min_length=1)
    idempotency_key: str = Field(min_length=1)
    # Whether the step is recovered forward (the pivot or a retriable step: retried, never compensated), set by the
    # compiler on its action; read before the token.
    retriable: bool = False
    # A bearer credential: never logged. None only for what an operator re-runs on a parked saga (saga_ops resume),
    # a compensation or a forward-recovered step's action: no task waits for it, and its outcome goes on the record.
    task_token: str | None = Field(default=None, min_length=1, repr=False, validate_default=True)
    heartbeat_seconds: int = Field(ge=1)
    input: dict[str, Any]
    results: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    # An action's place in its saga (set by the compiler): the steps either side of it. What the toolkit reads the
    # saga record by; absent on compensations.
    previous_step: str | None = Field(default=None, min_length=1)
    next_step: str | None = Field(default=None, min_length=1)
    # An action's compensation command: the function that undoes it when its answer comes too late for a saga that
    # gave the step up. Absent on compensations and on retriable steps (never compensated).
    compensation: str | None = Field(default=None, min_length=1)

    @field_validator("task_token")
    @classmethod
    def _only_operator_runs_without_token(cls, token: str | None, info: ValidationInfo) -> str | None:
        if token is None and info.data.get("kind") != "compensation" and not info.data.get("retriable"):
            raise ValueError("required for an action of a step that is not retriable")
        return token

    def log_keys(self) -> dict[str, str]:
        """What may appear in logs: identifiers only, never the token or the payload."""
        return {
            "saga_id": self.saga_id,
            "step": self.step,
            "kind": self.kind,
            "command": self.command,
            "idempotency_key": self.idempotency_key,
        }


class MalformedCommand(ValueError):
    """A message that is not a valid saga command. The message names fields only: the body may hold a token."""


def parse_command(body: str) -> SagaCommand:
    try:
        return SagaCommand.model_validate_json(body)
    except ValidationError as error:
        problems = sorted({f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['type']}" for e in error.errors()})
        raise MalformedCommand(f"not a saga command ({'; '.join(problems)})") from None
