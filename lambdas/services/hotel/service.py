"""HotelService: HoldRoom / ReleaseRoom, against the hotel's own catalog (the rate is its own, never the client's).

A hold is a yes or a no: the step has no transient errors to retry (a throttled store fails the trip's hold, and the
saga gives the seat back).
"""

from __future__ import annotations

from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import NoVacancy, RoomHold, RoomHoldStatus, RoomRequest, UnknownHotel
from .repository import HotelRepository


class HotelService:
    def __init__(self, repository: HotelRepository) -> None:
        self._repository = repository

    def hold_room(self, command: SagaCommand) -> dict[str, Any]:
        request = RoomRequest.model_validate(command.input)
        hold = apply_once(
            load=lambda: self._repository.get_hold(command.saga_id),
            is_compensated=lambda hold: hold.is_released,
            apply=lambda: self._hold(command.saga_id, request),
            refusal=PermanentFailure("Hotel.HoldReleased", f"trip {command.saga_id} already released its rooms"),
        )
        return hold.as_result()

    def release_room(self, command: SagaCommand) -> dict[str, Any]:
        hold = compensate_once(
            load=lambda: self._repository.get_hold(command.saga_id),
            is_compensated=lambda hold: hold.is_released,
            compensate=self._repository.release,
            write_tombstone=lambda: self._repository.write_released_tombstone(command.saga_id),
        )
        return hold.as_result()

    def _hold(self, saga_id: str, request: RoomRequest) -> RoomHold:
        wanted = request.hotel
        hotel = self._repository.get_hotel(wanted.hotel_id)
        if hotel is None:
            raise PermanentFailure("Hotel.UnknownHotel", f"trip {request.trip_id}: no hotel {wanted.hotel_id}")
        hold = RoomHold(
            saga_id=saga_id,
            status=RoomHoldStatus.HELD,
            hotel_id=wanted.hotel_id,
            rooms=wanted.rooms,
            nights=wanted.nights,
            total_cents=wanted.rooms * wanted.nights * hotel.nightly_rate_cents,
        )
        try:
            return self._repository.hold(hold, nightly_rate_cents=hotel.nightly_rate_cents)
        except UnknownHotel as error:
            raise PermanentFailure("Hotel.UnknownHotel", f"trip {request.trip_id}: {error}") from error
        except NoVacancy as error:
            raise PermanentFailure("Hotel.NoVacancy", f"trip {request.trip_id}: {error}") from error
