"""Payment's view of an order, and its ledger: at most one charge and one refund per saga."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PricedLine(BaseModel):
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class Card(BaseModel):
    card_token: str = Field(min_length=1)


class PaymentOrder(BaseModel):
    """What payment needs from the saga input."""

    order_id: str = Field(min_length=1)
    items: list[PricedLine] = Field(min_length=1)
    payment: Card

    @property
    def amount_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.items)


class SeatPrice(BaseModel):
    fare_cents: int = Field(ge=0)


class RoomPrice(BaseModel):
    total_cents: int = Field(ge=0)


class HeldPrices(BaseModel):
    """What the trip's earlier steps held, at the airline's and the hotel's prices (their results, never the client's
    input)."""

    hold_seat: SeatPrice
    hold_room: RoomPrice


class TripDeposit(BaseModel):
    """What payment needs to take a trip's deposit: the card from the saga input, the amount from its holds."""

    trip_id: str = Field(min_length=1)
    payment: Card
    held: HeldPrices

    @property
    def amount_cents(self) -> int:
        return self.held.hold_seat.fare_cents + self.held.hold_room.total_cents


class Charge(BaseModel):
    amount_cents: int
    card_token: str


class Refund(BaseModel):
    amount_cents: int  # 0 in a tombstone: there was no charge to refund


class Ledger(BaseModel):
    """A saga's entries; a refund, even of nothing, closes the ledger to further charges."""

    saga_id: str
    charge: Charge | None = None
    refund: Refund | None = None

    @property
    def is_refunded(self) -> bool:
        return self.refund is not None

    @property
    def net_cents(self) -> int:
        return (self.charge.amount_cents if self.charge else 0) - (self.refund.amount_cents if self.refund else 0)

    def as_result(self) -> dict[str, Any]:
        return {
            "payment_id": self.saga_id,
            "charged_cents": self.charge.amount_cents if self.charge else 0,
            "refunded_cents": self.refund.amount_cents if self.refund else 0,
        }
