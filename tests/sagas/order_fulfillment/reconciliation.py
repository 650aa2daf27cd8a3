"""The order example's reconciliation: do the four services' tables agree with how each saga ended? Pure read
and compare, on the common ground of saga_testkit.invariants; its kit's invariant check.

What must hold once sagas have settled:
- stock: per sku, what left the shelf (initial - available) is exactly what ACTIVE reservations hold;
- each effect stands exactly for the COMPLETED sagas: an ACTIVE reservation, a CREATED shipment, a confirmation with
  no cancellation (so a FAILED saga that confirmed has retracted it);
- money: per saga, charged - refunded is the order amount at the catalog's prices (what the test seeded, not what
  any service computed) when COMPLETED, and 0 when FAILED.
Parked sagas (a compensation or forward recovery ran out of retries) await an operator: they are listed, not failed.
Sagas still running are problems (reconcile settled sagas), and so are effects no saga record accounts for. Effects of
another saga type's sagas (`others`: a service such as payments may serve several sagas) are that type's to check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.table import Table

from saga_records.model import SagaStatus
from saga_testkit.invariants import SETTLED_STATUSES, SagaCheck, effect_problems, handed_to_operator, unfinished

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


@dataclass
class Reconciliation(SagaCheck):
    stock: list[StockRow] = field(default_factory=list)
    money: MoneyFigures = field(default_factory=lambda: MoneyFigures(0, 0, 0, 0))

    def figures(self) -> list[tuple[str, str]]:
        return [
            ("stock rows reconciled", str(len(self.stock))),
            (
                "money net, all sagas / completed orders (cents)",
                f"{self.money.net_cents} / {self.money.expected_cents}",
            ),
        ]

    def tables(self) -> list[Table]:
        stock = Table(title="Stock reconciliation (units)")
        for column in ("sku", "initial", "reserved by completed orders", "available now", "initial - reserved"):
            stock.add_column(column, justify="right" if column != "sku" else "left")
        for row in self.stock:
            stock.add_row(
                row.sku, str(row.initial), str(row.reserved), str(row.available), str(row.initial - row.reserved)
            )
        money = Table(title="Money reconciliation")
        for column in ("charged", "refunded", "net", "expected (completed orders)"):
            money.add_column(column)
        figures = (self.money.charged_cents, self.money.refunded_cents, self.money.net_cents, self.money.expected_cents)
        money.add_row(*(f"{cents / 100:,.2f}" for cents in figures))
        return [stock, money]


def reconcile(
    saga_records: list[dict[str, Any]],
    *,
    initial_stock: dict[str, int],
    prices: dict[str, int],
    inventory: InventoryRepository,
    payments: PaymentRepository,
    shipping: ShippingRepository,
    notifications: NotificationRepository,
    others: frozenset[str] = frozenset(),
) -> Reconciliation:
    """`saga_records`: the order sagas'; `others`: the ids of every other saga type's sagas."""
    status_of = {record["saga_id"]: record["status"] for record in saga_records}
    problems = unfinished(status_of)
    parked = handed_to_operator(status_of)

    reservations = [r for r in inventory.list_reservations() if r.saga_id not in others]
    active = [reservation for reservation in reservations if not reservation.is_released]
    stock = _stock_rows(initial_stock, inventory, active, problems)
    problems += effect_problems("an ACTIVE reservation", {r.saga_id for r in active}, status_of, others)
    created = {s.saga_id for s in shipping.list_shipments() if not s.is_cancelled}
    problems += effect_problems("a CREATED shipment", created, status_of, others)
    standing_confirmations = {o.saga_id for o in notifications.list_outboxes() if o.confirmation and not o.cancellation}
    problems += effect_problems("a confirmation not cancelled", standing_confirmations, status_of, others)
    money = _money(saga_records, prices, payments, status_of, problems, others)

    return Reconciliation(problems=problems, parked=parked, stock=stock, money=money)


def _amount(saga_id: str, order: dict[str, Any], prices: dict[str, int], problems: list[str]) -> int:
    """What an order costs at the catalog's prices."""
    amount = 0
    for line in order.get("items", []):
        if line["sku"] not in prices:
            problems.append(f"saga {saga_id}: completed with sku {line['sku']}, which has no catalog price")
            continue
        amount += int(line["quantity"]) * prices[line["sku"]]
    return amount


def _stock_rows(
    initial_stock: dict[str, int], inventory: InventoryRepository, active: Iterable[Reservation], problems: list[str]
) -> list[StockRow]:
    available = {level.sku: level.available for level in inventory.list_stock()}
    reserved: Counter[str] = Counter()
    for reservation in active:
        for line in reservation.items:
            reserved[line.sku] += line.quantity
    rows = []
    # The skus this saga type seeded or reserves: another saga type on the same inventory reconciles its own.
    for sku in sorted(set(initial_stock) | set(reserved)):
        row = StockRow(sku, initial_stock.get(sku, 0), reserved[sku], available.get(sku, 0))
        if row.initial - row.available != row.reserved:
            problems.append(
                f"sku {sku}: {row.initial - row.available} units left stock, ACTIVE reservations hold {row.reserved}"
            )
        rows.append(row)
    return rows


def _money(
    saga_records: list[dict[str, Any]],
    prices: dict[str, int],
    payments: PaymentRepository,
    status_of: dict[str, str],
    problems: list[str],
    others: frozenset[str],
) -> MoneyFigures:
    ledgers = {ledger.saga_id: ledger for ledger in payments.list_ledgers() if ledger.saga_id not in others}
    amount_of = {
        record["saga_id"]: _amount(record["saga_id"], record["input"], prices, problems)
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
