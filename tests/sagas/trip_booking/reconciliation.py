"""The trip example's reconciliation: do the four services' tables agree with how each trip saga ended? Pure read and
compare, on the common ground of saga_testkit.invariants; its kit's invariant check.

What must hold once trips have settled:
- seats: per flight, what left sale (put on sale - available) is exactly what the holds still hold (held or
  ticketed); and rooms: per hotel, what left (put on sale - available) is exactly what the HELD room holds hold;
- each effect stands for exactly the COMPLETED trips: tickets issued, a room held, an itinerary in the outbox; and no
  settled trip keeps seats held but not ticketed (a FAILED one released them, a COMPLETED one ticketed them);
- money: per trip, deposit charged - refunded is, when COMPLETED, the catalog's fare for its passengers plus the
  catalog's rate for its rooms and nights (what the kit put on sale, not what the services computed), and 0 when
  FAILED.
Parked trips (the pivot or the itinerary ran out of retries, or a compensation did) await an operator: they are
listed, not failed. Trips still running are problems, and so are effects no saga record accounts for. Effects of
another saga type's sagas (`others`: payments and notifications serve the order saga too) are that type's to check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.table import Table

from saga_records.model import SagaStatus
from saga_testkit.invariants import SETTLED_STATUSES, SagaCheck, effect_problems, handed_to_operator, unfinished

if TYPE_CHECKING:
    from services.flight.repository import FlightRepository
    from services.hotel.repository import HotelRepository
    from services.notification.repository import NotificationRepository
    from services.payment.repository import PaymentRepository


@dataclass
class Catalog:
    """What the kit put on sale: per flight the seats and the fare of one, per hotel the rooms and a night's rate."""

    seats: Counter[str] = field(default_factory=Counter)
    fares: dict[str, int] = field(default_factory=dict)
    rooms: Counter[str] = field(default_factory=Counter)
    rates: dict[str, int] = field(default_factory=dict)

    def add_seats(self, flight_number: str, seats: int, fare_cents: int) -> None:
        self.seats[flight_number] += seats
        self.fares[flight_number] = fare_cents

    def add_rooms(self, hotel_id: str, rooms: int, nightly_rate_cents: int) -> None:
        self.rooms[hotel_id] += rooms
        self.rates[hotel_id] = nightly_rate_cents

    def deposit_cents(self, trip: dict[str, Any]) -> int | None:
        """What a booked trip costs at the catalog's prices (its seats, and its rooms for its nights); None for a trip
        on a flight or at a hotel the kit did not put on sale."""
        flight, hotel = trip["flight"], trip["hotel"]
        fare, rate = self.fares.get(flight["flight_number"]), self.rates.get(hotel["hotel_id"])
        if fare is None or rate is None:
            return None
        return fare * flight["passengers"] + rate * hotel["rooms"] * hotel["nights"]


@dataclass(frozen=True)
class CapacityRow:
    name: str  # a flight number or a hotel id
    on_sale: int  # put on sale by the kit
    held: int  # held by the trips' holds
    available: int


@dataclass(frozen=True)
class Deposits:
    charged_cents: int
    refunded_cents: int
    net_cents: int
    expected_cents: int  # the catalog's price of the COMPLETED trips


@dataclass
class TripReconciliation(SagaCheck):
    seats: list[CapacityRow] = field(default_factory=list)
    rooms: list[CapacityRow] = field(default_factory=list)
    deposits: Deposits = field(default_factory=lambda: Deposits(0, 0, 0, 0))

    def figures(self) -> list[tuple[str, str]]:
        return [
            ("flights and hotels reconciled", f"{len(self.seats)} / {len(self.rooms)}"),
            (
                "deposits net, all trips / completed trips (cents)",
                f"{self.deposits.net_cents} / {self.deposits.expected_cents}",
            ),
        ]

    def tables(self) -> list[Table]:
        tables = []
        for title, rows, unit in (
            ("Seat reconciliation", self.seats, "flight"),
            ("Room reconciliation", self.rooms, "hotel"),
        ):
            table = Table(title=title)
            for column in (unit, "put on sale", "held by trips", "available now", "on sale - held"):
                table.add_column(column, justify="left" if column == unit else "right")
            for row in rows:
                table.add_row(
                    row.name, str(row.on_sale), str(row.held), str(row.available), str(row.on_sale - row.held)
                )
            tables.append(table)
        money = Table(title="Deposit reconciliation")
        for column in ("charged", "refunded", "net", "expected (completed trips, catalog prices)"):
            money.add_column(column)
        figures = (
            self.deposits.charged_cents,
            self.deposits.refunded_cents,
            self.deposits.net_cents,
            self.deposits.expected_cents,
        )
        money.add_row(*(f"{cents / 100:,.2f}" for cents in figures))
        return [*tables, money]


