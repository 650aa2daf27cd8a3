"""Reconciliation: the participants' tables, written by the real services, checked against how each saga ended."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from participant_toolkit.command import CommandKind, SagaCommand
from services.inventory.repository import InventoryRepository
from services.inventory.service import InventoryService
from services.notification.repository import NotificationRepository
from services.notification.service import NotificationService
from services.payment.repository import PaymentRepository
from services.payment.service import PaymentService
from services.shipping.repository import ShippingRepository
from services.shipping.service import ShippingService
from tests.sagas.order_fulfillment.reconciliation import MoneyFigures, Reconciliation, StockRow, reconcile
from tests.unit.tables import create_service_table

pytestmark = pytest.mark.unit

INITIAL_STOCK = {"SKU-KEYBOARD": 10, "SKU-MOUSE": 10}
PRICES = {"SKU-KEYBOARD": 4999, "SKU-MOUSE": 1250}  # the catalog's: the order names no price
ORDER: dict[str, Any] = {
    "order_id": "ord-0001",
    "customer": {"customer_id": "c-1", "email": "ana@example.com"},
    "items": [
        {"sku": "SKU-KEYBOARD", "quantity": 1},
        {"sku": "SKU-MOUSE", "quantity": 2},
    ],
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {
        "name": "Ana",
        "line1": "1 Main St",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
}
ORDER_AMOUNT_CENTS = 4999 + 2 * 1250


@dataclass
class Shop:
    """The four services over their own tables, as the saga drives them."""

    inventory: InventoryRepository
    payments: PaymentRepository
    shipping: ShippingRepository
    notifications: NotificationRepository

    def run(self, saga_id: str, *commands: str) -> None:
        """Deliver the commands in order, as the saga's state machine would."""
        services = {
            "ReserveItems": InventoryService(self.inventory).reserve_items,
            "ReleaseReservation": InventoryService(self.inventory).release_reservation,
            "ProcessPayment": PaymentService(self.payments).process_payment,
            "RefundPayment": PaymentService(self.payments).refund_payment,
            "CreateShipment": ShippingService(self.shipping).create_shipment,
            "CancelShipment": ShippingService(self.shipping).cancel_shipment,
            "SendOrderConfirmation": NotificationService(self.notifications).send_order_confirmation,
            "SendCancellationNotice": NotificationService(self.notifications).send_cancellation_notice,
        }
        results: dict[str, Any] = {}  # what the state machine carries from step to step
        for command in commands:
            kind: CommandKind = "compensation" if command in COMPENSATIONS else "action"
            results[command] = services[command](
                SagaCommand(
                    saga_id=saga_id,
                    saga_type="OrderFulfillment",
                    step=command,
                    kind=kind,
                    command=command,
                    idempotency_key=f"{saga_id}#{command}",
                    task_token="token",
                    heartbeat_seconds=20,
                    input=copy.deepcopy(ORDER),
                    results=copy.deepcopy(results),
                )
            )

    def reconcile(self, *saga_records: dict[str, Any]) -> Reconciliation:
        return reconcile(
            list(saga_records),
            initial_stock=INITIAL_STOCK,
            prices=PRICES,
            inventory=self.inventory,
            payments=self.payments,
            shipping=self.shipping,
            notifications=self.notifications,
        )


COMPENSATIONS = {"ReleaseReservation", "RefundPayment", "CancelShipment", "SendCancellationNotice"}
COMPLETED = ("ReserveItems", "ProcessPayment", "CreateShipment", "SendOrderConfirmation")
# Failed at shipping (say the carrier refused), then compensated in reverse.
FAILED = ("ReserveItems", "ProcessPayment", "RefundPayment", "ReleaseReservation")


def saga(saga_id: str, status: str) -> dict[str, Any]:
    return {"saga_id": saga_id, "status": status, "input": copy.deepcopy(ORDER), "steps": {}}


@pytest.fixture
def shop(aws_env: None) -> Iterator[Shop]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        for name in ("inventory", "payments", "shipping", "notifications"):
            create_service_table(name)
        shop = Shop(
            InventoryRepository("inventory", dynamodb=dynamodb),
            PaymentRepository("payments", dynamodb=dynamodb),
            ShippingRepository("shipping", dynamodb=dynamodb),
            NotificationRepository("notifications", dynamodb=dynamodb),
        )
        for sku, available in INITIAL_STOCK.items():
            shop.inventory.seed_stock(sku, available, unit_price_cents=PRICES[sku])
        yield shop


