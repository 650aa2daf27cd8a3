"""The OrderFulfillment example's kit: what the test kit (saga_testkit/) runs this saga with.

`Kit` (found by the convention tests/sagas/<snake>/kit.py): the four services' data on a running stack, stock seeded
for the sample and demo orders, and stock and money reconciled against the order sagas' records (its invariant
check); the orders of the demo (catalog and scenarios), and the sample orders the fault matrix, the soak and
deploy-local start.
"""

from __future__ import annotations

import random
from typing import Any

from saga_testkit.faults import Fault
from saga_testkit.kit import SagaKit, ServiceTable
from saga_testkit.scenario import Scenario
from services.inventory.repository import InventoryRepository
from services.notification.repository import NotificationRepository
from services.payment.repository import PaymentRepository
from services.shipping.repository import ShippingRepository
from statemachines import SagaDefinition
from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.order_fulfillment.reconciliation import Reconciliation, reconcile

SAGA_FILE = DEFINITIONS_DIR / "order_fulfillment.saga.yaml"


class Kit(SagaKit):
    """The four services' data on a running stack, found by service name."""

    def __init__(self, definition: SagaDefinition, service_table: ServiceTable) -> None:
        super().__init__(definition, service_table)
        self.inventory = InventoryRepository(service_table("InventoryService"))
        self.payments = PaymentRepository(service_table("PaymentService"))
        self.shipping = ShippingRepository(service_table("ShippingService"))
        self.notifications = NotificationRepository(service_table("NotificationService"))
        self.initial_stock: dict[str, int] = {}
        self.prices: dict[str, int] = {}  # the catalog's price of each sku seeded: what the orders must be charged
        self.scenarios = SCENARIOS

    def seed_stock(self, stock: dict[str, int], prices: dict[str, int] | None = None) -> None:
        """Put `stock` (sku -> units) on the shelf, before any saga takes some, at `prices` (sku -> cents; by default
        the catalogs' below, else DEFAULT_UNIT_PRICE_CENTS): the reconciliation counts from both."""
        for sku, available in stock.items():
            price = (prices or {}).get(sku, KNOWN_PRICES.get(sku, DEFAULT_UNIT_PRICE_CENTS))
            self.inventory.seed_stock(sku, available, unit_price_cents=price)
            self.prices[sku] = price
        self.initial_stock |= stock

    def prepare(self, sagas: int) -> None:
        # A sample order takes at most MAX_SAMPLE_UNITS units of a sku: never a stock-out
        self.seed_stock(dict.fromkeys(SAMPLE_CATALOG, MAX_SAMPLE_UNITS * sagas))

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        return sample_order(rng, number)

    def prepare_demo(self) -> None:
        self.seed_stock({sku: stock for sku, (_, stock) in CATALOG.items()})

    def scenario_input(self, scenario: Scenario, number: int, rng: random.Random) -> dict[str, Any]:
        return make_order(rng, number, scenario)

    def check(self, records: list[dict[str, Any]], others: frozenset[str]) -> Reconciliation:
        return reconcile(
            records,
            initial_stock=self.initial_stock,
            prices=self.prices,
            inventory=self.inventory,
            payments=self.payments,
            shipping=self.shipping,
            notifications=self.notifications,
            others=others,
        )


# --- make demo (and make serve-api's stock) ------------------------------------------------------------------------
# sku: (unit price in cents, units in stock)
CATALOG = {
    "SKU-KEYBOARD": (4999, 120),
    "SKU-MOUSE": (2599, 120),
    "SKU-MONITOR": (18999, 60),
    "SKU-DESK-LAMP": (3499, 4),
}
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "GB", "US"]

SCENARIOS = [
    Scenario("healthy order", 29, "COMPLETED"),
    Scenario("out of stock", 5, "FAILED", {"items": [{"sku": "SKU-DESK-LAMP", "quantity": 5}]}),
    Scenario("card declined", 5, "FAILED", {"payment": {"card_token": "tok_declined"}}),
    Scenario("address not serviceable", 3, "FAILED", {"country": "AQ"}),
    Scenario("confirmation bounced", 2, "FAILED", {"email_domain": "bounce.example"}),
    Scenario(
        "flaky payment gateway",
        3,
        "COMPLETED",
        faults=(("process_payment", "action", Fault.transient("Payment.GatewayUnavailable", times=2)),),
    ),
    Scenario("carrier reply lost (timeout)", 2, "FAILED", faults=(("create_shipment", "action", Fault.lost_reply()),)),
    Scenario(
        "carrier crashed, refund failed",
        1,
        "COMPENSATION_FAILED",
        faults=(
            ("create_shipment", "action", Fault.crash_after_acting()),
            ("process_payment", "compensation", Fault.permanent("Payment.ProviderDown")),
        ),
    ),
]


def make_order(rng: random.Random, number: int, scenario: Scenario) -> dict[str, Any]:
    """The demo's order `number`, shaped by its scenario."""
    regular = [sku for sku in CATALOG if sku != "SKU-DESK-LAMP"]
    items = [{"sku": sku, "quantity": rng.randint(1, 2)} for sku in rng.sample(regular, rng.randint(1, 2))]
    customer = f"customer{number:03d}"
    return {
        "order_id": f"ord-{number:04d}",
        "customer": {
            "customer_id": customer,
            "email": f"{customer}@{scenario.shape.get('email_domain', 'example.com')}",
        },
        "items": scenario.shape.get("items", items),
        "payment": scenario.shape.get("payment", {"card_token": "tok_visa"}),
        "shipping_address": {
            "name": customer.title(),
            "line1": f"{number} Main Street",
            "city": "Springfield",
            "postal_code": f"{10000 + number}",
            "country": scenario.shape.get("country", rng.choice(COUNTRIES)),
        },
    }


# --- sample orders: the fault matrix, make soak and make deploy-local -------------------------------------------------
# sku: unit price in cents; SKUs of the samples' own, so a cloud shared with other tests keeps their stock apart
SAMPLE_CATALOG = {"SKU-SAMPLE-DOCK": 4999, "SKU-SAMPLE-HEADSET": 2599, "SKU-SAMPLE-WEBCAM": 18999}
MAX_SAMPLE_UNITS = 3  # of one sku, per sample order


def sample_order(rng: random.Random, number: int) -> dict[str, Any]:
    """Sample order `number`: always a healthy one (faults are injected, not in the input)."""
    items = [
        {"sku": sku, "quantity": rng.randint(1, MAX_SAMPLE_UNITS)}
        for sku in rng.sample(sorted(SAMPLE_CATALOG), rng.randint(1, 2))
    ]
    customer = f"sample-customer-{number:05d}"
    return {
        "order_id": f"sample-ord-{number:05d}",
        "customer": {"customer_id": customer, "email": f"{customer}@example.com"},
        "items": items,
        "payment": {"card_token": "tok_visa"},
        "shipping_address": {
            "name": "Sample Buyer",
            "line1": f"{number} Main Street",
            "city": "Springfield",
            "postal_code": f"{10000 + number % 90000}",
            "country": "DE",
        },
    }


# Every sku's catalog price the kit knows; a sku seeded without one (a test's own) costs DEFAULT_UNIT_PRICE_CENTS.
KNOWN_PRICES = {sku: price for sku, (price, _) in CATALOG.items()} | SAMPLE_CATALOG
DEFAULT_UNIT_PRICE_CENTS = 1000
