"""The stuck-saga deadline, derived from the step SLAs of a definition."""

from __future__ import annotations

import pytest

from statemachines import parse_definition
from statemachines.deadline import DEADLINE_GRACE_SECONDS, saga_deadline_seconds, worst_case_task_seconds
from statemachines.definition import RetryPolicy, Sla

pytestmark = pytest.mark.unit


def step(name: str, *, timeout: int, attempts: int, compensation: str | None = None, **extra):
    return {
        "name": name,
        "service": "ThingService",
        "action": f"Do{name.title().replace('_', '')}",
        **({"compensation": compensation} if compensation else {"retriable": True}),
        "sla": {"timeout_seconds": timeout, "heartbeat_seconds": 1},
        "retry": {
            "errors": ["Thing.Busy"],
            "max_attempts": attempts,
            # backoff only where something is retried (with none, the definition refuses them)
            **({"interval_seconds": 2, "backoff_rate": 3.0, "max_delay_seconds": 10} if attempts else {}),
        },
        **extra,
    }


def test_a_task_without_retries_lasts_one_timeout():
    retry = RetryPolicy(errors=["X.Y"], max_attempts=0)
    assert worst_case_task_seconds(Sla(timeout_seconds=30, heartbeat_seconds=10), retry) == 30


def test_each_retry_adds_a_timeout_and_its_capped_backoff_wait():
    # Given 3 retries waiting 2, 2*3=6, then 18 capped at 10 seconds
    retry = RetryPolicy(errors=["X.Y"], max_attempts=3, interval_seconds=2, backoff_rate=3.0, max_delay_seconds=10)
    # Then four attempts of 30 s plus 2 + 6 + 10 s of waiting
    assert worst_case_task_seconds(Sla(timeout_seconds=30, heartbeat_seconds=10), retry) == 4 * 30 + 2 + 6 + 10


def test_deadline_is_every_action_then_every_compensation_at_worst_plus_grace():
    # Given a compensatable step and a retriable one after it (never compensated)
    definition = parse_definition(
        {
            "name": "Tiny",
            "description": "two steps",
            "steps": [
                step("first", timeout=30, attempts=1, compensation="UndoFirst"),
                step("second", timeout=40, attempts=0),
            ],
        }
    )
    # When / Then: actions (30 + 2 + 30) and (40); the compensation's 12 attempts of 30 s (1, 5 more for its own
    # errors, 6 for timeouts) with its waits (2, 6, 18, 54 and 60 for its errors; 1, 2, 4, ... 32 for timeouts,
    # from its 1 s heartbeat window, doubling); and the grace
    compensation = 12 * 30 + (2 + 6 + 18 + 54 + 60) + (1 + 2 + 4 + 8 + 16 + 32)
    assert saga_deadline_seconds(definition) == 62 + 40 + compensation + DEADLINE_GRACE_SECONDS


def test_a_longer_step_sla_moves_the_deadline_later():
    short = parse_definition(
        {"name": "Tiny", "description": "d", "steps": [step("first", timeout=30, attempts=1, compensation="UndoFirst")]}
    )
    long = parse_definition(
        {"name": "Tiny", "description": "d", "steps": [step("first", timeout=90, attempts=1, compensation="UndoFirst")]}
    )
    assert saga_deadline_seconds(long) > saga_deadline_seconds(short)
