"""ShippingService: CreateShipment / CancelShipment, against a stand-in carrier network."""

from __future__ import annotations

import hashlib
from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import Shipment, ShipmentOrder, ShipmentStatus
from .repository import ShippingRepository

# Where we ship, and with whom; any other country is not serviceable.
CARRIER_BY_COUNTRY = {
    "DE": "DHL",
    "AT": "DHL",
    "NL": "PostNL",
    "BE": "PostNL",
    "FR": "Colissimo",
    "ES": "Correos",
    "IT": "Poste Italiane",
    "GB": "Royal Mail",
    "US": "UPS",
    "CA": "UPS",
}


class ShippingService:
    def __init__(self, repository: ShippingRepository) -> None:
        self._repository = repository

    def create_shipment(self, command: SagaCommand) -> dict[str, Any]:
        order = ShipmentOrder.model_validate(command.input)
        shipment = apply_once(
            load=lambda: self._repository.get_shipment(command.saga_id),
            is_compensated=lambda shipment: shipment.is_cancelled,
            apply=lambda: self._create(command.saga_id, order),
            refusal=PermanentFailure(
                "Shipping.ShipmentCancelled", f"saga {command.saga_id} already cancelled shipping"
            ),
        )
        return shipment.as_result()

    def cancel_shipment(self, command: SagaCommand) -> dict[str, Any]:
        shipment = compensate_once(
            load=lambda: self._repository.get_shipment(command.saga_id),
            is_compensated=lambda shipment: shipment.is_cancelled,
            compensate=self._repository.cancel,
            write_tombstone=lambda: self._repository.write_cancelled_tombstone(command.saga_id),
        )
        return shipment.as_result()

    def _create(self, saga_id: str, order: ShipmentOrder) -> Shipment:
        country = order.shipping_address.country.upper()
        carrier = CARRIER_BY_COUNTRY.get(country)
        if carrier is None:
            raise PermanentFailure(
                "Shipping.AddressNotServiceable", f"order {order.order_id}: no carrier delivers to {country}"
            )
        shipment = Shipment(
            saga_id=saga_id,
            status=ShipmentStatus.CREATED,
            shipment_id=shipment_id_for(saga_id),
            carrier=carrier,
            country=country,
        )
        return self._repository.create(shipment)


def shipment_id_for(saga_id: str) -> str:
    # Derived from the saga, not random: a redelivered booking names the same shipment at the carrier.
    return "shp-" + hashlib.sha256(saga_id.encode()).hexdigest()[:16]
