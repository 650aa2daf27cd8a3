"""A demo scenario: how many sagas take it, how their input differs from a healthy one, which faults they meet, and
the status each must end in. An example saga's kit lists its scenarios and turns each into an input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saga_testkit.faults import Fault


@dataclass(frozen=True)
class Scenario:
    name: str
    count: int
    expected_status: str
    shape: dict[str, Any] = field(default_factory=dict)  # how the input differs from a healthy one (the kit reads it)
    faults: tuple[tuple[str, str, Fault], ...] = ()  # (step, kind, fault) each
