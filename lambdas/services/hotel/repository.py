"""The hotel's table: each hotel `HOTEL#<id>/ROOMS` {available, nightly_rate_cents}, and one room hold per saga
`ROOMHOLD#<saga_id>/HOLD` {status, hotel_id, rooms, nights, total_cents}."""

from __future__ import annotations

from typing import Any

from participant_toolkit.dynamodb import ConditionFailed, Item, SagaTable

from .models import HotelRooms, NoVacancy, RoomHold, RoomHoldStatus, UnknownHotel

ROOMS_SK = "ROOMS"
HOLD_SK = "HOLD"


def _hotel_pk(hotel_id: str) -> str:
    return f"HOTEL#{hotel_id}"


def _hold_pk(saga_id: str) -> str:
    return f"ROOMHOLD#{saga_id}"


class HotelRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Hotel", dynamodb=dynamodb)

    # --- the catalog ---

    def seed_hotel(self, hotel: HotelRooms) -> None:
        """Open a hotel for booking, or change it (setup and the demo; overwrites)."""
        self._table.put({"pk": _hotel_pk(hotel.hotel_id), "sk": ROOMS_SK, **hotel.model_dump()}, condition=None)

    def get_hotel(self, hotel_id: str) -> HotelRooms | None:
        item = self._table.get(_hotel_pk(hotel_id), ROOMS_SK)
        return None if item is None else HotelRooms.model_validate(item)

    def list_hotels(self) -> list[HotelRooms]:
        return [HotelRooms.model_validate(item) for item in self._table.scan_prefix("HOTEL#")]

    # --- room holds ---

    def get_hold(self, saga_id: str) -> RoomHold | None:
        item = self._table.get(_hold_pk(saga_id), HOLD_SK)
        return None if item is None else RoomHold.model_validate(item)

    def list_holds(self) -> list[RoomHold]:
        return [RoomHold.model_validate(item) for item in self._table.scan_prefix("ROOMHOLD#")]

    def hold(self, hold: RoomHold, *, nightly_rate_cents: int) -> RoomHold:
        """Take the rooms and record the hold in one transaction, if a night still costs what it was priced at.

        Raises UnknownHotel / NoVacancy (nothing written), or ConditionFailed if the rate changed or a hold or tombstone
        for the saga appeared since they were read (the caller re-reads).
        """
        take = self._table.update_op(
            _hotel_pk(hold.hotel_id),
            ROOMS_SK,
            update="SET available = available - :rooms",
            condition="attribute_exists(pk) AND available >= :rooms AND nightly_rate_cents = :rate",
            values={":rooms": hold.rooms, ":rate": nightly_rate_cents},
        )
        try:
            self._table.transact(take, self._table.put_op(self._hold_item(hold)))
        except ConditionFailed as failed:
            if failed.failed_indexes != (0,):
                raise
            hotel = self.get_hotel(hold.hotel_id)
            if hotel is None:
                raise UnknownHotel(hold.hotel_id) from failed
            if hotel.available < hold.rooms:
                raise NoVacancy(hold.hotel_id, hold.rooms) from failed
            raise  # repriced meanwhile: the caller prices it again
        return hold

    def release(self, hold: RoomHold) -> RoomHold:
        """Give the rooms back and mark the hold RELEASED, only while it is HELD."""
        give_back = self._table.update_op(
            _hotel_pk(hold.hotel_id), ROOMS_SK, update="ADD available :rooms", values={":rooms": hold.rooms}
        )
        mark_released = self._table.update_op(
            _hold_pk(hold.saga_id),
            HOLD_SK,
            update="SET #status = :released",
            condition="#status = :held",
            names={"#status": "status"},  # a DynamoDB reserved word
            values={":released": RoomHoldStatus.RELEASED.value, ":held": RoomHoldStatus.HELD.value},
        )
        self._table.transact(give_back, mark_released)
        return hold.model_copy(update={"status": RoomHoldStatus.RELEASED})

    def write_released_tombstone(self, saga_id: str) -> RoomHold:
        """Nothing was held: record RELEASED so that a late hold is refused."""
        tombstone = RoomHold(saga_id=saga_id, status=RoomHoldStatus.RELEASED)
        self._table.put(self._hold_item(tombstone))
        return tombstone

    @staticmethod
    def _hold_item(hold: RoomHold) -> Item:
        return {"pk": _hold_pk(hold.saga_id), "sk": HOLD_SK, **hold.model_dump(mode="json")}
