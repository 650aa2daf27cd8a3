"""The TripBooking example's kit: what the test kit (saga_testkit/) runs this saga with.

`Kit` (found by the convention tests/sagas/<snake>/kit.py): the four services' data on a running stack, the airline's
and the hotels' catalogs put on sale for the sample and demo trips (seats, rooms and their prices, which the kit
remembers to reconcile against), and its invariant check: seats, rooms and deposits against the trip sagas' records;
the trips of the demo (catalog and scenarios), and the sample trips the fault matrix, the soak and deploy-local start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from saga_testkit.faults import Fault
from saga_testkit.kit import SagaKit, ServiceTable
from saga_testkit.scenario import Scenario
from services.flight.models import FlightSeats
from services.flight.repository import FlightRepository
from services.hotel.models import HotelRooms
from services.hotel.repository import HotelRepository
from services.notification.repository import NotificationRepository
from services.payment.repository import PaymentRepository
from statemachines import SagaDefinition
from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.trip_booking.reconciliation import Catalog, TripReconciliation, reconcile

SAGA_FILE = DEFINITIONS_DIR / "trip_booking.saga.yaml"


@dataclass(frozen=True)
class Flight:
    fare_cents: int  # per seat
    seats: int
    ticketing_time_limit_seconds: int = 1800  # a held fare is valid for half an hour


@dataclass(frozen=True)
class Hotel:
    nightly_rate_cents: int  # per room
    rooms: int


class Kit(SagaKit):
    """The four services' data on a running stack, found by service name, and what this kit put on sale."""

    def __init__(self, definition: SagaDefinition, service_table: ServiceTable) -> None:
        super().__init__(definition, service_table)
        self.flights = FlightRepository(service_table("FlightService"))
        self.hotels = HotelRepository(service_table("HotelService"))
        self.payments = PaymentRepository(service_table("PaymentService"))
        self.notifications = NotificationRepository(service_table("NotificationService"))
        self.catalog = Catalog()
        self.scenarios = SCENARIOS

    def open_sales(self, flights: dict[str, Flight], hotels: dict[str, Hotel]) -> None:
        """Put `flights`' seats and `hotels`' rooms on sale, added to what is on sale already, at these prices; the
        reconciliation counts from what was put on sale."""
        for number, flight in flights.items():
            current = self.flights.get_flight(number)
            self.flights.seed_flight(
                FlightSeats(
                    flight_number=number,
                    available=(current.available if current else 0) + flight.seats,
                    fare_cents=flight.fare_cents,
                    ticketing_time_limit_seconds=flight.ticketing_time_limit_seconds,
                )
            )
            self.catalog.add_seats(number, flight.seats, flight.fare_cents)
        for hotel_id, hotel in hotels.items():
            current_hotel = self.hotels.get_hotel(hotel_id)
            self.hotels.seed_hotel(
                HotelRooms(
                    hotel_id=hotel_id,
                    available=(current_hotel.available if current_hotel else 0) + hotel.rooms,
                    nightly_rate_cents=hotel.nightly_rate_cents,
                )
            )
            self.catalog.add_rooms(hotel_id, hotel.rooms, hotel.nightly_rate_cents)

    def prepare(self, sagas: int) -> None:
        # A sample trip takes at most MAX_SAMPLE_PASSENGERS seats of a flight and MAX_SAMPLE_ROOMS rooms of a hotel
        self.open_sales(
            {number: Flight(fare, MAX_SAMPLE_PASSENGERS * sagas) for number, fare in SAMPLE_FLIGHTS.items()},
            {hotel_id: Hotel(rate, MAX_SAMPLE_ROOMS * sagas) for hotel_id, rate in SAMPLE_HOTELS.items()},
        )

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        return sample_trip(rng, number)

    def prepare_demo(self) -> None:
        self.open_sales(DEMO_FLIGHTS, DEMO_HOTELS)

    def scenario_input(self, scenario: Scenario, number: int, rng: random.Random) -> dict[str, Any]:
        return make_trip(rng, number, scenario)

    def check(self, records: list[dict[str, Any]], others: frozenset[str]) -> TripReconciliation:
        return reconcile(
            records,
            catalog=self.catalog,
            flights=self.flights,
            hotels=self.hotels,
            payments=self.payments,
            notifications=self.notifications,
            others=others,
        )


