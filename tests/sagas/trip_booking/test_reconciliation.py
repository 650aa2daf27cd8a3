"""The trip kit's invariant check (seats, rooms and deposits against the trip sagas' records) holds for trips the
services ran as the saga does, and names each thing that does not add up."""

from __future__ import annotations

import pytest

from tests.sagas.trip_booking.conftest import DEFINITION, FARE_CENTS, NIGHTLY_RATE_CENTS
from tests.sagas.trip_booking.kit import Flight, Hotel, Kit

pytestmark = pytest.mark.unit

PRICE_CENTS = 2 * FARE_CENTS + 3 * NIGHTLY_RATE_CENTS


@pytest.fixture
def kit(flight_repository, hotel_repository, payment_repository, notification_repository):
    tables = {
        "FlightService": "flights",
        "HotelService": "hotels",
        "PaymentService": "payments",
        "NotificationService": "notifications",
    }
    kit = Kit(DEFINITION, tables.__getitem__)
    # The conftest's catalog (5 seats on LH400, 3 rooms at BER-MITTE), as the kit would have put it on sale, plus more
    kit.catalog.add_seats("LH400", 5, FARE_CENTS)
    kit.catalog.add_rooms("BER-MITTE", 3, NIGHTLY_RATE_CENTS)
    kit.open_sales({"LH400": Flight(FARE_CENTS, 5)}, {"BER-MITTE": Hotel(NIGHTLY_RATE_CENTS, 3)})
    return kit


@pytest.fixture
def run(flights, hotels, payments, notifications, command_for, trip):
    """Run the trip's steps as the saga would: `until` the last action that runs, then its compensations."""

    def steps(saga_id, *, until="send_itinerary", compensate=False):
        trip_input = {**trip, "trip_id": saga_id}
        results = {}

        def command(name, kind="action"):
            return command_for(name, kind=kind, saga_id=saga_id, trip_input=trip_input, results=dict(results))

        done = []
        for step, act in (
            ("hold_seat", lambda: flights.hold_seat(command("HoldSeat"))),
            ("hold_room", lambda: hotels.hold_room(command("HoldRoom"))),
            ("charge_deposit", lambda: payments.charge_deposit(command("ChargeDeposit"))),
            ("issue_tickets", lambda: flights.issue_tickets(command("IssueTickets"))),
            ("send_itinerary", lambda: notifications.send_itinerary(command("SendItinerary"))),
        ):
            results[step] = act()
            done.append(step)
            if step == until:
                break
        if compensate:
            undo = {
                "charge_deposit": lambda: payments.refund_deposit(command("RefundDeposit", "compensation")),
                "hold_room": lambda: hotels.release_room(command("ReleaseRoom", "compensation")),
                "hold_seat": lambda: flights.release_seat(command("ReleaseSeat", "compensation")),
            }
            for step in reversed(done):
                undo[step]()
        return {"saga_id": saga_id, "saga_type": DEFINITION.name, "input": trip_input}

    return steps


def test_completed_and_compensated_trips_reconcile(kit, run):
    # Given one trip booked and one given back after its deposit was taken
    records = [
        {**run("trip-ok"), "status": "COMPLETED"},
        {**run("trip-failed", until="charge_deposit", compensate=True), "status": "FAILED"},
    ]
    # When checked / Then seats, rooms and deposits add up: the booked trip's at the catalog's prices
    check = kit.check(records, frozenset())
    assert check.problems == []
    assert check.deposits.net_cents == check.deposits.expected_cents == PRICE_CENTS
    assert [(row.name, row.on_sale, row.held, row.available) for row in check.seats] == [("LH400", 10, 2, 8)]
    assert [(row.name, row.held) for row in check.rooms] == [("BER-MITTE", 1)]


def test_a_trip_parked_at_its_pivot_is_handed_to_an_operator_not_failed(kit, run):
    records = [{**run("trip-parked", until="charge_deposit"), "status": "FORWARD_RECOVERY_FAILED"}]
    check = kit.check(records, frozenset())
    assert (check.problems, check.parked) == ([], ["trip-parked"])


def test_what_does_not_add_up_is_named(kit, run, flight_repository, payment_repository):
    # Given a FAILED trip that kept its seats and room and deposit, and a COMPLETED trip without its itinerary
    records = [
        {**run("trip-leak", until="charge_deposit"), "status": "FAILED"},
        {**run("trip-quiet", until="issue_tickets"), "status": "COMPLETED"},
    ]
    # And a seat gone from sale that no hold accounts for
    flight = flight_repository.get_flight("LH400")
    flight_repository.seed_flight(flight.model_copy(update={"available": flight.available - 1}))
    problems = kit.check(records, frozenset()).problems
    assert "saga trip-leak: FAILED, but its seats are still held" in problems
    assert "saga trip-leak: FAILED but still has a room held" in problems
    assert f"saga trip-leak: FAILED, deposit net {PRICE_CENTS} cents, expected 0" in problems
    assert "saga trip-quiet: COMPLETED without an itinerary" in problems
    assert "flight LH400: 5 seats left sale, the holds hold 4" in problems


def test_another_saga_type_s_ledger_is_its_own_and_one_of_no_saga_is_a_problem(kit, run, payments, command_for):
    # Given a ledger of an order saga (another type) and one no saga record accounts for
    held = {"hold_seat": {"fare_cents": 100}, "hold_room": {"total_cents": 100}}
    for saga_id in ("order-1", "ghost-1"):
        payments.charge_deposit(command_for("ChargeDeposit", saga_id=saga_id, results=held))
    problems = kit.check([], frozenset({"order-1"})).problems
    assert problems == ["saga ghost-1: no saga record, deposit net 200 cents, expected 0"]