def reconcile(
    saga_records: list[dict[str, Any]],
    *,
    catalog: Catalog,
    flights: FlightRepository,
    hotels: HotelRepository,
    payments: PaymentRepository,
    notifications: NotificationRepository,
    others: frozenset[str] = frozenset(),
) -> TripReconciliation:
    """`saga_records`: the trip sagas'; `others`: the ids of every other saga type's sagas."""
    status_of = {record["saga_id"]: record["status"] for record in saga_records}
    problems = unfinished(status_of)
    parked = handed_to_operator(status_of)

    seat_holds = [hold for hold in flights.list_holds() if hold.saga_id not in others]
    held_seats: Counter[str] = Counter()
    for hold in seat_holds:
        if hold.holds_seats:
            held_seats[hold.flight_number] += hold.seats
    available_seats = {flight.flight_number: flight.available for flight in flights.list_flights()}
    seats = _capacity("flight", catalog.seats, held_seats, available_seats, problems, "seats")
    room_holds = [hold for hold in hotels.list_holds() if hold.saga_id not in others]
    held_rooms: Counter[str] = Counter()
    for hold in room_holds:
        if not hold.is_released:
            held_rooms[hold.hotel_id] += hold.rooms
    available_rooms = {hotel.hotel_id: hotel.available for hotel in hotels.list_hotels()}
    rooms = _capacity("hotel", catalog.rooms, held_rooms, available_rooms, problems, "rooms")

    ticketed = {hold.saga_id for hold in seat_holds if hold.is_ticketed}
    problems += effect_problems("its tickets issued", ticketed, status_of, others)
    for hold in seat_holds:
        status = status_of.get(hold.saga_id)
        if hold.holds_seats and not hold.is_ticketed and (status is None or status in SETTLED_STATUSES):
            problems.append(f"saga {hold.saga_id}: {status or 'no saga record'}, but its seats are still held")
    problems += effect_problems("a room held", {h.saga_id for h in room_holds if not h.is_released}, status_of, others)
    itineraries = {outbox.saga_id for outbox in notifications.list_outboxes() if outbox.itinerary is not None}
    problems += effect_problems("an itinerary", itineraries, status_of, others)
    deposits = _deposits(saga_records, catalog, payments, status_of, problems, others)
    return TripReconciliation(problems=problems, parked=parked, seats=seats, rooms=rooms, deposits=deposits)


def _capacity(
    kind: str,
    on_sale: Counter[str],
    held: Counter[str],
    available: dict[str, int],
    problems: list[str],
    unit: str,
) -> list[CapacityRow]:
    rows = []
    for name in sorted(set(on_sale) | set(held)):
        row = CapacityRow(name, on_sale[name], held[name], available.get(name, 0))
        if row.on_sale - row.available != row.held:
            problems.append(f"{kind} {name}: {row.on_sale - row.available} {unit} left sale, the holds hold {row.held}")
        rows.append(row)
    return rows


def _deposits(
    saga_records: list[dict[str, Any]],
    catalog: Catalog,
    payments: PaymentRepository,
    status_of: dict[str, str],
    problems: list[str],
    others: frozenset[str],
) -> Deposits:
    ledgers = {ledger.saga_id: ledger for ledger in payments.list_ledgers() if ledger.saga_id not in others}
    expected_of = {}
    for record in saga_records:
        if record["status"] == SagaStatus.COMPLETED:
            price = catalog.deposit_cents(record["input"])
            if price is None:
                problems.append(f"saga {record['saga_id']}: COMPLETED on a flight or hotel the catalog does not sell")
            expected_of[record["saga_id"]] = price or 0
    for saga_id in sorted(set(ledgers) | set(expected_of)):
        status = status_of.get(saga_id)
        if status is not None and status not in SETTLED_STATUSES:
            continue
        net = ledgers[saga_id].net_cents if saga_id in ledgers else 0
        expected = expected_of.get(saga_id, 0)
        if net != expected:
            problems.append(
                f"saga {saga_id}: {status or 'no saga record'}, deposit net {net} cents, expected {expected}"
            )
    charged = sum(ledger.charge.amount_cents for ledger in ledgers.values() if ledger.charge)
    refunded = sum(ledger.refund.amount_cents for ledger in ledgers.values() if ledger.refund)
    return Deposits(charged, refunded, charged - refunded, sum(expected_of.values()))
