"""The OrderFulfillment example's harness data: what the test kit (saga_testkit/) runs this saga with.

Its definition file; the services' data on a running stack (`OrderShop`: stock seeded, and stock and money reconciled
against the saga records); and the orders of `make demo` (catalog and scenarios), `make soak` and `make deploy-local`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from saga_testkit.faults import Fault
from saga_testkit.scenario import Scenario
from services.inventory.repository import InventoryRepository
from services.notification.repository import NotificationRepository
from services.payment.repository import PaymentRepository
from services.shipping.repository import ShippingRepository
from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.order_fulfillment.reconciliation import Reconciliation, reconcile

SAGA_FILE = DEFINITIONS_DIR / "order_fulfillment.saga.yaml"


class OrderShop:
    """The four services' data on a running stack, found by service name (`service_table`: service -> table)."""

    def __init__(self, service_table: Callable[[str], str]) -> None:
        self.inventory = InventoryRepository(service_table("InventoryService"))
        self.payments = PaymentRepository(service_table("PaymentService"))
        self.shipping = ShippingRepository(service_table("ShippingService"))
        self.notifications = NotificationRepository(service_table("NotificationService"))
        self.initial_stock: dict[str, int] = {}

    def seed_stock(self, stock: dict[str, int]) -> None:
        for sku, available in stock.items():
            self.inventory.seed_stock(sku, available)
        self.initial_stock |= stock

    def reconcile(self, saga_records: list[dict[str, Any]]) -> Reconciliation:
        return reconcile(
            saga_records,
            initial_stock=self.initial_stock,
            inventory=self.inventory,
            payments=self.payments,
            shipping=self.shipping,
            notifications=self.notifications,
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
    Scenario(
        "out of stock", 5, "FAILED", {"items": [{"sku": "SKU-DESK-LAMP", "quantity": 5, "unit_price_cents": 3499}]}
    ),
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
NEEDS_A_HUMAN = "carrier crashed, refund failed"


def make_order(rng: random.Random, number: int, scenario: Scenario) -> dict[str, Any]:
    """The demo's order `number`, shaped by its scenario."""
    regular = [sku for sku in CATALOG if sku != "SKU-DESK-LAMP"]
    items = [
        {"sku": sku, "quantity": rng.randint(1, 2), "unit_price_cents": CATALOG[sku][0]}
        for sku in rng.sample(regular, rng.randint(1, 2))
    ]
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


# --- make soak -----------------------------------------------------------------------------------------------------
# sku: unit price in cents; SKUs of the soak's own, so a cloud shared with other tests keeps their stock apart
SOAK_CATALOG = {"SKU-SOAK-DOCK": 4999, "SKU-SOAK-HEADSET": 2599, "SKU-SOAK-WEBCAM": 18999}


def soak_order(rng: random.Random, number: int) -> dict[str, Any]:
    """The soak's order `number`: always a healthy one (the soak's faults are injected, not in the input)."""
    items = [
        {"sku": sku, "quantity": rng.randint(1, 3), "unit_price_cents": SOAK_CATALOG[sku]}
        for sku in rng.sample(sorted(SOAK_CATALOG), rng.randint(1, 2))
    ]
    customer = f"soak-customer-{number:05d}"
    return {
        "order_id": f"soak-ord-{number:05d}",
        "customer": {"customer_id": customer, "email": f"{customer}@example.com"},
        "items": items,
        "payment": {"card_token": "tok_visa"},
        "shipping_address": {
            "name": "Soak Buyer",
            "line1": f"{number} Main Street",
            "city": "Springfield",
            "postal_code": f"{10000 + number % 90000}",
            "country": "DE",
        },
    }


# --- make deploy-local: one healthy saga, and one that fails for good at a step --------------------------------------
DEPLOY_LOCAL_STOCK = {"SKU-KEYBOARD": 50}
DEPLOY_LOCAL_FAILING_STEP = "create_shipment"  # a permanent failure here compensates the two steps before it


def deploy_local_order(saga_id: str) -> dict[str, Any]:
    return {
        "order_id": f"ord-{saga_id}",
        "customer": {"customer_id": "c-local", "email": "buyer@example.com"},
        "items": [{"sku": "SKU-KEYBOARD", "quantity": 1, "unit_price_cents": 2500}],
        "payment": {"card_token": "tok_visa"},
        "shipping_address": {
            "name": "Buyer",
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
    }
