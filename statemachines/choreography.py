"""A choreographed saga, derived from its definition: which event each command reacts to, when the saga ends, and the
files generated from it (the event schemas and the diagram).

Forward: step k's action reacts to step k-1's `Succeeded` (the first step's to `Saga.Started`); the last step's
`Succeeded` ends the saga COMPLETED. Backward: a `Failed` of step k starts the compensation of the nearest
compensatable step before k; a `TimedOut` of step k that of step k itself when `on_timeout: compensate` (a lost reply
may have taken effect), else the nearest before it; a `Compensated` of step j that of the nearest compensatable step
before j. Where nothing is left to compensate, the saga ends FAILED. A `CompensationFailed` parks it
COMPENSATION_FAILED. The same routing the compiler writes as Catch blocks for orchestration.

Forward recovery (the pivot, and the retriable steps past it), as the compiler writes it: such a step's deadline does
not compensate. While its timeout retries last the tracker publishes `<step>.Retried`, to which its action reacts as
to the step before it succeeding; a step out of retries publishes `<step>.Stalled` (the participant, after its
transient errors' retries; the tracker, after the timeouts') and the saga parks FORWARD_RECOVERY_FAILED with the
stalled step and every step after it pending. The pivot's `Failed` (a refusal) compensates the steps before it like
any step's; a retriable step is never compensated, so its `Failed` parks the saga too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from statemachines.definition import TIMEOUT_ERROR, SagaDefinition, Step

_LAMBDAS = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDAS not in sys.path:
    sys.path.insert(0, _LAMBDAS)
from saga_records.events import SAGA_STARTED, Outcome, detail_type, event_schemas  # noqa: E402

CommandKind = Literal["action", "compensation"]
ACTION_OUTCOMES = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.TIMED_OUT)
# A forward-recovered step's: its deadline never publishes TimedOut, it retries (Retried) or parks (Stalled).
FORWARD_RECOVERY_OUTCOMES = (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.RETRIED, Outcome.STALLED)
COMPENSATION_OUTCOMES = (Outcome.COMPENSATED, Outcome.COMPENSATION_FAILED)


@dataclass(frozen=True)
class Reaction:
    """One command of the saga and the events (detail-types) that send it: one rule on the bus."""

    step: Step
    kind: CommandKind
    on: tuple[str, ...]

    @property
    def command(self) -> str:
        command = self.step.action if self.kind == "action" else self.step.compensation
        assert command is not None
        return command


def _compensation_before(steps: list[Step], index: int) -> Step | None:
    """The nearest compensatable step before `index`."""
    return next((step for step in reversed(steps[:index]) if step.compensation is not None), None)


def compensation_after(definition: SagaDefinition, event: str) -> Step | None:
    """Whose compensation `event` (a detail-type) starts, or None (forward events, or nothing left to undo)."""
    steps = definition.steps
    names = [step.name for step in steps]
    name, _, outcome = event.partition(".")
    if name not in names:
        return None
    index = names.index(name)
    if steps[index].forward_recovery and not (steps[index].pivot and outcome == Outcome.FAILED):
        return None  # retried or parked, never compensated: only the pivot's refusal goes back
    if outcome == Outcome.FAILED:
        return _compensation_before(steps, index)
    if outcome == Outcome.TIMED_OUT:
        step = steps[index]
        if step.on_timeout == "compensate" and step.compensation is not None:
            return step
        return _compensation_before(steps, index)
    if outcome == Outcome.COMPENSATED:
        return _compensation_before(steps, index)
    return None


def published_events(definition: SagaDefinition) -> list[str]:
    """Every detail-type the saga's choreography publishes, in the saga's order."""
    events = [SAGA_STARTED]
    for step in definition.steps:
        outcomes = FORWARD_RECOVERY_OUTCOMES if step.forward_recovery else ACTION_OUTCOMES
        events += [detail_type(step.name, outcome) for outcome in outcomes]
        if step.compensation is not None:
            events += [detail_type(step.name, outcome) for outcome in COMPENSATION_OUTCOMES]
    return events


def reactions(definition: SagaDefinition) -> list[Reaction]:
    """Each command of the saga and the events it reacts to, actions first, in the saga's order."""
    steps = definition.steps
    found = [
        Reaction(
            step,
            "action",
            (
                detail_type(steps[index - 1].name, Outcome.SUCCEEDED) if index else SAGA_STARTED,
                *((detail_type(step.name, Outcome.RETRIED),) if step.forward_recovery else ()),
            ),
        )
        for index, step in enumerate(steps)
    ]
    for step in steps:
        if step.compensation is None:
            continue
        on = tuple(
            event
            for event in published_events(definition)
            if (undone := compensation_after(definition, event)) is not None and undone.name == step.name
        )
        found.append(Reaction(step, "compensation", on))
    return found


