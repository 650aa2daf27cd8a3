"""The order example's reconciliation: do the four services' tables agree with how each saga ended? Pure read
and compare, on the common ground of saga_testkit.reconciliation.

What must hold once sagas have settled:
- stock: per sku, what left the shelf (initial - available) is exactly what ACTIVE reservations hold;
- each effect stands exactly for the COMPLETED sagas: an ACTIVE reservation, a CREATED shipment, a confirmation with
  no cancellation (so a FAILED saga that confirmed has retracted it);
- money: per saga, charged - refunded is the order amount when COMPLETED and 0 when FAILED.
Parked sagas (a compensation or forward recovery ran out of retries) await an operator: they are listed, not failed.
Sagas still running are problems (reconcile settled sagas), and so are effects no saga record accounts for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saga_records.model import SagaStatus
from saga_testkit.reconciliation import SETTLED_STATUSES, effect_problems, handed_to_operator, unfinished
from services.payment.models import PaymentOrder

if TYPE_CHECKING:
    from services.inventory.models import Reservation
    from services.inventory.repository import InventoryRepository
    from services.notification.repository import NotificationRepository
    from services.payment.repository import PaymentRepository
    from services.shipping.repository import ShippingRepository


@dataclass(frozen=True)
class StockRow:
    sku: str
    initial: int
    reserved: int  # held by ACTIVE reservations
    available: int


@dataclass(frozen=True)
class MoneyFigures:
    charged_cents: int
    refunded_cents: int
    net_cents: int
    expected_cents: int  # the amounts of the COMPLETED orders


@dataclass(frozen=True)
class Reconciliation:
    ok: bool
    problems: list[str]
    parked: list[str]
    stock: list[StockRow]
    money: MoneyFigures


def reconcile(
    saga_records: list[dict[str, Any]],
    *,
    initial_stock: dict[str, int],
    inventory: InventoryRepository,
    payments: PaymentRepository,
    shipping: ShippingRepository,
    notifications: NotificationRepository,
) -> Reconciliation:
    status_of = {record["saga_id"]: record["status"] for record in saga_records}
    problems = unfinished(status_of)
    parked = handed_to_operator(status_of)

    reservations = inventory.list_reservations()
    active = [reservation for reservation in reservations if not reservation.is_released]
    stock = _stock_rows(initial_stock, inventory, active, problems)
    problems += effect_problems("an ACTIVE reservation", {r.saga_id for r in active}, status_of)
    shipments = shipping.list_shipments()
    problems += effect_problems("a CREATED shipment", {s.saga_id for s in shipments if not s.is_cancelled}, status_of)
    standing_confirmations = {o.saga_id for o in notifications.list_outboxes() if o.confirmation and not o.cancellation}
    problems += effect_problems("a confirmation not cancelled", standing_confirmations, status_of)
    money = _money(saga_records, payments, status_of, problems)

    return Reconciliation(ok=not problems, problems=problems, parked=parked, stock=stock, money=money)


def _stock_rows(
    initial_stock: dict[str, int], inventory: InventoryRepository, active: Iterable[Reservation], problems: list[str]
) -> list[StockRow]:
    available = {level.sku: level.available for level in inventory.list_stock()}
    reserved: Counter[str] = Counter()
    for reservation in active:
        for line in reservation.items:
            reserved[line.sku] += line.quantity
    rows = []
    for sku in sorted(set(initial_stock) | set(available) | set(reserved)):
        row = StockRow(sku, initial_stock.get(sku, 0), reserved[sku], available.get(sku, 0))
        if row.initial - row.available != row.reserved:
            problems.append(
                f"sku {sku}: {row.initial - row.available} units left stock, ACTIVE reservations hold {row.reserved}"
            )
        rows.append(row)
    return rows


def _money(
    saga_records: list[dict[str, Any]], payments: PaymentRepository, status_of: dict[str, str], problems: list[str]
) -> MoneyFigures:
    ledgers = {ledger.saga_id: ledger for ledger in payments.list_ledgers()}
    amount_of = {
        record["saga_id"]: PaymentOrder.model_validate(record["input"]).amount_cents
        for record in saga_records
        if record["status"] == SagaStatus.COMPLETED
    }
    for saga_id in sorted(set(ledgers) | set(amount_of)):
        status = status_of.get(saga_id)
        if status is not None and status not in SETTLED_STATUSES:
            continue
        net = ledgers[saga_id].net_cents if saga_id in ledgers else 0
        expected = amount_of.get(saga_id, 0)
        if net != expected:
            problems.append(f"saga {saga_id}: {status or 'no saga record'}, net {net} cents, expected {expected}")
    charged = sum(ledger.charge.amount_cents for ledger in ledgers.values() if ledger.charge)
    refunded = sum(ledger.refund.amount_cents for ledger in ledgers.values() if ledger.refund)
    return MoneyFigures(charged, refunded, charged - refunded, sum(amount_of.values()))
