"""The events of a choreographed saga on the saga bus, declared once: producers validate before PutEvents, consumers
when they parse (the participant toolkit, the tracker), and `python -m statemachines` writes their JSON Schema per saga
(`statemachines/sagas/<saga>.events.json`, committed and checked fresh).

Source `sagas.<SagaName>`; detail-type `<step>.<Outcome>` or `Saga.Started`. Every detail carries the saga context:
its id, type, the step and kind the event is about, an idempotency key, the saga input and the results of the steps
completed so far, so that the next participant needs nothing else. A deadline schedule publishes `<step>.TimedOut`
under the source `sagas.<SagaName>.deadlines`, for the tracker only: the tracker, if the step is still running, marks
it timed out and publishes the saga's own `<step>.TimedOut`, which starts compensation.

The pivot and retriable steps (forward recovery) time out otherwise: while the step has timeout retries left the
tracker publishes `<step>.Retried` (its `attempt` counted), which requests the step's action again; a step out of
retries, a timeout's or a transient error's, is `<step>.Stalled`, and the saga parks FORWARD_RECOVERY_FAILED.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCE_PREFIX = "sagas."
DEADLINES_SUFFIX = ".deadlines"
SAGA_STARTED = "Saga.Started"
# EventBridge takes at most 256 KiB per PutEvents entry (detail, source, detail-type and resources together).
EVENT_SIZE_LIMIT_BYTES = 256 * 1024
TIMEOUT_ERROR = "States.Timeout"  # the error a timed-out step records, as under orchestration


class Outcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    COMPENSATED = "Compensated"
    COMPENSATION_FAILED = "CompensationFailed"
    # Forward recovery (the pivot and retriable steps): the action requested again after its deadline passed, and a
    # step out of retries (the saga parks FORWARD_RECOVERY_FAILED).
    RETRIED = "Retried"
    STALLED = "Stalled"


def saga_source(saga_type: str) -> str:
    return f"{SOURCE_PREFIX}{saga_type}"


def deadline_source(saga_type: str) -> str:
    return f"{saga_source(saga_type)}{DEADLINES_SUFFIX}"


def detail_type(step: str, outcome: Outcome) -> str:
    return f"{step}.{outcome.value}"


class SagaEventDetail(BaseModel):
    """The detail of every saga event: the saga context and what happened to which step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    saga_id: str = Field(min_length=1, max_length=80)
    saga_type: str = Field(min_length=1)
    step: str | None = Field(default=None, min_length=1)  # None on Saga.Started
    kind: Literal["saga", "action", "compensation"]
    outcome: Literal[
        "Started", "Succeeded", "Failed", "TimedOut", "Compensated", "CompensationFailed", "Retried", "Stalled"
    ]
    idempotency_key: str = Field(min_length=1)  # <saga id>#<step>#<kind>: what produced this event, once
    input: dict[str, Any]
    results: dict[str, Any] = Field(default_factory=dict)  # step -> result of each completed step
    error: str | None = None  # this event's own failure (Failed, TimedOut, CompensationFailed)
    cause: str | None = None
    # The failure that started compensating ({"Error", "Cause"}), carried along the compensations to the saga's end.
    saga_error: dict[str, str] | None = None
    # The attempt of the step's action this event is about: a forward-recovered step's Retried and deadline events
    # count them (1: the first request).
    attempt: int = Field(default=1, ge=1)

    @property
    def detail_type(self) -> str:
        return SAGA_STARTED if self.step is None else f"{self.step}.{self.outcome}"

    def entry(self, bus_name: str, *, source: str | None = None) -> dict[str, Any]:
        """The PutEvents entry of this event (validated: built from this model), refused if over EventBridge's limit."""
        entry = {
            "EventBusName": bus_name,
            "Source": source or saga_source(self.saga_type),
            "DetailType": self.detail_type,
            "Detail": self.model_dump_json(),
        }
        size = sum(len(str(value).encode()) for value in entry.values())
        if size > EVENT_SIZE_LIMIT_BYTES:
            raise EventTooLarge(
                f"{self.detail_type} of saga {self.saga_id}: {size} bytes, over {EVENT_SIZE_LIMIT_BYTES}"
            )
        return entry


class EventTooLarge(ValueError):
    """An event over EventBridge's entry size: the saga carries too much input or results."""


def event_schemas(saga_type: str, steps: list[str], detail_types: list[str]) -> dict[str, Any]:
    """JSON Schema of each event a saga's choreography publishes (one schema set per saga)."""
    base = SagaEventDetail.model_json_schema()
    schemas: dict[str, Any] = {}
    for name in detail_types:
        schema = dict(base)
        properties = dict(base["properties"])
        properties["saga_type"] = {"const": saga_type, "type": "string"}
        if name == SAGA_STARTED:
            properties["step"] = {"type": "null"}
            properties["kind"] = {"const": "saga", "type": "string"}
            properties["outcome"] = {"const": "Started", "type": "string"}
        else:
            step, _, outcome = name.partition(".")
            assert step in steps, name
            properties["step"] = {"const": step, "type": "string"}
            kind = "compensation" if outcome in ("Compensated", "CompensationFailed") else "action"
            properties["kind"] = {"const": kind, "type": "string"}
            properties["outcome"] = {"const": outcome, "type": "string"}
        schema["properties"] = properties
        schema["title"] = f"{saga_type} {name}"
        schemas[name] = schema
    return {
        "source": saga_source(saga_type),
        "detail_types": schemas,
    }
