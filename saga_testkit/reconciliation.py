"""What a saga's invariant check starts from, whatever the saga: pure functions over its sagas' statuses.

Once sagas have settled, each is COMPLETED or FAILED, or handed to an operator (parked: a compensation or forward
recovery ran out of retries; or RESOLVED by one, by hand), and each effect a participant keeps stands for exactly the
COMPLETED sagas. An example saga's own check (tests/sagas/<saga>/) adds what its data must satisfy.
"""

from __future__ import annotations

from saga_records.model import PARKED_STATUSES, SagaStatus

SETTLED_STATUSES = frozenset({SagaStatus.COMPLETED, SagaStatus.FAILED})
# Parked sagas await an operator; RESOLVED ones were closed by one, by hand: listed, not checked against the effects.
HANDED_TO_OPERATOR = PARKED_STATUSES | {SagaStatus.RESOLVED}


def unfinished(status_of: dict[str, str]) -> list[str]:
    """A problem per saga still running (reconcile settled sagas): neither settled nor with an operator."""
    return [
        f"saga {saga_id} has not finished ({status})"
        for saga_id, status in sorted(status_of.items())
        if status not in SETTLED_STATUSES and status not in HANDED_TO_OPERATOR
    ]


def handed_to_operator(status_of: dict[str, str]) -> list[str]:
    """The sagas parked or resolved by an operator: listed, not failed."""
    return sorted(saga_id for saga_id, status in status_of.items() if status in HANDED_TO_OPERATOR)


def effect_problems(effect: str, holders: set[str], status_of: dict[str, str]) -> list[str]:
    """`holders` (sagas whose effect stands) must be exactly the COMPLETED sagas, among the settled and unknown ones;
    an effect no saga record accounts for is a problem too."""
    problems = []
    completed = {saga_id for saga_id, status in status_of.items() if status == SagaStatus.COMPLETED}
    for saga_id in sorted(holders | completed):
        status = status_of.get(saga_id)
        if status is None:
            problems.append(f"saga {saga_id}: has {effect} but no saga record")
        elif status not in SETTLED_STATUSES:
            continue  # parked or still running: reported once, by `unfinished` or `handed_to_operator`
        elif status == SagaStatus.COMPLETED and saga_id not in holders:
            problems.append(f"saga {saga_id}: COMPLETED without {effect}")
        elif status == SagaStatus.FAILED:
            problems.append(f"saga {saga_id}: FAILED but still has {effect}")
    return problems
