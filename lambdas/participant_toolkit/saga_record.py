"""The record every participant keeps per saga: applied once, compensated once, and a tombstone refusing late actions.

Commands arrive at least once and out of order (a compensation can overtake its action, or run when the action never
got through), and the toolkit's idempotency cache expires, so the data itself must make both directions idempotent.
Each participant stores, keyed by saga id, the effect of its action; compensating it leaves a tombstone: either the
record flipped to a compensated state, or a marker written when there was nothing to undo. The two functions here are
that protocol, written once; a service supplies how to load and write its own record. Every write is conditional on
the state just read: a lost condition (`StateChanged`) means another delivery wrote in between, so re-read and decide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from participant_toolkit.errors import PermanentFailure

Record = TypeVar("Record")

# Each lost race means another delivery made progress; more than a few in a row is not a race, let SQS redeliver.
MAX_RACES = 3


class StateChanged(Exception):
    """A conditional write found the record in another state than the one just read."""


def apply_once(
    *,
    load: Callable[[], Record | None],
    is_compensated: Callable[[Record], bool],
    apply: Callable[[], Record],
    refusal: PermanentFailure,
) -> Record:
    """Apply the action unless it already was (return that record) or was compensated (raise `refusal`)."""
    last_race: StateChanged | None = None
    for _ in range(MAX_RACES):
        record = load()
        if record is not None:
            if is_compensated(record):
                raise refusal  # the saga already undid this step: a late action must not apply
            return record  # a duplicate delivery: same answer, no second effect
        try:
            return apply()
        except StateChanged as race:
            last_race = race
    assert last_race is not None
    raise last_race


def compensate_once(
    *,
    load: Callable[[], Record | None],
    is_compensated: Callable[[Record], bool],
    compensate: Callable[[Record], Record],
    write_tombstone: Callable[[], Record],
) -> Record:
    """Undo the applied record, or leave a tombstone when there is nothing to undo; compensating twice is a no-op."""
    last_race: StateChanged | None = None
    for _ in range(MAX_RACES):
        record = load()
        try:
            if record is None:
                return write_tombstone()
            if is_compensated(record):
                return record
            return compensate(record)
        except StateChanged as race:
            last_race = race
    assert last_race is not None
    raise last_race