# --- make demo ------------------------------------------------------------------------------------------------------
REGULAR_FLIGHTS = {"LH400": Flight(45_900, 200), "BA982": Flight(31_900, 200), "AF1234": Flight(18_900, 200)}
REGULAR_HOTELS = {"BER-MITTE": Hotel(12_900, 200), "NYC-SOHO": Hotel(24_900, 200), "PAR-MARAIS": Hotel(19_900, 200)}
DEMO_FLIGHTS = {
    **REGULAR_FLIGHTS,
    "LX318": Flight(27_500, 2),  # two seats left: a party of three finds it sold out
    # A last-minute fare: valid only until it is held, so it has expired by the time the tickets are issued
    "EW9012": Flight(9_900, 50, ticketing_time_limit_seconds=0),
}
DEMO_HOTELS = {**REGULAR_HOTELS, "VEN-LIDO": Hotel(31_000, 1)}  # one room left: two rooms find no vacancy
MAX_DEMO_PASSENGERS = 2
MAX_DEMO_NIGHTS = 4

ITINERARY_PROVIDER_DOWN = Fault.transient("Notification.ProviderUnavailable", times=1000)
SCENARIOS = [
    Scenario("healthy trip", 15, "COMPLETED"),
    Scenario("flight sold out", 3, "FAILED", {"flight": {"flight_number": "LX318", "passengers": 3}}),
    Scenario("hotel without vacancy", 3, "FAILED", {"hotel": {"hotel_id": "VEN-LIDO", "rooms": 2, "nights": 2}}),
    Scenario("deposit declined", 3, "FAILED", {"payment": {"card_token": "tok_declined"}}),
    Scenario("fare expired at the pivot", 2, "FAILED", {"flight": {"flight_number": "EW9012", "passengers": 1}}),
    Scenario(
        "airline reply lost at the pivot (retried)",
        2,
        "COMPLETED",
        faults=(("issue_tickets", "action", Fault.lost_reply()),),
    ),
    Scenario(
        "flaky itinerary provider",
        2,
        "COMPLETED",
        faults=(("send_itinerary", "action", Fault.transient("Notification.ProviderUnavailable", times=2)),),
    ),
    Scenario(
        "itinerary provider down",
        1,
        "FORWARD_RECOVERY_FAILED",
        faults=(("send_itinerary", "action", ITINERARY_PROVIDER_DOWN),),
    ),
]


def make_trip(rng: random.Random, number: int, scenario: Scenario) -> dict[str, Any]:
    """The demo's trip `number`, shaped by its scenario."""
    traveller = f"traveller{number:03d}"
    return {
        "trip_id": f"trip-{number:04d}",
        "traveller": {"traveller_id": traveller, "email": f"{traveller}@example.com"},
        "flight": scenario.shape.get(
            "flight",
            {"flight_number": rng.choice(sorted(REGULAR_FLIGHTS)), "passengers": rng.randint(1, MAX_DEMO_PASSENGERS)},
        ),
        "hotel": scenario.shape.get(
            "hotel",
            {"hotel_id": rng.choice(sorted(REGULAR_HOTELS)), "rooms": 1, "nights": rng.randint(1, MAX_DEMO_NIGHTS)},
        ),
        "payment": scenario.shape.get("payment", {"card_token": "tok_visa"}),
    }


# --- sample trips: the fault matrix, make soak and make deploy-local ------------------------------------------------
# Flights and hotels of the samples' own (fare or nightly rate in cents), so a cloud shared with other tests keeps their
# seats and rooms apart
SAMPLE_FLIGHTS = {"SAMPLE-FL1": 12_900, "SAMPLE-FL2": 8_900}
SAMPLE_HOTELS = {"SAMPLE-HT1": 9_900, "SAMPLE-HT2": 14_900}
MAX_SAMPLE_PASSENGERS = 3
MAX_SAMPLE_ROOMS = 2
MAX_SAMPLE_NIGHTS = 3


def sample_trip(rng: random.Random, number: int) -> dict[str, Any]:
    """Sample trip `number`: always a healthy one (faults are injected, not in the input)."""
    traveller = f"sample-traveller-{number:05d}"
    return {
        "trip_id": f"sample-trip-{number:05d}",
        "traveller": {"traveller_id": traveller, "email": f"{traveller}@example.com"},
        "flight": {
            "flight_number": rng.choice(sorted(SAMPLE_FLIGHTS)),
            "passengers": rng.randint(1, MAX_SAMPLE_PASSENGERS),
        },
        "hotel": {
            "hotel_id": rng.choice(sorted(SAMPLE_HOTELS)),
            "rooms": rng.randint(1, MAX_SAMPLE_ROOMS),
            "nights": rng.randint(1, MAX_SAMPLE_NIGHTS),
        },
        "payment": {"card_token": "tok_visa"},
    }
