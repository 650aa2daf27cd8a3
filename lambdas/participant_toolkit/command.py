"""The command envelope a participant queue carries: sent by the generated state machine (answered through its task
token), or under choreography by a rule of the saga bus (answered by an event on the bus: the rule's input transformer
puts the triggering event's detail under `event`, beside what the rule knows of the command), or by the participant
itself, a transient failure's retry (`attempt` counted)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from saga_records.events import SagaEventDetail

CommandKind = Literal["action", "compensation"]
Reply = Literal["task_token", "bus"]


class CommandRetry(BaseModel):
    """A choreographed command's retry policy for its transient errors (the definition's, written by the rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    errors: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=0, ge=0)
    interval_seconds: float = Field(default=2, ge=0)
    backoff_rate: float = Field(default=2.0, ge=1.0)
    max_delay_seconds: float = Field(default=30, ge=0, le=900)  # SQS DelaySeconds caps it
    jitter: Literal["FULL", "NONE"] = "FULL"


class SagaCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_id: str = Field(min_length=1, max_length=80)
    saga_type: str = Field(min_length=1)
    step: str = Field(min_length=1)
    kind: CommandKind
    command: str = Field(min_length=1)
    idempotency_key: str = Field(min_length=1)
    # How to answer: the task token (orchestration), or an event on the saga bus (choreography).
    reply: Reply = "task_token"
    # Choreography: this delivery's attempt (1 for the first), and the transient errors' retry policy.
    attempt: int = Field(default=1, ge=1)
    retry: CommandRetry | None = None
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
        operator_run = info.data.get("kind") == "compensation" or info.data.get("retriable")
        if token is None and not operator_run and info.data.get("reply") != "bus":
            raise ValueError("required for an action of a step that is not retriable, answered through its task")
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
        if '"event"' in body:
            return _from_event(json.loads(body))
        return SagaCommand.model_validate_json(body)
    except (ValidationError, ValueError) as error:
        if not isinstance(error, ValidationError):
            raise MalformedCommand(f"not a saga command ({type(error).__name__})") from None
        problems = sorted({f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['type']}" for e in error.errors()})
        raise MalformedCommand(f"not a saga command ({'; '.join(problems)})") from None


def _from_event(envelope: Any) -> SagaCommand:
    """A rule's command: its own fields, and the saga context from the triggering event's detail (validated against
    the saga event schema); the idempotency key is the command's own, not the event's."""
    if not isinstance(envelope, dict) or "event" not in envelope:
        return SagaCommand.model_validate(envelope)
    fields = dict(envelope)
    event = SagaEventDetail.model_validate(fields.pop("event"))
    if event.saga_type != fields.get("saga_type"):
        raise ValueError("the event is of another saga type than the command")
    error = event.saga_error or ({"Error": event.error, "Cause": event.cause or ""} if event.error else None)
    return SagaCommand.model_validate(
        {
            **fields,
            "saga_id": event.saga_id,
            "idempotency_key": f"{event.saga_id}#{fields.get('step')}#{fields.get('kind')}",
            "input": event.input,
            "results": event.results,
            **({"error": error} if error and fields.get("kind") == "compensation" else {}),
        }
    )
