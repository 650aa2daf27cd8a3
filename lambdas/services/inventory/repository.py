"""Inventory's table: the catalog `SKU#<sku>/STOCK` {available, unit_price_cents}, reservations
`RESERVATION#<saga_id>/RESERVATION` (each line with the price it was reserved at)."""

from __future__ import annotations

from typing import Any

from participant_toolkit.dynamodb import ConditionFailed, Item, SagaTable

from .models import InsufficientStock, Reservation, ReservationStatus, ReservedLine, StockLevel, UnknownSku

STOCK_SK = "STOCK"
RESERVATION_SK = "RESERVATION"
STATUS = {"#status": "status"}  # `status` is a DynamoDB reserved word


def _stock_pk(sku: str) -> str:
    return f"SKU#{sku}"


def _reservation_pk(saga_id: str) -> str:
    return f"RESERVATION#{saga_id}"


class InventoryRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Inventory", dynamodb=dynamodb)

    # --- stock ---

    def seed_stock(self, sku: str, available: int, *, unit_price_cents: int) -> None:
        """Put a sku in the catalog with its available stock and price (setup and the demo; overwrites)."""
        item = {"pk": _stock_pk(sku), "sk": STOCK_SK, "sku": sku, "available": available}
        self._table.put(item | {"unit_price_cents": unit_price_cents}, condition=None)

    def prices(self, skus: list[str]) -> dict[str, int]:
        """The catalog's price of each sku; UnknownSku for one not in the catalog or not for sale."""
        found = {}
        for sku in skus:
            item = self._table.get(_stock_pk(sku), STOCK_SK)
            if item is None or item.get("unit_price_cents") is None:
                raise UnknownSku(sku)
            found[sku] = int(item["unit_price_cents"])
        return found

    def get_stock(self, sku: str) -> int | None:
        item = self._table.get(_stock_pk(sku), STOCK_SK)
        return None if item is None else int(item["available"])

    def list_stock(self) -> list[StockLevel]:
        return [StockLevel.model_validate(item) for item in self._table.scan_prefix("SKU#") if item["sk"] == STOCK_SK]

    # --- reservations ---

    def get_reservation(self, saga_id: str) -> Reservation | None:
        item = self._table.get(_reservation_pk(saga_id), RESERVATION_SK)
        return None if item is None else Reservation.model_validate(item)

    def list_reservations(self) -> list[Reservation]:
        return [Reservation.model_validate(item) for item in self._table.scan_prefix("RESERVATION#")]

    def reserve(self, saga_id: str, quantities: dict[str, int]) -> Reservation:
        """Take the stock and record the reservation, each line at the catalog's price, in one transaction.

        Raises UnknownSku / InsufficientStock (nothing written), or ConditionFailed if a reservation or tombstone
        for the saga appeared since it was read.
        """
        price_of = self.prices(list(quantities))
        reservation = Reservation(
            saga_id=saga_id,
            status=ReservationStatus.ACTIVE,
            items=[
                ReservedLine(sku=sku, quantity=quantity, unit_price_cents=price_of[sku])
                for sku, quantity in quantities.items()
            ],
        )
        takes = [
            self._table.update_op(
                _stock_pk(line.sku),
                STOCK_SK,
                update="SET available = available - :qty",
                condition="attribute_exists(pk) AND available >= :qty",
                values={":qty": line.quantity},
            )
            for line in reservation.items
        ]
        record_index = len(takes)
        try:
            self._table.transact(*takes, self._table.put_op(self._reservation_item(reservation)))
        except ConditionFailed as failed:
            if record_index in failed.failed_indexes:
                raise  # the saga's record changed: the caller re-reads
            short_sku = reservation.items[failed.failed_indexes[0]].sku
            if self.get_stock(short_sku) is None:
                raise UnknownSku(short_sku) from failed
            raise InsufficientStock(short_sku) from failed
        return reservation

    def release(self, reservation: Reservation) -> Reservation:
        """Give the reserved stock back and mark the reservation RELEASED, only if it is still ACTIVE."""
        returns = [
            self._table.update_op(
                _stock_pk(line.sku), STOCK_SK, update="ADD available :qty", values={":qty": line.quantity}
            )
            for line in reservation.items
        ]
        mark_released = self._table.update_op(
            _reservation_pk(reservation.saga_id),
            RESERVATION_SK,
            update="SET #status = :released",
            condition="#status = :active",
            names=STATUS,
            values={":released": ReservationStatus.RELEASED.value, ":active": ReservationStatus.ACTIVE.value},
        )
        self._table.transact(*returns, mark_released)
        return reservation.model_copy(update={"status": ReservationStatus.RELEASED})

    def write_released_tombstone(self, saga_id: str) -> Reservation:
        """Nothing was reserved: record RELEASED so that a late reservation is refused."""
        tombstone = Reservation(saga_id=saga_id, status=ReservationStatus.RELEASED)
        self._table.put(self._reservation_item(tombstone))
        return tombstone

    @staticmethod
    def _reservation_item(reservation: Reservation) -> Item:
        return {"pk": _reservation_pk(reservation.saga_id), "sk": RESERVATION_SK, **reservation.model_dump(mode="json")}
