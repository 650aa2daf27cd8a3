"""Shipping's view of an order, and its record: one shipment per saga."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Address(BaseModel):
    name: str = Field(min_length=1)
    line1: str = Field(min_length=1)
    city: str = Field(min_length=1)
    postal_code: str = Field(min_length=1)
    country: str = Field(min_length=2, max_length=2)  # ISO 3166-1 alpha-2


class ShipmentOrder(BaseModel):
    """What shipping needs from the saga input."""

    order_id: str = Field(min_length=1)
    shipping_address: Address


class ShipmentStatus(StrEnum):
    CREATED = "CREATED"
    CANCELLED = "CANCELLED"


class Shipment(BaseModel):
    saga_id: str
    status: ShipmentStatus
    # None in a tombstone: no shipment was booked.
    shipment_id: str | None = None
    carrier: str | None = None
    country: str | None = None

    @property
    def is_cancelled(self) -> bool:
        return self.status is ShipmentStatus.CANCELLED

    def as_result(self) -> dict[str, Any]:
        return {"shipment_id": self.shipment_id, "carrier": self.carrier, "status": self.status.value}
