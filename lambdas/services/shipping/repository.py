"""Shipping's table: `SHIPMENT#<saga_id>/SHIPMENT` {status, shipment_id, carrier, country}."""

from __future__ import annotations

from typing import Any

from participant_toolkit.dynamodb import Item, SagaTable

from .models import Shipment, ShipmentStatus

SHIPMENT_SK = "SHIPMENT"


def _shipment_pk(saga_id: str) -> str:
    return f"SHIPMENT#{saga_id}"


class ShippingRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Shipping", dynamodb=dynamodb)

    def get_shipment(self, saga_id: str) -> Shipment | None:
        item = self._table.get(_shipment_pk(saga_id), SHIPMENT_SK)
        return None if item is None else Shipment.model_validate(item)

    def list_shipments(self) -> list[Shipment]:
        return [Shipment.model_validate(item) for item in self._table.scan_prefix("SHIPMENT#")]

    def create(self, shipment: Shipment) -> Shipment:
        """Record the shipment unless the saga has one (or a tombstone) already; else ConditionFailed."""
        self._table.put(self._item(shipment))
        return shipment

    def cancel(self, shipment: Shipment) -> Shipment:
        """CREATED -> CANCELLED; ConditionFailed if it is no longer CREATED."""
        self._table.update(
            _shipment_pk(shipment.saga_id),
            SHIPMENT_SK,
            update="SET #status = :cancelled",
            condition="#status = :created",
            names={"#status": "status"},  # a DynamoDB reserved word
            values={":cancelled": ShipmentStatus.CANCELLED.value, ":created": ShipmentStatus.CREATED.value},
        )
        return shipment.model_copy(update={"status": ShipmentStatus.CANCELLED})

    def write_cancelled_tombstone(self, saga_id: str) -> Shipment:
        """Nothing was booked: record CANCELLED so that a late booking is refused."""
        tombstone = Shipment(saga_id=saga_id, status=ShipmentStatus.CANCELLED)
        self._table.put(self._item(tombstone))
        return tombstone

    @staticmethod
    def _item(shipment: Shipment) -> Item:
        return {"pk": _shipment_pk(shipment.saga_id), "sk": SHIPMENT_SK, **shipment.model_dump(mode="json")}
