"""What a saga type's invariant check starts from, whatever the saga: its result, and pure functions over statuses.

Once sagas have settled, each is COMPLETED or FAILED, or handed to an operator (parked: a compensation or forward
recovery ran out of retries; or RESOLVED by one, by hand), and each effect a participant keeps stands for exactly the
COMPLETED sagas. A saga's kit (saga_testkit.kit) adds what its services' data must satisfy. A check looks at its own
saga type's records only: an effect that belongs to a saga of another type (a service shared by two sagas) is that
type's to check, while an effect no saga record accounts for at all is a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saga_records.model import PARKED_STATUSES, SagaStatus

SETTLED_STATUSES = frozenset({SagaStatus.COMPLETED, SagaStatus.FAILED})
# Parked sagas await an operator; RESOLVED ones were closed by one, by hand: listed, not checked against the effects.
HANDED_TO_OPERATOR = PARKED_STATUSES | {SagaStatus.RESOLVED}


@dataclass
class SagaCheck:
    """The outcome of a saga type's invariant check: every problem found, and the sagas handed to an operator."""

    problems: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def figures(self) -> list[tuple[str, str]]:
        """(name, value) rows a summary prints (the soak's); a kit's own check adds its figures."""
        return []

    def tables(self) -> list[Any]:
        """Rich tables the demo prints after its run; a kit's own check adds its data's."""
        return []


def statuses(records: list[dict[str, Any]]) -> dict[str, str]:
    return {record["saga_id"]: record["status"] for record in records}


def common_check(records: list[dict[str, Any]]) -> SagaCheck:
    """What holds for any saga type: every saga settled or with an operator."""
    status_of = statuses(records)
    return SagaCheck(problems=unfinished(status_of), parked=handed_to_operator(status_of))


def unfinished(status_of: dict[str, str]) -> list[str]:
    """A problem per saga still running (check settled sagas): neither settled nor with an operator."""
    return [
        f"saga {saga_id} has not finished ({status})"
        for saga_id, status in sorted(status_of.items())
        if status not in SETTLED_STATUSES and status not in HANDED_TO_OPERATOR
    ]


def handed_to_operator(status_of: dict[str, str]) -> list[str]:
    """The sagas parked or resolved by an operator: listed, not failed."""
    return sorted(saga_id for saga_id, status in status_of.items() if status in HANDED_TO_OPERATOR)


def effect_problems(
    effect: str, holders: set[str], status_of: dict[str, str], others: frozenset[str] = frozenset()
) -> list[str]:
    """`holders` (sagas whose effect stands) must be exactly the COMPLETED sagas of `status_of` (this type's); an
    effect held by a saga of `others` (another type's) is not this check's, one no saga record accounts for is a
    problem."""
    problems = []
    completed = {saga_id for saga_id, status in status_of.items() if status == SagaStatus.COMPLETED}
    for saga_id in sorted((holders - others) | completed):
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
