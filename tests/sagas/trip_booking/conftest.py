"""Fixtures for the trip services' domain tests: one moto DynamoDB table per service, the flights and hotels on sale,
a sample trip, and its commands as the state machine sends them (with what the earlier steps returned)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from participant_toolkit.command import CommandKind, SagaCommand
from services.flight.models import FlightSeats
from services.flight.repository import FlightRepository
from services.flight.service import FlightService
from services.hotel.models import HotelRooms
from services.hotel.repository import HotelRepository
from services.hotel.service import HotelService
from services.notification.repository import NotificationRepository
from services.notification.service import NotificationService
from services.payment.repository import PaymentRepository
from services.payment.service import PaymentService
from statemachines import load_definition
from tests.sagas.trip_booking.kit import SAGA_FILE
from tests.unit.tables import create_service_table

SAGA_ID = "trip-saga-0001"
FARE_CENTS = 45_900  # a seat on LH400
NIGHTLY_RATE_CENTS = 12_900  # a room at BER-MITTE
TRIP: dict[str, Any] = {
    "trip_id": "trip-0001",
    "traveller": {"traveller_id": "t-1", "email": "ana@example.com"},
    "flight": {"flight_number": "LH400", "passengers": 2},
    "hotel": {"hotel_id": "BER-MITTE", "rooms": 1, "nights": 3},
    "payment": {"card_token": "tok_visa"},
}
DEFINITION = load_definition(SAGA_FILE)
STEP_OF_COMMAND = {command: step.name for step in DEFINITION.steps for command in step.commands}
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

CommandFactory = Callable[..., SagaCommand]


class Clock:
    """The services' clock, set by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[Any]:
    """moto first, then the resource every repository in the test shares."""
    with mock_aws():
        yield boto3.resource("dynamodb")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flight_repository(dynamodb: Any) -> FlightRepository:
    repository = FlightRepository(create_service_table("flights"), dynamodb=dynamodb)
    repository.seed_flight(
        FlightSeats(flight_number="LH400", available=5, fare_cents=FARE_CENTS, ticketing_time_limit_seconds=1800)
    )
    return repository


@pytest.fixture
def hotel_repository(dynamodb: Any) -> HotelRepository:
    repository = HotelRepository(create_service_table("hotels"), dynamodb=dynamodb)
    repository.seed_hotel(HotelRooms(hotel_id="BER-MITTE", available=3, nightly_rate_cents=NIGHTLY_RATE_CENTS))
    return repository


@pytest.fixture
def payment_repository(dynamodb: Any) -> PaymentRepository:
    return PaymentRepository(create_service_table("payments"), dynamodb=dynamodb)


@pytest.fixture
def notification_repository(dynamodb: Any) -> NotificationRepository:
    return NotificationRepository(create_service_table("notifications"), dynamodb=dynamodb)


@pytest.fixture
def flights(flight_repository: FlightRepository, clock: Clock) -> FlightService:
    return FlightService(flight_repository, clock=clock)


@pytest.fixture
def hotels(hotel_repository: HotelRepository) -> HotelService:
    return HotelService(hotel_repository)


@pytest.fixture
def payments(payment_repository: PaymentRepository) -> PaymentService:
    return PaymentService(payment_repository)


@pytest.fixture
def notifications(notification_repository: NotificationRepository, clock: Clock) -> NotificationService:
    return NotificationService(notification_repository, clock=clock)


@pytest.fixture
def saga_id() -> str:
    return SAGA_ID


@pytest.fixture
def trip() -> dict[str, Any]:
    return copy.deepcopy(TRIP)


@pytest.fixture
def command_for(trip: dict[str, Any]) -> CommandFactory:
    """`command_for("HoldSeat")`: the command as the state machine would send it for the sample trip, with the
    `results` of the steps before it (as given)."""

    def build(
        command: str,
        *,
        kind: CommandKind = "action",
        saga_id: str = SAGA_ID,
        trip_input: dict[str, Any] | None = None,
        results: dict[str, Any] | None = None,
    ) -> SagaCommand:
        step = STEP_OF_COMMAND[command]
        return SagaCommand(
            saga_id=saga_id,
            saga_type=DEFINITION.name,
            step=step,
            kind=kind,
            command=command,
            idempotency_key=f"{saga_id}#{step}#{kind}",
            task_token="token",
            heartbeat_seconds=20,
            input=trip if trip_input is None else trip_input,
            results=results or {},
        )

    return build


@pytest.fixture
def held_results(flights: FlightService, hotels: HotelService, command_for: CommandFactory) -> dict[str, Any]:
    """The trip's seat and room held, as the first two steps return them."""
    return {
        "hold_seat": flights.hold_seat(command_for("HoldSeat")),
        "hold_room": hotels.hold_room(command_for("HoldRoom")),
    }
