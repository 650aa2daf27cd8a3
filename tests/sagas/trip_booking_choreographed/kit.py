"""The TripBookingChoreographed example's kit: the trip saga's kit (the same services, trips, demo scenarios and seats,
rooms and deposits reconciliation), with flights and hotels of its own, so that both sagas can run on one stack, the
demo's included, and each reconcile the seats and rooms it put on sale (a sold-out flight stays sold out)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from saga_testkit.scenario import Scenario
from statemachines.definition import DEFINITIONS_DIR
from tests.sagas.trip_booking import kit as trip_kit

SAGA_FILE = DEFINITIONS_DIR / "trip_booking_choreographed.saga.yaml"
OWN_PREFIX = "CH-"


def own_code(code: str) -> str:
    """The trip kit's flight number or hotel id renamed for this saga: same price, seats and rooms of its own."""
    return OWN_PREFIX + code


def _with_own_codes(trip: dict[str, Any], trip_id: str) -> dict[str, Any]:
    flight, hotel = trip["flight"], trip["hotel"]
    return {
        **trip,
        "trip_id": trip_id,
        "flight": {**flight, "flight_number": own_code(flight["flight_number"])},
        "hotel": {**hotel, "hotel_id": own_code(hotel["hotel_id"])},
    }


# The demo runs the trip saga's scenarios in both patterns: this one at a third of the counts (each scenario at least
# once, the parked one included), so both fit one demo.
SCENARIOS = [replace(scenario, count=max(1, scenario.count // 3)) for scenario in trip_kit.SCENARIOS]


class Kit(trip_kit.Kit):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scenarios = SCENARIOS

    def prepare(self, sagas: int) -> None:
        self.open_sales(
            {
                own_code(number): trip_kit.Flight(fare, trip_kit.MAX_SAMPLE_PASSENGERS * sagas)
                for number, fare in trip_kit.SAMPLE_FLIGHTS.items()
            },
            {
                own_code(hotel_id): trip_kit.Hotel(rate, trip_kit.MAX_SAMPLE_ROOMS * sagas)
                for hotel_id, rate in trip_kit.SAMPLE_HOTELS.items()
            },
        )

    def sample_input(self, number: int, rng: random.Random) -> dict[str, Any]:
        return _with_own_codes(trip_kit.sample_trip(rng, number), f"choreo-trip-{number:05d}")

    def prepare_demo(self) -> None:
        self.open_sales(
            {own_code(number): flight for number, flight in trip_kit.DEMO_FLIGHTS.items()},
            {own_code(hotel_id): hotel for hotel_id, hotel in trip_kit.DEMO_HOTELS.items()},
        )

    def scenario_input(self, scenario: Scenario, number: int, rng: random.Random) -> dict[str, Any]:
        return _with_own_codes(trip_kit.make_trip(rng, number, scenario), f"choreo-trip-{number:04d}")
