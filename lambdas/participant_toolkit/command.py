"""The command envelope the generated state machine sends to a participant queue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CommandKind = Literal["action", "compensation"]


class SagaCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_id: str = Field(min_length=1, max_length=80)
    saga_type: str = Field(min_length=1)
    step: str = Field(min_length=1)
    kind: CommandKind
    command: str = Field(min_length=1)
    idempotency_key: str = Field(min_length=1)
    task_token: str = Field(min_length=1, repr=False)  # a bearer credential: never logged
    heartbeat_seconds: int = Field(ge=1)
    input: dict[str, Any]
    results: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None

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
