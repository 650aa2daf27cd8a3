"""The OrderFulfillmentChoreographed example's kit: the order saga's kit (the same services, orders, demo scenarios and
stock-and-money reconciliation), with skus of its own, so that both sagas can run on one stack, the demo's included,
and each reconcile the stock it seeded."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from saga_testkit.scenario import Scenario
from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.order_fulfillment import kit as order_kit

SAGA_FILE = DEFINITIONS_DIR / "order_fulfillment_choreographed.saga.yaml"


def own_sku(sku: str) -> str:
    """The order kit's sku renamed for this saga: same price, stock of its own (SKU-KEYBOARD -> SKU-CHOREO-KEYBOARD)."""
    return "SKU-CHOREO-" + sku.removeprefix("SKU-").removeprefix("SAMPLE-")


# The order kit's sample skus, renamed: same prices, stock of this saga's own.
SAMPLE_SKUS = {sku: own_sku(sku) for sku in order_kit.SAMPLE_CATALOG}


def _with_own_skus(order: dict[str, Any]) -> dict[str, Any]:
    return {**order, "items": [{**line, "sku": own_sku(line["sku"])} for line in order["items"]]}


# The demo runs the order saga's scenarios in both patterns: this one at a third of the counts (each scenario at least
# once, the parked one included), so both fit one demo.
SCENARIOS = [replace(scenario, count=max(1, scenario.count // 3)) for scenario in order_kit.SCENARIOS]


class Kit(order_kit.Kit):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scenarios = SCENARIOS

    def prepare(self, sagas: int) -> None:
        prices = {SAMPLE_SKUS[sku]: price for sku, price in order_kit.SAMPLE_CATALOG.items()}
        self.seed_stock(dict.fromkeys(SAMPLE_SKUS.values(), order_kit.MAX_SAMPLE_UNITS * sagas), prices)

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        order = order_kit.sample_order(rng, number)
        return {**_with_own_skus(order), "order_id": f"choreo-ord-{number:05d}"}

    def prepare_demo(self) -> None:
        catalog = order_kit.CATALOG
        self.seed_stock(
            {own_sku(sku): stock for sku, (_, stock) in catalog.items()},
            {own_sku(sku): price for sku, (price, _) in catalog.items()},
        )

    def scenario_input(self, scenario: Scenario, number: int, rng: random.Random) -> dict[str, Any]:
        return _with_own_skus(order_kit.make_order(rng, number, scenario))
