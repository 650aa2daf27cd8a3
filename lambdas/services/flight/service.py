"""FlightService: HoldSeat / ReleaseSeat and IssueTickets (the trip's pivot), against the airline's own catalog.

The fare is the catalog's, never the client's: a hold records what its seats cost when they were held, and until when
that fare may be ticketed. Issued tickets are never taken back; a hold that was released refuses to be ticketed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import HoldStatus, SeatHold, SeatRequest, SoldOut, UnknownFlight
from .repository import FlightRepository


class FlightService:
    def __init__(self, repository: FlightRepository, *, clock: Callable[[], datetime] | None = None) -> None:
        self._repository = repository
        self._clock = clock or (lambda: datetime.now(UTC))

    def hold_seat(self, command: SagaCommand) -> dict[str, Any]:
        request = SeatRequest.model_validate(command.input)
        hold = apply_once(
            load=lambda: self._repository.get_hold(command.saga_id),
            is_compensated=lambda hold: hold.is_released,
            apply=lambda: self._hold(command.saga_id, request),
            refusal=PermanentFailure("Flight.HoldReleased", f"trip {command.saga_id} already released its seats"),
        )
        return hold.as_result()

    def release_seat(self, command: SagaCommand) -> dict[str, Any]:
        hold = compensate_once(
            load=lambda: self._repository.get_hold(command.saga_id),
            is_compensated=lambda hold: hold.is_released,
            compensate=self._release,
            write_tombstone=lambda: self._repository.write_released_tombstone(command.saga_id),
        )
        return hold.as_result()

    def issue_tickets(self, command: SagaCommand) -> dict[str, Any]:
        read: dict[str, SeatHold | None] = {}

        def load() -> SeatHold | None:
            """The hold once settled (ticketed, or released); None while it waits to be ticketed."""
            read["hold"] = hold = self._repository.get_hold(command.saga_id)
            return None if hold is not None and hold.status is HoldStatus.HELD else hold

        hold = apply_once(
            load=load,
            is_compensated=lambda hold: hold.is_released,
            apply=lambda: self._ticket(command.saga_id, read.get("hold")),
            refusal=PermanentFailure("Flight.HoldReleased", f"trip {command.saga_id} released its seats"),
        )
        return hold.tickets_result()

    def _hold(self, saga_id: str, request: SeatRequest) -> SeatHold:
        number, seats = request.flight.flight_number, request.flight.passengers
        flight = self._repository.get_flight(number)
        if flight is None:
            raise PermanentFailure("Flight.UnknownFlight", f"trip {request.trip_id}: no flight {number} is on sale")
        hold = SeatHold(
            saga_id=saga_id,
            status=HoldStatus.HELD,
            flight_number=number,
            seats=seats,
            fare_cents=seats * flight.fare_cents,
            ticketing_deadline=(self._clock() + timedelta(seconds=flight.ticketing_time_limit_seconds)).isoformat(),
        )
        try:
            return self._repository.hold(hold, seat_fare_cents=flight.fare_cents)
        except UnknownFlight as error:
            raise PermanentFailure("Flight.UnknownFlight", f"trip {request.trip_id}: {error}") from error
        except SoldOut as error:
            raise PermanentFailure("Flight.SoldOut", f"trip {request.trip_id}: {error}") from error

    def _release(self, hold: SeatHold) -> SeatHold:
        if hold.is_ticketed:  # only an operator's mistake gets here: the saga never compensates past its pivot
            raise PermanentFailure(
                "Flight.TicketsIssued", f"trip {hold.saga_id}: its tickets are issued, its seats are no longer held"
            )
        return self._repository.release(hold)

    def _ticket(self, saga_id: str, hold: SeatHold | None) -> SeatHold:
        if hold is None:
            raise PermanentFailure("Flight.HoldReleased", f"trip {saga_id} holds no seats to ticket")
        if self._clock() >= datetime.fromisoformat(hold.ticketing_deadline):
            raise PermanentFailure(
                "Flight.FareExpired",
                f"trip {saga_id}: the fare on {hold.flight_number} was to be ticketed by {hold.ticketing_deadline}",
            )
        return self._repository.ticket(hold, ticket_numbers(saga_id, hold.seats))


def ticket_numbers(saga_id: str, seats: int) -> list[str]:
    # Derived from the saga, not random: a retried ticketing names the same tickets at the airline.
    digest = hashlib.sha256(saga_id.encode()).hexdigest()[:10].upper()
    return [f"TKT-{digest}-{seat}" for seat in range(1, seats + 1)]
