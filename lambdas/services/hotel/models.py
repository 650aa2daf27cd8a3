"""The hotel's view of a trip, and its records: each hotel's rooms and rate, and one room hold per saga."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class HotelRequest(BaseModel):
    hotel_id: str = Field(min_length=1)
    rooms: int = Field(gt=0)
    nights: int = Field(gt=0)


class RoomRequest(BaseModel):
    """What the hotel needs from the saga input."""

    trip_id: str = Field(min_length=1)
    hotel: HotelRequest


class HotelRooms(BaseModel):
    """A hotel in the catalog: the rooms left to book and what a room costs a night."""

    hotel_id: str
    available: int
    nightly_rate_cents: int = Field(ge=0)


class RoomHoldStatus(StrEnum):
    HELD = "HELD"
    RELEASED = "RELEASED"


class RoomHold(BaseModel):
    saga_id: str
    status: RoomHoldStatus
    # Empty in a tombstone: nothing was held.
    hotel_id: str = ""
    rooms: int = 0
    nights: int = 0
    total_cents: int = 0  # rooms x nights at the catalog's rate when held

    @property
    def is_released(self) -> bool:
        return self.status is RoomHoldStatus.RELEASED

    def as_result(self) -> dict[str, Any]:
        return {
            "hold_id": self.saga_id,
            "hotel_id": self.hotel_id,
            "rooms": self.rooms,
            "nights": self.nights,
            "total_cents": self.total_cents,
            "status": self.status.value,
        }


class UnknownHotel(Exception):
    def __init__(self, hotel_id: str) -> None:
        super().__init__(f"no hotel {hotel_id}")


class NoVacancy(Exception):
    def __init__(self, hotel_id: str, rooms: int) -> None:
        super().__init__(f"hotel {hotel_id} has fewer than {rooms} rooms free")
