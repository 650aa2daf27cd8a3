"""Inventory's view of an order, and its records: the catalog (each sku's stock and price) and one reservation per
saga. The catalog prices an order: a client says what it wants and how many, never what it costs."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class OrderLine(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)


class ReservationOrder(BaseModel):
    """What inventory needs from the saga input (other keys are another context's business)."""

    order_id: str = Field(min_length=1)
    items: list[OrderLine] = Field(min_length=1)

    def quantities_by_sku(self) -> dict[str, int]:
        # A sku listed twice is still one stock row, and a transaction may touch each item only once.
        totals: Counter[str] = Counter()
        for line in self.items:
            totals[line.sku] += line.quantity
        return dict(totals)


class ReservedLine(BaseModel):
    """A line as reserved: the catalog's price of the sku at that moment, what payment charges."""

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class ReservationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    RELEASED = "RELEASED"


class Reservation(BaseModel):
    saga_id: str
    status: ReservationStatus
    items: list[ReservedLine] = Field(default_factory=list)  # empty in a tombstone: nothing was reserved

    @property
    def is_released(self) -> bool:
        return self.status is ReservationStatus.RELEASED

    def as_result(self) -> dict[str, Any]:
        return {
            "reservation_id": self.saga_id,
            "status": self.status.value,
            "items": [i.model_dump() for i in self.items],
        }


class StockLevel(BaseModel):
    sku: str
    available: int
    unit_price_cents: int | None = None  # None: not for sale (the sku is refused as unknown)


class UnknownSku(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(f"no stock item {sku}")
        self.sku = sku


class InsufficientStock(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(f"not enough stock of {sku}")
        self.sku = sku