def command_fields(definition: SagaDefinition, reaction: Reaction) -> dict[str, Any]:
    """What a rule knows of the command it sends, beside the triggering event's detail (under `event`): the command
    envelope the participant toolkit parses, answered on the bus. An action's place in the saga is the one the
    compiler writes for orchestration; the retry policy is the definition's (the participant retries itself)."""
    step = reaction.step
    steps = definition.steps
    index = steps.index(step)
    policy = step.retry if reaction.kind == "action" else step.effective_compensation_retry
    fields: dict[str, Any] = {
        "reply": "bus",
        "saga_type": definition.name,
        "step": step.name,
        "kind": reaction.kind,
        "command": reaction.command,
        "heartbeat_seconds": step.sla.heartbeat_seconds,
        "retry": {
            "errors": [error for error in policy.errors if error != TIMEOUT_ERROR],
            "max_attempts": policy.max_attempts,
            "interval_seconds": policy.interval_seconds,
            "backoff_rate": policy.backoff_rate,
            "max_delay_seconds": policy.max_delay_seconds,
            "jitter": policy.jitter,
        },
    }
    if reaction.kind == "action":
        if index > 0:
            fields["previous_step"] = steps[index - 1].name
        if index + 1 < len(steps):
            fields["next_step"] = steps[index + 1].name
        if step.compensation is not None:
            fields["compensation"] = step.compensation
        if step.forward_recovery:
            fields["retriable"] = True
    return fields


def ends_failed(definition: SagaDefinition) -> list[str]:
    """The events after which nothing is left to compensate: the saga ends FAILED."""
    parked = set(parks_forward(definition))
    return [
        event
        for event in published_events(definition)
        if event.rpartition(".")[2] in (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.COMPENSATED)
        and compensation_after(definition, event) is None
        and event not in parked
    ]


def parks_forward(definition: SagaDefinition) -> list[str]:
    """The events that park the saga FORWARD_RECOVERY_FAILED: a forward-recovered step out of retries (`Stalled`), and
    a retriable step's failure (never compensated, only run again)."""
    events = []
    for step in definition.steps:
        if step.forward_recovery:
            events.append(detail_type(step.name, Outcome.STALLED))
        if step.retriable:
            events.append(detail_type(step.name, Outcome.FAILED))
    return events


def completes_on(definition: SagaDefinition) -> str:
    return detail_type(definition.steps[-1].name, Outcome.SUCCEEDED)


