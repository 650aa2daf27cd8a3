"""The TripBooking example end to end on the local runtime, beside the order saga on one cloud: its own route
(POST /trips, GET /trips/{trip_id}, its listing), the deposit priced from the airline's and the hotel's catalogs, its
pivot, and the operator CLI on trips (an itinerary parked past the pivot resumed forward; a pivot parked, then
refusing on resume, compensated). The kit's invariant check (seats, rooms, deposits) must hold after each."""

from __future__ import annotations

import time
import uuid

import pytest
from rich.console import Console

from saga_ops import cli
from saga_testkit.faults import Fault
from saga_testkit.observe import FINISHED_STATUSES
from tests.sagas.trip_booking.kit import Flight, Hotel

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

PATH = "trips"  # the trip saga's route (its definition's api.path); trip_id names the saga
FARE_CENTS, NIGHTLY_RATE_CENTS = 21_000, 15_000
# Flights and a hotel of this module's own, so the other tests' trips on the cloud keep their seats and rooms apart
FLIGHTS = {
    "E2E-FL1": Flight(FARE_CENTS, 40),
    "E2E-LATE": Flight(9_900, 10, ticketing_time_limit_seconds=0),  # expired once held: the pivot refuses it
}
HOTELS = {"E2E-HT1": Hotel(NIGHTLY_RATE_CENTS, 40)}
ITINERARY_DOWN = Fault.transient("Notification.ProviderUnavailable", times=1000)
GDS_DOWN = Fault.transient("Flight.GdsUnavailable", times=1000)


@pytest.fixture(scope="module")
def trips(local_sagas_of):
    sagas = local_sagas_of("TripBooking")
    sagas.kit.open_sales(FLIGHTS, HOTELS)
    return sagas


@pytest.fixture
def trip_id():
    return f"trip-{uuid.uuid4().hex[:12]}"


def _trip(trip_id: str, *, flight: str = "E2E-FL1", passengers: int = 2, nights: int = 3) -> dict:
    return {
        "trip_id": trip_id,
        "traveller": {"traveller_id": "e2e-traveller", "email": "traveller@example.com"},
        "flight": {"flight_number": flight, "passengers": passengers},
        "hotel": {"hotel_id": "E2E-HT1", "rooms": 1, "nights": nights},
        "payment": {"card_token": "tok_visa"},
    }


def _finished(client, trip_id: str, timeout_seconds: float = 45) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        answer = client.get(PATH, trip_id)
        assert answer.status == 200, answer
        if answer.body["status"] in FINISHED_STATUSES:
            return answer.body
        time.sleep(0.25)
    raise AssertionError(f"{trip_id} did not finish: {answer.body}")


def _ops(*args: str) -> tuple[int, str]:
    output = Console(record=True, width=200)
    exit_code = cli.main(list(args), console=output)
    return exit_code, output.export_text()


def test_a_trip_posted_to_its_route_is_booked_at_the_catalogs_prices(local_api, trips, trip_id):
    _, client = local_api
    # When a travel site posts a trip for two passengers and three nights
    answer = client.start(PATH, _trip(trip_id))
    # Then it is accepted as a TripBooking saga named by its trip_id, and runs to COMPLETED
    assert (answer.status, answer.body["saga_type"], answer.body["saga_id"]) == (202, "TripBooking", trip_id)
    finished = _finished(client, trip_id)
    assert (finished["status"], finished["saga_type"]) == ("COMPLETED", "TripBooking")
    # And the deposit is the catalog's fare for two seats plus its rate for three nights, charged once
    ledger = trips.kit.payments.get_ledger(trip_id)
    assert (ledger.charge.amount_cents, ledger.refund) == (2 * FARE_CENTS + 3 * NIGHTLY_RATE_CENTS, None)
    # And the tickets are issued for both seats, the room is held, the itinerary is in the outbox
    seats = trips.kit.flights.get_hold(trip_id)
    assert (seats.status, len(seats.tickets)) == ("TICKETED", 2)
    assert trips.kit.hotels.get_hold(trip_id).status == "HELD"
    assert trips.kit.notifications.get_outbox(trip_id).itinerary is not None
    # And the trips listing has it, the orders route does not know it
    listed = client.list(PATH, "COMPLETED", limit=100).body["sagas"]
    assert trip_id in {saga["saga_id"] for saga in listed}
    assert {saga["saga_type"] for saga in listed} == {"TripBooking"}
    assert client.get("orders", trip_id).status == 404
    assert trips.check().problems == []


def test_a_trip_that_names_its_own_price_is_refused_and_starts_nothing(local_api, trips, trip_id):
    _, client = local_api
    # When the client sends an amount with the trip
    answer = client.start(PATH, {**_trip(trip_id), "deposit_cents": 100})
    # Then the route refuses it: prices come from the catalogs, never from the client
    assert answer.status == 400, answer
    assert trips.records.get(trip_id) is None


