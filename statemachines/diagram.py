"""A Mermaid flowchart of a compiled state machine, so reviewers see what runs."""

from __future__ import annotations

from typing import Any

_STYLE = {
    "action": "fill:#e8f4ea,stroke:#2e7d32",
    "pivot": "fill:#e8f4ea,stroke:#2e7d32,stroke-width:4px",
    "compensation": "fill:#fff4e5,stroke:#ef6c00",
    "record": "fill:#e3f2fd,stroke:#1565c0",
    "parked": "fill:#fdecea,stroke:#c62828",
}


def to_mermaid(asl: dict[str, Any]) -> str:
    states: dict[str, Any] = asl["States"]
    lines = ["flowchart TD", f"    start((start)) --> {asl['StartAt']}"]
    classes: dict[str, list[str]] = {kind: [] for kind in _STYLE}
    for name, state in states.items():
        kind = _kind(state, states)
        lines.append(f"    {name}{_shape(name, state, pivot=kind == 'pivot')}")
        classes[kind].append(name)
    for name, state in states.items():
        if "Next" in state:
            lines.append(f"    {name} --> {state['Next']}")
        if state.get("End"):
            lines.append(f"    {name} --> finish((end))")
        for catch in state.get("Catch", []):
            lines.append(f"    {name} -. {_errors(catch['ErrorEquals'])} .-> {catch['Next']}")
    for kind, style in _STYLE.items():
        if classes[kind]:
            lines.append(f"    classDef {kind} {style}")
            lines.append(f"    class {','.join(classes[kind])} {kind}")
    return "\n".join(lines) + "\n"


def _kind(state: dict[str, Any], states: dict[str, Any]) -> str:
    if state["Type"] == "Fail":
        return "parked"
    if state.get("Resource", "").startswith("arn:aws:states:::dynamodb"):
        status = state["Parameters"]["ExpressionAttributeValues"][":status"]["S"]
        return "record" if status in ("COMPLETED", "FAILED") else "parked"
    body = state.get("Parameters", {}).get("MessageBody", {})
    if body.get("kind") == "compensation":
        return "compensation"
    # The pivot: recovered forward (never compensated), yet its refusal compensates the steps before it
    routes = {_kind(states[catch["Next"]], states) for catch in state.get("Catch", [])}
    return "pivot" if body.get("retriable") and routes - {"parked"} else "action"


def _shape(name: str, state: dict[str, Any], *, pivot: bool = False) -> str:
    if state["Type"] == "Fail":
        return f'[["{name}<br/>{state["Error"]}"]]'
    label = state.get("Comment", name).replace('"', "'")
    timeouts = ""
    if "TimeoutSeconds" in state and "HeartbeatSeconds" in state:
        timeouts = f"<br/>timeout {state['TimeoutSeconds']}s, heartbeat {state['HeartbeatSeconds']}s"
    title = f"{name} (pivot)" if pivot else name
    return f'["{title}<br/><small>{label}{timeouts}</small>"]'


def _errors(errors: list[str]) -> str:
    if errors == ["States.Timeout"]:
        return "timeout"
    if errors == ["States.ALL"]:
        return "any error"
    if "States.Timeout" in errors:
        return "retries spent"  # a step's transient errors and timeouts, after its retries
    return " / ".join(errors)
