"""The OrderFulfillmentChoreographed example's kit: the order saga's kit (the same services, orders and stock-and-money
reconciliation), with sample orders of skus of its own, so that both sagas can run on one stack and each reconcile
the stock it seeded."""

from __future__ import annotations

import random
from typing import Any

from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.order_fulfillment import kit as order_kit

SAGA_FILE = DEFINITIONS_DIR / "order_fulfillment_choreographed.saga.yaml"
# The order kit's sample skus, renamed: same prices, stock of this saga's own.
SAMPLE_SKUS = {sku: sku.replace("SKU-SAMPLE-", "SKU-CHOREO-") for sku in order_kit.SAMPLE_CATALOG}


class Kit(order_kit.Kit):
    def prepare(self, sagas: int) -> None:
        self.seed_stock(dict.fromkeys(SAMPLE_SKUS.values(), order_kit.MAX_SAMPLE_UNITS * sagas))

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        order = order_kit.sample_order(rng, number)
        items = [{**line, "sku": SAMPLE_SKUS[line["sku"]]} for line in order["items"]]
        return {**order, "order_id": f"choreo-ord-{number:05d}", "items": items}
