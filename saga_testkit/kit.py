"""A saga's test kit: what the proving harness runs one saga type with, found by convention.

The kit of the saga `OrderFulfillment` is the module `tests/sagas/order_fulfillment/kit.py` (the saga's name in
snake_case, the stem of its definition file), which defines `Kit`, a subclass of `SagaKit`. The harness builds one
per `LocalSagas`, with the saga's definition and a way to find its services' tables. Every part has a default:

- `prepare(sagas)`: seed the data that `sagas` sample inputs need (stock, seats, ...), before they start;
- `sample_input(number, rng)`: a healthy input, the saga's API request body: the fault matrix, the soak and
  deploy-local start their sagas with it (no default: a saga without it has no fault matrix, and says so);
- `scenarios`, `prepare_demo()` and `scenario_input(scenario, number, rng)`: the demo's mix of sagas;
- `check(records, others)`: the invariants over this saga type's records once they settled (by default: each saga
  settled or with an operator), given the ids of other types' sagas so that a shared service's effects that belong to
  them are left to their own check.

A saga without a kit module gets `SagaKit` itself: its default check, and no sample input.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from saga_testkit.invariants import SagaCheck, common_check
from saga_testkit.scenario import Scenario
from statemachines import SagaDefinition, saga_files
from statemachines.checks import load_sagas
from statemachines.definition import snake_case

KITS_PACKAGE = "tests.sagas"  # tests/sagas/<snake>/kit.py, imported from the repository root
KIT_CLASS = "Kit"

ServiceTable = Callable[[str], str]  # service name (PaymentService) -> its table's name on the running stack


class KitMissing(LookupError):
    """The saga's kit does not provide what was asked of it; the message says which file and what to write."""


class SagaKit:
    """The base of a saga's kit (`Kit` in tests/sagas/<snake>/kit.py); override what the saga needs."""

    scenarios: Sequence[Scenario] = ()

    def __init__(self, definition: SagaDefinition, service_table: ServiceTable) -> None:
        self.definition = definition
        self.service_table = service_table

    def prepare(self, sagas: int) -> None:
        """Seed what `sagas` sample inputs need; nothing by default."""

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        """A healthy input for the saga (its API request body); `number` makes it distinct where that matters."""
        raise KitMissing(
            f"{kit_file(self.definition)}: define `class {KIT_CLASS}(SagaKit)` with `sample_input(number, rng)`, a "
            f"healthy {self.definition.name} input: the fault matrix and the soak start their sagas with it"
        )

    def prepare_demo(self) -> None:
        """Seed what the demo's scenarios need; by default what as many sample inputs need."""
        self.prepare(sum(scenario.count for scenario in self.scenarios))

    def scenario_input(self, scenario: Scenario, number: int, rng: random.Random) -> dict[str, Any]:
        """The input of the demo's saga `number`, shaped by its scenario; by default a sample input."""
        return self.sample_input(number, rng)

    def check(self, records: list[dict[str, Any]], others: frozenset[str]) -> SagaCheck:
        """The invariants over this saga type's `records`; `others` are the ids of every other type's sagas."""
        return common_check(records)


def kit_module(definition: SagaDefinition, package: str = KITS_PACKAGE) -> str:
    return f"{package}.{snake_case(definition.name)}.kit"


def kit_file(definition: SagaDefinition, package: str = KITS_PACKAGE) -> str:
    return f"{kit_module(definition, package).replace('.', '/')}.py"


def load_kit(definition: SagaDefinition, service_table: ServiceTable, *, package: str = KITS_PACKAGE) -> SagaKit:
    """The saga's kit, built for a running stack; `SagaKit` itself when the saga has no kit module."""
    name = kit_module(definition, package)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name is not None and (name == missing.name or name.startswith(f"{missing.name}.")):
            return SagaKit(definition, service_table)  # no kit (or no kits folder): the defaults
        raise  # the kit exists and imports something that does not
    kit_class = getattr(module, KIT_CLASS, None)
    if not (isinstance(kit_class, type) and issubclass(kit_class, SagaKit)):
        raise TypeError(f"{kit_file(definition, package)}: defines no `class {KIT_CLASS}(SagaKit)`")
    return kit_class(definition, service_table)


def project_definitions() -> list[SagaDefinition]:
    """Every saga definition of the project (statemachines/sagas/), checked together as synth checks them."""
    return load_sagas(saga_files())


def project_definition(name: str | None = None) -> SagaDefinition:
    """The project's saga named `name`; its first one (by file name) when None."""
    definitions = project_definitions()
    if name is None:
        return definitions[0]
    for definition in definitions:
        if definition.name == name:
            return definition
    raise KeyError(f"no saga {name}; the project has {', '.join(d.name for d in definitions)}")
