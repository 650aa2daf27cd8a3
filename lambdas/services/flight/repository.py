"""Flight's table: each flight `FLIGHT#<number>/SEATS` {available, fare_cents, ticketing_time_limit_seconds}, and one
seat hold per saga `SEATHOLD#<saga_id>/HOLD` {status, flight_number, seats, fare_cents, ticketing_deadline, tickets}."""

from __future__ import annotations

from typing import Any

from participant_toolkit.dynamodb import ConditionFailed, Item, SagaTable

from .models import FlightSeats, HoldStatus, SeatHold, SoldOut, UnknownFlight

SEATS_SK = "SEATS"
HOLD_SK = "HOLD"
STATUS = {"#status": "status"}  # `status` is a DynamoDB reserved word


def _flight_pk(flight_number: str) -> str:
    return f"FLIGHT#{flight_number}"


def _hold_pk(saga_id: str) -> str:
    return f"SEATHOLD#{saga_id}"


class FlightRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Flight", dynamodb=dynamodb)

    # --- the catalog ---

    def seed_flight(self, flight: FlightSeats) -> None:
        """Put a flight on sale, or change it (setup and the demo; overwrites)."""
        self._table.put({"pk": _flight_pk(flight.flight_number), "sk": SEATS_SK, **flight.model_dump()}, condition=None)

    def get_flight(self, flight_number: str) -> FlightSeats | None:
        item = self._table.get(_flight_pk(flight_number), SEATS_SK)
        return None if item is None else FlightSeats.model_validate(item)

    def list_flights(self) -> list[FlightSeats]:
        return [FlightSeats.model_validate(item) for item in self._table.scan_prefix("FLIGHT#")]

    # --- seat holds ---

    def get_hold(self, saga_id: str) -> SeatHold | None:
        item = self._table.get(_hold_pk(saga_id), HOLD_SK)
        return None if item is None else SeatHold.model_validate(item)

    def list_holds(self) -> list[SeatHold]:
        return [SeatHold.model_validate(item) for item in self._table.scan_prefix("SEATHOLD#")]

    def hold(self, hold: SeatHold, *, seat_fare_cents: int) -> SeatHold:
        """Take the seats off sale and record the hold in one transaction, if a seat still costs what it was priced at.

        Raises UnknownFlight / SoldOut (nothing written), or ConditionFailed if the fare changed or a hold or tombstone
        for the saga appeared since they were read (the caller re-reads).
        """
        take = self._table.update_op(
            _flight_pk(hold.flight_number),
            SEATS_SK,
            update="SET available = available - :seats",
            condition="attribute_exists(pk) AND available >= :seats AND fare_cents = :fare",
            values={":seats": hold.seats, ":fare": seat_fare_cents},
        )
        try:
            self._table.transact(take, self._table.put_op(self._hold_item(hold)))
        except ConditionFailed as failed:
            if failed.failed_indexes != (0,):
                raise
            flight = self.get_flight(hold.flight_number)
            if flight is None:
                raise UnknownFlight(hold.flight_number) from failed
            if flight.available < hold.seats:
                raise SoldOut(hold.flight_number, hold.seats) from failed
            raise  # repriced meanwhile: the caller prices it again
        return hold

    def release(self, hold: SeatHold) -> SeatHold:
        """Put the seats back on sale and mark the hold RELEASED, only while it is HELD (never once ticketed)."""
        give_back = self._table.update_op(
            _flight_pk(hold.flight_number), SEATS_SK, update="ADD available :seats", values={":seats": hold.seats}
        )
        mark_released = self._table.update_op(
            _hold_pk(hold.saga_id),
            HOLD_SK,
            update="SET #status = :released",
            condition="#status = :held",
            names=STATUS,
            values={":released": HoldStatus.RELEASED.value, ":held": HoldStatus.HELD.value},
        )
        self._table.transact(give_back, mark_released)
        return hold.model_copy(update={"status": HoldStatus.RELEASED})

    def write_released_tombstone(self, saga_id: str) -> SeatHold:
        """Nothing was held: record RELEASED so that a late hold is refused."""
        tombstone = SeatHold(saga_id=saga_id, status=HoldStatus.RELEASED)
        self._table.put(self._hold_item(tombstone))
        return tombstone

    def ticket(self, hold: SeatHold, tickets: list[str]) -> SeatHold:
        """HELD -> TICKETED with its ticket numbers; ConditionFailed if it is no longer HELD."""
        self._table.update(
            _hold_pk(hold.saga_id),
            HOLD_SK,
            update="SET #status = :ticketed, tickets = :tickets",
            condition="#status = :held",
            names=STATUS,
            values={":ticketed": HoldStatus.TICKETED.value, ":tickets": tickets, ":held": HoldStatus.HELD.value},
        )
        return hold.model_copy(update={"status": HoldStatus.TICKETED, "tickets": tickets})

    @staticmethod
    def _hold_item(hold: SeatHold) -> Item:
        return {"pk": _hold_pk(hold.saga_id), "sk": HOLD_SK, **hold.model_dump(mode="json")}
