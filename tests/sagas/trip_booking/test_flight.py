"""FlightService: HoldSeat takes seats at the catalog's fare, once; ReleaseSeat gives them back, or leaves a tombstone;
IssueTickets (the trip's pivot) tickets a held fare once, refuses an expired fare or a released hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from participant_toolkit.errors import PermanentFailure, TransientFailure
from services.flight.models import HoldStatus
from tests.sagas.trip_booking.conftest import FARE_CENTS

pytestmark = pytest.mark.unit


def test_a_hold_takes_the_seats_at_the_catalog_s_fare(flights, flight_repository, command_for, saga_id, clock):
    # When the seats are held for two passengers
    result = flights.hold_seat(command_for("HoldSeat"))
    # Then two seats left sale, priced by the catalog (the trip sent no price), valid for the flight's time limit
    assert result["fare_cents"] == 2 * FARE_CENTS
    assert (result["seats"], result["status"]) == (2, "HELD")
    assert result["ticketing_deadline"] == (clock.now + timedelta(seconds=1800)).isoformat()
    assert flight_repository.get_flight("LH400").available == 3
    assert flight_repository.get_hold(saga_id).status is HoldStatus.HELD


def test_a_duplicate_hold_answers_the_same_and_takes_the_seats_once(flights, flight_repository, command_for):
    first = flights.hold_seat(command_for("HoldSeat"))
    assert flights.hold_seat(command_for("HoldSeat")) == first
    assert flight_repository.get_flight("LH400").available == 3


@pytest.mark.parametrize(
    ("flight", "error"),
    [
        ({"flight_number": "LH400", "passengers": 6}, "Flight.SoldOut"),
        ({"flight_number": "XX1", "passengers": 1}, "Flight.UnknownFlight"),
    ],
)
def test_a_hold_that_cannot_be_met_takes_nothing(flights, flight_repository, command_for, saga_id, trip, flight, error):
    trip["flight"] = flight
    with pytest.raises(PermanentFailure) as refused:
        flights.hold_seat(command_for("HoldSeat", trip_input=trip))
    assert refused.value.error == error
    assert flight_repository.get_hold(saga_id) is None
    assert flight_repository.get_flight("LH400").available == 5


def test_a_fare_changed_between_reading_and_holding_is_priced_again(
    flights, flight_repository, command_for, monkeypatch
):
    # Given the airline reprices the flight right after the hold read its fare
    real_hold = flight_repository.hold
    repriced = []

    def reprice_first(hold, *, seat_fare_cents):
        if not repriced:
            repriced.append(seat_fare_cents)
            flight = flight_repository.get_flight("LH400")
            flight_repository.seed_flight(flight.model_copy(update={"fare_cents": 50_000}))
        return real_hold(hold, seat_fare_cents=seat_fare_cents)

    monkeypatch.setattr(flight_repository, "hold", reprice_first)
    # When the seats are held / Then at the new fare, taken once
    assert flights.hold_seat(command_for("HoldSeat"))["fare_cents"] == 2 * 50_000
    assert repriced == [FARE_CENTS]
    assert flight_repository.get_flight("LH400").available == 3


def test_release_gives_the_seats_back(flights, flight_repository, command_for, saga_id):
    flights.hold_seat(command_for("HoldSeat"))
    result = flights.release_seat(command_for("ReleaseSeat", kind="compensation"))
    assert result["status"] == "RELEASED"
    assert flight_repository.get_flight("LH400").available == 5
    # and releasing again is a no-op
    flights.release_seat(command_for("ReleaseSeat", kind="compensation"))
    assert flight_repository.get_flight("LH400").available == 5


def test_a_release_before_the_hold_leaves_a_tombstone_that_refuses_the_late_hold(
    flights, flight_repository, command_for, saga_id
):
    # Given the saga compensated the step before its hold arrived
    assert flights.release_seat(command_for("ReleaseSeat", kind="compensation"))["status"] == "RELEASED"
    # When the late hold arrives, Then it is refused and takes no seat
    with pytest.raises(PermanentFailure) as refused:
        flights.hold_seat(command_for("HoldSeat"))
    assert refused.value.error == "Flight.HoldReleased"
    assert flight_repository.get_flight("LH400").available == 5


def test_issuing_tickets_tickets_the_held_seats_once(flights, flight_repository, command_for, saga_id):
    flights.hold_seat(command_for("HoldSeat"))
    # When the tickets are issued, twice (a retried pivot)
    first = flights.issue_tickets(command_for("IssueTickets"))
    second = flights.issue_tickets(command_for("IssueTickets"))
    # Then one ticket per passenger, the same ones both times, and the seats stay taken
    assert first == second
    assert (first["status"], len(first["tickets"]), len(set(first["tickets"]))) == ("TICKETED", 2, 2)
    assert flight_repository.get_hold(saga_id).tickets == first["tickets"]
    assert flight_repository.get_flight("LH400").available == 3


def test_an_expired_fare_is_refused_at_the_pivot_and_the_seats_stay_held_for_the_release(
    flights, flight_repository, command_for, saga_id, clock
):
    flights.hold_seat(command_for("HoldSeat"))
    # Given the fare's time limit passed
    clock.now += timedelta(seconds=1800)
    # When the tickets are issued / Then the fare is refused for good, nothing ticketed
    with pytest.raises(PermanentFailure) as refused:
        flights.issue_tickets(command_for("IssueTickets"))
    assert refused.value.error == "Flight.FareExpired"
    assert flight_repository.get_hold(saga_id).status is HoldStatus.HELD
    # And the saga's compensation gives the seats back
    flights.release_seat(command_for("ReleaseSeat", kind="compensation"))
    assert flight_repository.get_flight("LH400").available == 5


def test_a_released_hold_is_never_ticketed(flights, command_for):
    flights.hold_seat(command_for("HoldSeat"))
    flights.release_seat(command_for("ReleaseSeat", kind="compensation"))
    with pytest.raises(PermanentFailure) as refused:
        flights.issue_tickets(command_for("IssueTickets"))
    assert refused.value.error == "Flight.HoldReleased"


def test_issued_tickets_are_never_released(flights, flight_repository, command_for, saga_id):
    flights.hold_seat(command_for("HoldSeat"))
    flights.issue_tickets(command_for("IssueTickets"))
    # When a release reaches a ticketed hold (only an operator's mistake could send it)
    with pytest.raises(PermanentFailure) as refused:
        flights.release_seat(command_for("ReleaseSeat", kind="compensation"))
    # Then it fails for good, naming neither traveller nor ticket, and the seats stay sold
    assert refused.value.error == "Flight.TicketsIssued"
    assert "TKT-" not in refused.value.cause
    assert flight_repository.get_hold(saga_id).status is HoldStatus.TICKETED
    assert flight_repository.get_flight("LH400").available == 3


def test_a_throttled_store_is_a_transient_failure(flights, command_for, dynamodb):
    from botocore.exceptions import ClientError

    def refuse(**_):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DynamoDB")

    dynamodb.meta.client.meta.events.register("before-call.dynamodb", refuse)
    with pytest.raises(TransientFailure) as failed:
        flights.hold_seat(command_for("HoldSeat"))
    assert failed.value.error == "Flight.StoreUnavailable"