def test_consistent_sagas_reconcile(shop):
    # Given one saga completed and one failed and compensated
    shop.run("saga-ok", *COMPLETED)
    shop.run("saga-failed", *FAILED)

    # When reconciled
    result = shop.reconcile(saga("saga-ok", "COMPLETED"), saga("saga-failed", "FAILED"))

    # Then it holds, and the figures show what the completed order holds
    assert result.problems == []
    assert result.ok
    assert result.stock == [StockRow("SKU-KEYBOARD", 10, 1, 9), StockRow("SKU-MOUSE", 10, 2, 8)]
    assert result.money == MoneyFigures(
        charged_cents=2 * ORDER_AMOUNT_CENTS,
        refunded_cents=ORDER_AMOUNT_CENTS,
        net_cents=ORDER_AMOUNT_CENTS,
        expected_cents=ORDER_AMOUNT_CENTS,
    )


def test_a_failed_saga_that_confirmed_and_retracted_reconciles(shop):
    # Given a saga that confirmed, then failed and sent the cancellation notice
    shop.run("saga-late-failure", *COMPLETED, "SendCancellationNotice", "CancelShipment")
    shop.run("saga-late-failure", "RefundPayment", "ReleaseReservation")

    # When reconciled, Then it holds
    assert shop.reconcile(saga("saga-late-failure", "FAILED")).problems == []


def test_a_leaked_reservation_is_reported_against_its_saga(shop):
    # Given a failed saga whose reservation was never released
    shop.run("saga-leak", "ReserveItems", "ProcessPayment", "RefundPayment")

    # When reconciled
    result = shop.reconcile(saga("saga-leak", "FAILED"))

    # Then the reservation is reported, naming the saga
    assert not result.ok
    assert result.problems == ["saga saga-leak: FAILED but still has an ACTIVE reservation"]


def test_an_unrefunded_charge_of_a_failed_saga_is_reported_against_its_saga(shop):
    # Given a failed saga whose charge was never refunded
    shop.run("saga-unrefunded", "ReserveItems", "ProcessPayment", "ReleaseReservation")

    # When reconciled
    result = shop.reconcile(saga("saga-unrefunded", "FAILED"))

    # Then the money is reported, naming the saga and the amount
    assert not result.ok
    assert result.problems == [f"saga saga-unrefunded: FAILED, net {ORDER_AMOUNT_CENTS} cents, expected 0"]


def test_stock_gone_without_a_reservation_is_reported_against_its_sku(shop):
    # Given stock that changed with no saga behind it
    shop.inventory.seed_stock("SKU-MOUSE", 7, unit_price_cents=PRICES["SKU-MOUSE"])

    # When reconciled, Then the sku is reported
    assert shop.reconcile().problems == ["sku SKU-MOUSE: 3 units left stock, ACTIVE reservations hold 0"]


def test_a_completed_saga_missing_its_effects_is_reported(shop):
    # Given a saga recorded COMPLETED that only reserved and paid
    shop.run("saga-short", "ReserveItems", "ProcessPayment")

    # When reconciled, Then each missing effect is reported
    assert shop.reconcile(saga("saga-short", "COMPLETED")).problems == [
        "saga saga-short: COMPLETED without a CREATED shipment",
        "saga saga-short: COMPLETED without a confirmation not cancelled",
    ]


def test_parked_sagas_are_listed_not_failed_and_unfinished_ones_are_problems(shop):
    # Given a saga parked half-compensated (its refund ran out of retries), and one still running
    shop.run("saga-parked", "ReserveItems", "ProcessPayment", "ReleaseReservation")
    shop.run("saga-running", "ReserveItems")

    # When reconciled
    result = shop.reconcile(saga("saga-parked", "COMPENSATION_FAILED"), saga("saga-running", "PENDING"))

    # Then the parked saga is listed for an operator, and the running one is a problem
    assert result.parked == ["saga-parked"]
    assert result.problems == ["saga saga-running has not finished (PENDING)"]
