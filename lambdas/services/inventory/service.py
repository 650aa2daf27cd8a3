"""InventoryService: ReserveItems / ReleaseReservation."""

from __future__ import annotations

from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import InsufficientStock, Reservation, ReservationOrder, UnknownSku
from .repository import InventoryRepository


class InventoryService:
    def __init__(self, repository: InventoryRepository) -> None:
        self._repository = repository

    def reserve_items(self, command: SagaCommand) -> dict[str, Any]:
        order = ReservationOrder.model_validate(command.input)
        reservation = apply_once(
            load=lambda: self._repository.get_reservation(command.saga_id),
            is_compensated=lambda reservation: reservation.is_released,
            apply=lambda: self._reserve(command.saga_id, order),
            refusal=PermanentFailure(
                "Inventory.ReservationReleased", f"saga {command.saga_id} already released its reservation"
            ),
        )
        return reservation.as_result()

    def release_reservation(self, command: SagaCommand) -> dict[str, Any]:
        reservation = compensate_once(
            load=lambda: self._repository.get_reservation(command.saga_id),
            is_compensated=lambda reservation: reservation.is_released,
            compensate=self._repository.release,
            write_tombstone=lambda: self._repository.write_released_tombstone(command.saga_id),
        )
        return reservation.as_result()

    def _reserve(self, saga_id: str, order: ReservationOrder) -> Reservation:
        try:
            return self._repository.reserve(saga_id, order.quantities_by_sku())
        except UnknownSku as error:
            raise PermanentFailure("Inventory.UnknownSku", f"order {order.order_id}: {error}") from error
        except InsufficientStock as error:
            raise PermanentFailure("Inventory.InsufficientStock", f"order {order.order_id}: {error}") from error
