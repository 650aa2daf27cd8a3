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


class OutboxMessage(BaseModel):
    recipient: str
    subject: str
    body: str
    created_at: str  # ISO 8601, UTC
    # False on a cancellation tombstone: no confirmation went out, so there is nothing to retract.
    delivered: bool = True


class Outbox(BaseModel):
    """A saga's messages; a cancellation, even undelivered, closes the outbox to a confirmation."""

    saga_id: str
    confirmation: OutboxMessage | None = None
    cancellation: OutboxMessage | None = None

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
