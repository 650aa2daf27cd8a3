"""Flight's view of a trip, and its records: each flight's seats and fare, and one seat hold per saga."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class FlightRequest(BaseModel):
    flight_number: str = Field(min_length=1)
    passengers: int = Field(gt=0)


class SeatRequest(BaseModel):
    """What the airline needs from the saga input (other keys are another context's business)."""

    trip_id: str = Field(min_length=1)
    flight: FlightRequest


class FlightSeats(BaseModel):
    """A flight in the airline's catalog: the seats left to sell and what one costs."""

    flight_number: str
    available: int
    fare_cents: int = Field(ge=0)  # per seat
    # How long a held fare stays valid: the tickets must be issued within it, or the fare expires.
    ticketing_time_limit_seconds: int = Field(ge=0)


class HoldStatus(StrEnum):
    HELD = "HELD"
    TICKETED = "TICKETED"  # the pivot went through: never released
    RELEASED = "RELEASED"


class SeatHold(BaseModel):
    saga_id: str
    status: HoldStatus
    # Empty in a tombstone: nothing was held.
    flight_number: str = ""
    seats: int = 0
    fare_cents: int = 0  # every seat of the hold, at the catalog's fare when it was held
    ticketing_deadline: str = ""  # ISO 8601, UTC: the held fare is valid until then
    tickets: list[str] = Field(default_factory=list)

    @property
    def is_released(self) -> bool:
        return self.status is HoldStatus.RELEASED

    @property
    def is_ticketed(self) -> bool:
        return self.status is HoldStatus.TICKETED

    @property
    def holds_seats(self) -> bool:
        """Seats taken off sale by this hold: held, or ticketed."""
        return self.status is not HoldStatus.RELEASED

    def as_result(self) -> dict[str, Any]:
        return {
            "hold_id": self.saga_id,
            "flight_number": self.flight_number,
            "seats": self.seats,
            "fare_cents": self.fare_cents,
            "ticketing_deadline": self.ticketing_deadline,
            "status": self.status.value,
        }

    def tickets_result(self) -> dict[str, Any]:
        return {"flight_number": self.flight_number, "tickets": list(self.tickets), "status": self.status.value}


class UnknownFlight(Exception):
    def __init__(self, flight_number: str) -> None:
        super().__init__(f"no flight {flight_number}")


class SoldOut(Exception):
    def __init__(self, flight_number: str, seats: int) -> None:
        super().__init__(f"flight {flight_number} has fewer than {seats} seats left")
