"""ShippingService: CreateShipment books once; CancelShipment cancels once, or leaves a CANCELLED tombstone."""

from __future__ import annotations

import pytest

from participant_toolkit.errors import PermanentFailure, TransientFailure
from services.shipping.models import ShipmentStatus
from services.shipping.repository import ShippingRepository
from services.shipping.service import ShippingService

pytestmark = pytest.mark.unit


@pytest.fixture
def shipping(shipping_repository: ShippingRepository) -> ShippingService:
    return ShippingService(shipping_repository)


def test_create_shipment_books_it_with_the_country_carrier(shipping, shipping_repository, command_for, saga_id):
    # When the shipment is created for an address in Germany
    result = shipping.create_shipment(command_for("CreateShipment"))

    # Then it is CREATED with a German carrier
    assert result["status"] == "CREATED"
    assert result["carrier"] == "DHL"
    shipment = shipping_repository.get_shipment(saga_id)
    assert shipment.status is ShipmentStatus.CREATED
    assert shipment.shipment_id == result["shipment_id"]
    assert shipment.country == "DE"


def test_an_address_outside_the_network_is_rejected(shipping, shipping_repository, command_for, saga_id, order):
    # Given an address in a country no carrier serves
    order["shipping_address"]["country"] = "JP"

    # When the shipment is created, Then it is rejected for good and nothing is booked
    with pytest.raises(PermanentFailure) as rejected:
        shipping.create_shipment(command_for("CreateShipment"))
    assert rejected.value.error == "Shipping.AddressNotServiceable"
    assert shipping_repository.get_shipment(saga_id) is None


def test_a_duplicate_create_returns_the_same_shipment(shipping, shipping_repository, command_for):
    # Given a shipment created
    first = shipping.create_shipment(command_for("CreateShipment"))

    # When the same command is delivered again
    second = shipping.create_shipment(command_for("CreateShipment"))

    # Then it answers the same, and one shipment exists
    assert second == first
    assert len(shipping_repository.list_shipments()) == 1


def test_cancel_shipment_cancels_the_booking(shipping, shipping_repository, command_for, saga_id):
    # Given a shipment created
    created = shipping.create_shipment(command_for("CreateShipment"))

    # When it is cancelled
    result = shipping.cancel_shipment(command_for("CancelShipment", kind="compensation"))

    # Then the same shipment is CANCELLED
    assert result == {**created, "status": "CANCELLED"}
    assert shipping_repository.get_shipment(saga_id).status is ShipmentStatus.CANCELLED


def test_cancel_without_a_shipment_succeeds_and_leaves_a_tombstone(shipping, shipping_repository, command_for, saga_id):
    # Given no shipment (the action never got through)
    # When the cancellation arrives
    result = shipping.cancel_shipment(command_for("CancelShipment", kind="compensation"))

    # Then it succeeds and leaves a CANCELLED tombstone with no booking
    assert result == {"shipment_id": None, "carrier": None, "status": "CANCELLED"}
    tombstone = shipping_repository.get_shipment(saga_id)
    assert tombstone.status is ShipmentStatus.CANCELLED
    assert tombstone.shipment_id is None


def test_a_late_create_after_the_tombstone_is_refused(shipping, shipping_repository, command_for, saga_id):
    # Given the saga already compensated this step before the action arrived
    shipping.cancel_shipment(command_for("CancelShipment", kind="compensation"))

    # When the late action arrives, Then it is refused and books nothing
    with pytest.raises(PermanentFailure) as refused:
        shipping.create_shipment(command_for("CreateShipment"))
    assert refused.value.error == "Shipping.ShipmentCancelled"
    assert shipping_repository.get_shipment(saga_id).shipment_id is None


def test_cancelling_twice_is_a_no_op(shipping, shipping_repository, command_for, saga_id):
    # Given a shipment created and cancelled
    shipping.create_shipment(command_for("CreateShipment"))
    first = shipping.cancel_shipment(command_for("CancelShipment", kind="compensation"))

    # When the cancellation is delivered again
    second = shipping.cancel_shipment(command_for("CancelShipment", kind="compensation"))

    # Then it answers the same and the shipment stays CANCELLED
    assert second == first
    assert shipping_repository.get_shipment(saga_id).status is ShipmentStatus.CANCELLED


def test_a_throttled_store_is_a_transient_failure(shipping, command_for, throttle):
    # Given DynamoDB throttling every call
    throttle()

    # When the shipment is created, Then the failure is the retriable one the saga's retry policy names
    with pytest.raises(TransientFailure) as failed:
        shipping.create_shipment(command_for("CreateShipment"))
    assert failed.value.error == "Shipping.StoreUnavailable"