def test_a_fare_expired_at_the_pivot_gives_back_the_seats_the_room_and_the_deposit(local_api, trips, trip_id):
    _, client = local_api
    # Given a fare that is no longer valid when the tickets are issued
    client.start(PATH, _trip(trip_id, flight="E2E-LATE", passengers=1))
    # Then the pivot refuses, and every step before it is compensated, last first
    finished = _finished(client, trip_id)
    assert (finished["status"], finished["error"]) == ("FAILED", "Flight.FareExpired")
    outcome = trips.outcome(trip_id)
    assert outcome.actions_succeeded == ("hold_seat", "hold_room", "charge_deposit")
    assert outcome.compensations_succeeded == ("charge_deposit", "hold_room", "hold_seat")
    assert trips.kit.payments.get_ledger(trip_id).net_cents == 0
    assert trips.kit.flights.get_hold(trip_id).status == "RELEASED"
    assert trips.kit.hotels.get_hold(trip_id).status == "RELEASED"
    assert trips.check().problems == []


def test_an_itinerary_parked_past_the_pivot_is_resumed_forward_by_the_operator(local_api, trips, trip_id):
    _, client = local_api
    # Given a trip whose itinerary provider stays down past its retries
    trips.faults.plan(trip_id, "send_itinerary", "action", ITINERARY_DOWN)
    client.start(PATH, _trip(trip_id))
    # Then past its pivot nothing is given back: it parks, the itinerary pending, the tickets issued
    finished = _finished(client, trip_id)
    assert (finished["status"], finished["failed_step"]) == ("FORWARD_RECOVERY_FAILED", "send_itinerary")
    assert trips.records.get(trip_id)["pending"] == [{"step": "send_itinerary", "kind": "action"}]
    assert trips.kit.flights.get_hold(trip_id).status == "TICKETED"
    # And the operator CLI shows what a resume would run
    exit_code, shown = _ops("show", trip_id)
    assert exit_code == 0, shown
    assert "send_itinerary" in shown
    assert "TripBooking" in shown
    # When the provider is back and an operator resumes it
    trips.faults.clear(trip_id, "send_itinerary", "action")
    exit_code, shown = _ops(
        "resume", trip_id, "--retry", "--reason", "provider is back", "--by", "ana@ops", "--wait-seconds", "20"
    )
    # Then the itinerary goes out and the trip is COMPLETED, its deposit kept and its tickets issued once
    assert exit_code == 0, shown
    record = trips.records.get(trip_id)
    assert (record["status"], record["pending"]) == ("COMPLETED", [])
    assert trips.kit.notifications.get_outbox(trip_id).itinerary is not None
    assert trips.kit.payments.get_ledger(trip_id).net_cents == 2 * FARE_CENTS + 3 * NIGHTLY_RATE_CENTS
    assert trips.faults.effects(trip_id, "issue_tickets", "action") == 1
    assert trips.check().problems == []


def test_a_parked_pivot_that_refuses_on_resume_compensates_every_step_before_it(local_api, trips, trip_id):
    _, client = local_api
    # Given a trip parked at its pivot: the airline's system stayed unreachable past the retries
    trips.faults.plan(trip_id, "issue_tickets", "action", GDS_DOWN)
    client.start(PATH, _trip(trip_id))
    finished = _finished(client, trip_id)
    assert (finished["status"], finished["failed_step"]) == ("FORWARD_RECOVERY_FAILED", "issue_tickets")
    assert trips.records.get(trip_id)["pending"] == [
        {"step": "issue_tickets", "kind": "action"},
        {"step": "send_itinerary", "kind": "action"},
    ]
    # When the operator resumes it, and the fare expired while it was parked
    trips.faults.plan(trip_id, "issue_tickets", "action", Fault.permanent("Flight.FareExpired"))
    exit_code, shown = _ops(
        "resume", trip_id, "--retry", "--reason", "GDS is back", "--by", "ana@ops", "--wait-seconds", "20"
    )
    # Then the saga goes back as the state machine takes a refused pivot: the deposit, the room and the seats
    assert exit_code == 0, shown
    record = trips.records.get(trip_id)
    assert (record["status"], record["error"], record["pending"]) == ("FAILED", "Flight.FareExpired", [])
    assert [record["steps"][step]["status"] for step in ("charge_deposit", "hold_room", "hold_seat")] == [
        "COMPENSATED"
    ] * 3
    assert trips.kit.payments.get_ledger(trip_id).net_cents == 0
    assert trips.kit.flights.get_hold(trip_id).status == "RELEASED"
    assert trips.kit.hotels.get_hold(trip_id).status == "RELEASED"
    assert trips.check().problems == []