def tracker_setting(definition: SagaDefinition) -> dict[str, Any]:
    """What the tracker needs of one choreographed saga (its CHOREOGRAPHIES setting)."""
    from statemachines.compiler import pending_after_compensation_failure, pending_after_forward_recovery_failure

    return {
        "saga_type": definition.name,
        "steps": [step.name for step in definition.steps],
        "deadlines": {step.name: step.sla.timeout_seconds for step in definition.steps},
        "completes_on": completes_on(definition),
        "ends_failed": ends_failed(definition),
        "pending_after_compensation_failure": {
            step.name: pending_after_compensation_failure(definition, step.name)
            for step in definition.compensatable_steps
        },
        "parks_forward": parks_forward(definition),
        # Each forward-recovered step's timeout retries (the state machine's retrier covers its timeouts with the same
        # budget), and what a resume runs once it stalled.
        "timeout_retries": {
            step.name: step.action_retry.max_attempts for step in definition.steps if step.forward_recovery
        },
        "pending_after_forward_recovery_failure": {
            step.name: pending_after_forward_recovery_failure(definition, step.name)
            for step in definition.steps
            if step.forward_recovery
        },
    }


def render_event_schemas(definition: SagaDefinition) -> str:
    schemas = event_schemas(definition.name, [step.name for step in definition.steps], published_events(definition))
    return json.dumps(schemas, indent=2, sort_keys=True) + "\n"


_STYLE = {
    "event": "fill:#f3e5f5,stroke:#6a1b9a",
    "action": "fill:#e8f4ea,stroke:#2e7d32",
    "compensation": "fill:#fff4e5,stroke:#ef6c00",
    "record": "fill:#e3f2fd,stroke:#1565c0",
    "parked": "fill:#fdecea,stroke:#c62828",
}


def to_mermaid(definition: SagaDefinition) -> str:
    """The choreography: each command as the service that reacts to an event, and the events it publishes."""
    lines = ["flowchart TD"]
    classes: dict[str, list[str]] = {kind: [] for kind in _STYLE}

    def event_node(event: str) -> str:
        return "ev_" + event.replace(".", "_")

    published = published_events(definition)
    for event in published:
        lines.append(f"    {event_node(event)}([{event}])")
        classes["event"].append(event_node(event))
    for reaction in reactions(definition):
        step = reaction.step
        lines.append(
            f'    {reaction.command}["{reaction.command}<br/><small>{step.service}: {reaction.command}<br/>'
            f'deadline {step.sla.timeout_seconds}s</small>"]'
        )
        classes[reaction.kind].append(reaction.command)
    lines += [
        '    Completed["Tracker: COMPLETED"]',
        '    Failed["Tracker: FAILED"]',
        '    Parked[["Tracker: COMPENSATION_FAILED"]]',
    ]
    classes["record"] += ["Completed", "Failed"]
    classes["parked"].append("Parked")
    stalls = parks_forward(definition)
    if stalls:
        lines.append('    Stalled[["Tracker: FORWARD_RECOVERY_FAILED"]]')
        classes["parked"].append("Stalled")
    for reaction in reactions(definition):
        for event in reaction.on:
            lines.append(f"    {event_node(event)} -. reacts .-> {reaction.command}")
        if reaction.kind == "compensation":
            outcomes = COMPENSATION_OUTCOMES
        else:
            outcomes = FORWARD_RECOVERY_OUTCOMES if reaction.step.forward_recovery else ACTION_OUTCOMES
        for outcome in outcomes:
            event = detail_type(reaction.step.name, outcome)
            if event not in published:
                continue
            by = "deadline" if outcome in (Outcome.TIMED_OUT, Outcome.RETRIED) else "publishes"
            lines.append(f"    {reaction.command} -- {by} --> {event_node(event)}")
    lines.append(f"    {event_node(completes_on(definition))} --> Completed")
    for event in ends_failed(definition):
        lines.append(f"    {event_node(event)} --> Failed")
    for step in definition.compensatable_steps:
        lines.append(f"    {event_node(detail_type(step.name, Outcome.COMPENSATION_FAILED))} --> Parked")
    for event in stalls:
        lines.append(f"    {event_node(event)} --> Stalled")
    for kind, style in _STYLE.items():
        if classes[kind]:
            lines.append(f"    classDef {kind} {style}")
            lines.append(f"    class {','.join(classes[kind])} {kind}")
    return "\n".join(lines) + "\n"
