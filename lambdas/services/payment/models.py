"""Payment's view of an order, and its ledger: at most one charge and one refund per saga."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PricedLine(BaseModel):
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class Card(BaseModel):
    card_token: str = Field(min_length=1)


class MissingReservation(Exception):
    """The command carries no reservation to charge: the saga is wired wrong (the command goes back to its queue and,
    in the end, to its DLQ, whose alarm fires), never a guess at a price."""


class PaymentOrder(BaseModel):
    """What payment needs: the order's id and card from the saga input, and its lines as inventory reserved them, each
    at the catalog's price (the client sends no price)."""

    order_id: str = Field(min_length=1)
    items: list[PricedLine] = Field(min_length=1)
    payment: Card

    @classmethod
    def of(cls, saga_input: dict[str, Any], results: dict[str, Any]) -> PaymentOrder:
        """From a command's input and the results of the steps before it (the reservation among them)."""
        return cls.model_validate({**saga_input, "items": reserved_lines(results)})

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


def reserved_lines(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The priced lines of the reservation among a saga's step results (inventory's result names a reservation_id)."""
    for result in results.values():
        if isinstance(result, dict) and "reservation_id" in result and result.get("items"):
            return list(result["items"])
    raise MissingReservation("no reservation among the saga's results: payment charges what inventory reserved")


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
