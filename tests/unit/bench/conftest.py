"""Fixtures for the benchmark's arithmetic and the capacity model: a small synthetic saga, figures by hand."""

from __future__ import annotations

import pytest

from statemachines import SagaDefinition, parse_definition


def _step(name: str, service: str, action: str, compensation: str, heartbeat_seconds: int) -> dict:
    return {
        "name": name,
        "service": service,
        "action": action,
        "compensation": compensation,
        "sla": {"timeout_seconds": 60, "heartbeat_seconds": heartbeat_seconds},
        "retry": {
            "errors": [f"{service}.Busy"],
            "max_attempts": 2,
            "interval_seconds": 1,
            "backoff_rate": 2.0,
            "max_delay_seconds": 5,
        },
        "permanent_errors": [f"{service}.Refused"],
    }


@pytest.fixture
def two_step_saga() -> SagaDefinition:
    """Step 1 beats every 30/3 = 10 s, step 2 every 12/3 = 4 s (the toolkit beats 3 times per heartbeat window)."""
    return parse_definition(
        {
            "name": "TwoStep",
            "description": "Two steps for the capacity model tests.",
            "steps": [
                _step("first", "Alpha", "DoAlpha", "UndoAlpha", heartbeat_seconds=30),
                _step("second", "Beta", "DoBeta", "UndoBeta", heartbeat_seconds=12),
            ],
        }
    )
