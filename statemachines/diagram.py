"""A Mermaid flowchart of a compiled state machine, so reviewers see what runs."""

from __future__ import annotations

from typing import Any

_STYLE = {
    "action": "fill:#e8f4ea,stroke:#2e7d32",
    "compensation": "fill:#fff4e5,stroke:#ef6c00",
    "record": "fill:#e3f2fd,stroke:#1565c0",
    "parked": "fill:#fdecea,stroke:#c62828",
}


def to_mermaid(asl: dict[str, Any]) -> str:
    states: dict[str, Any] = asl["States"]
    lines = ["flowchart TD", f"    start((start)) --> {asl['StartAt']}"]
    classes: dict[str, list[str]] = {kind: [] for kind in _STYLE}
    for name, state in states.items():
        lines.append(f"    {name}{_shape(name, state)}")
        classes[_kind(state)].append(name)
    for name, state in states.items():
        if "Next" in state:
            lines.append(f"    {name} --> {state['Next']}")
        if state.get("End"):
            lines.append(f"    {name} --> finish((end))")
        for catch in state.get("Catch", []):
            lines.append(f"    {name} -. {_errors(catch['ErrorEquals'])} .-> {catch['Next']}")
    for kind, style in _STYLE.items():
        lines.append(f"    classDef {kind} {style}")
        if classes[kind]:
            lines.append(f"    class {','.join(classes[kind])} {kind}")
    return "\n".join(lines) + "\n"


def _kind(state: dict[str, Any]) -> str:
    if state["Type"] == "Fail":
        return "parked"
    if state.get("Resource", "").startswith("arn:aws:states:::dynamodb"):
        status = state["Parameters"]["ExpressionAttributeValues"][":status"]["S"]
        return "record" if status in ("COMPLETED", "FAILED") else "parked"
    body = state.get("Parameters", {}).get("MessageBody", {})
    return "compensation" if body.get("kind") == "compensation" else "action"


def _shape(name: str, state: dict[str, Any]) -> str:
    if state["Type"] == "Fail":
        return f'[["{name}<br/>{state["Error"]}"]]'
    label = state.get("Comment", name).replace('"', "'")
    timeouts = ""
    if "TimeoutSeconds" in state and "HeartbeatSeconds" in state:
        timeouts = f"<br/>timeout {state['TimeoutSeconds']}s, heartbeat {state['HeartbeatSeconds']}s"
    return f'["{name}<br/><small>{label}{timeouts}</small>"]'


def _errors(errors: list[str]) -> str:
    return (
        "timeout" if errors == ["States.Timeout"] else ("any error" if errors == ["States.ALL"] else " / ".join(errors))
    )
