"""Notification's view of an order, and its outbox: a confirmation and, once compensated, a cancellation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Customer(BaseModel):
    email: str  # deliberately not validated here: a bad address is a business rejection, not a malformed command


class NotificationOrder(BaseModel):
    """What notification needs from the saga input."""

    order_id: str = Field(min_length=1)
    customer: Customer


class Traveller(BaseModel):
    email: str


class FlightBooked(BaseModel):
    flight_number: str


class HotelBooked(BaseModel):
    hotel_id: str
    rooms: int
    nights: int


class TicketsIssued(BaseModel):
    tickets: list[str] = Field(min_length=1)


class IssuedTrip(BaseModel):
    """What notification needs from a trip: its input, and the tickets its pivot issued (that step's result)."""

    trip_id: str = Field(min_length=1)
    traveller: Traveller
    flight: FlightBooked
    hotel: HotelBooked
    issued: TicketsIssued


class OutboxMessage(BaseModel):
    recipient: str
    subject: str
    body: str
    created_at: str  # ISO 8601, UTC
    # False on a cancellation tombstone (no confirmation went out, so there is nothing to retract), and on an
    # itinerary to a suppressed address (kept for customer service to reach the traveller another way).
    delivered: bool = True


class Outbox(BaseModel):
    """A saga's messages; a cancellation, even undelivered, closes the outbox to a confirmation. A trip's itinerary is
    never withdrawn: it goes out once its tickets are issued."""

    saga_id: str
    confirmation: OutboxMessage | None = None
    cancellation: OutboxMessage | None = None
    itinerary: OutboxMessage | None = None

    @property
    def is_cancelled(self) -> bool:
        return self.cancellation is not None

    def as_result(self) -> dict[str, Any]:
        message = self.cancellation or self.confirmation
        assert message is not None, "an outbox holds at least one message"
        return {
            "message": "CANCELLATION" if self.cancellation else "CONFIRMATION",
            "recipient": message.recipient,
            "delivered": message.delivered,
            "created_at": message.created_at,
        }

    def itinerary_result(self) -> dict[str, Any]:
        assert self.itinerary is not None, "the outbox holds the itinerary"
        return {"message": "ITINERARY", "delivered": self.itinerary.delivered, "created_at": self.itinerary.created_at}
