"""InventoryService: ReserveItems takes stock once; ReleaseReservation gives it back once, or leaves a tombstone."""

from __future__ import annotations

import pytest

from participant_toolkit.errors import PermanentFailure, TransientFailure
from services.inventory.models import ReservationStatus
from services.inventory.repository import InventoryRepository
from services.inventory.service import InventoryService
from tests.unit.participants.conftest import PRICES

pytestmark = pytest.mark.unit


@pytest.fixture
def inventory(inventory_repository: InventoryRepository) -> InventoryService:
    inventory_repository.seed_stock("SKU-KEYBOARD", 5, unit_price_cents=PRICES["SKU-KEYBOARD"])
    inventory_repository.seed_stock("SKU-MOUSE", 3, unit_price_cents=PRICES["SKU-MOUSE"])
    return InventoryService(inventory_repository)


def stock(repository: InventoryRepository) -> dict[str, int | None]:
    return {sku: repository.get_stock(sku) for sku in ("SKU-KEYBOARD", "SKU-MOUSE")}


def test_reserve_items_takes_the_stock_and_records_an_active_reservation(
    inventory, inventory_repository, command_for, saga_id
):
    # When the order's items are reserved
    result = inventory.reserve_items(command_for("ReserveItems"))

    # Then the stock is taken and the reservation is ACTIVE
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 4, "SKU-MOUSE": 1}
    assert result["status"] == "ACTIVE"
    # And each line carries the catalog's price, what payment charges
    assert result["items"] == [
        {"sku": "SKU-KEYBOARD", "quantity": 1, "unit_price_cents": 4999},
        {"sku": "SKU-MOUSE", "quantity": 2, "unit_price_cents": 1250},
    ]
    assert inventory_repository.get_reservation(saga_id).status is ReservationStatus.ACTIVE


def test_a_sku_listed_twice_is_reserved_as_one_quantity(inventory, inventory_repository, command_for, order):
    # Given an order listing the same sku on two lines
    order["items"] = [{"sku": "SKU-MOUSE", "quantity": 1}, {"sku": "SKU-MOUSE", "quantity": 2}]

    # When it is reserved
    inventory.reserve_items(command_for("ReserveItems"))

    # Then both lines are taken from the one stock row
    assert inventory_repository.get_stock("SKU-MOUSE") == 0


def test_insufficient_stock_is_rejected_and_leaves_all_stock_untouched(
    inventory, inventory_repository, command_for, saga_id, order
):
    # Given an order for more mice than there are, next to a keyboard there is
    order["items"][1]["quantity"] = 4

    # When it is reserved, Then it is rejected for good
    with pytest.raises(PermanentFailure) as rejected:
        inventory.reserve_items(command_for("ReserveItems"))
    assert rejected.value.error == "Inventory.InsufficientStock"
    assert "SKU-MOUSE" in rejected.value.cause

    # And nothing was taken, not even the keyboard, and nothing is reserved
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}
    assert inventory_repository.get_reservation(saga_id) is None


def test_an_unknown_sku_is_rejected_and_nothing_is_taken(inventory, inventory_repository, command_for, order):
    # Given an order with a sku the warehouse never stocked
    order["items"].append({"sku": "SKU-GHOST", "quantity": 1})

    # When it is reserved, Then it is rejected for good
    with pytest.raises(PermanentFailure) as rejected:
        inventory.reserve_items(command_for("ReserveItems"))
    assert rejected.value.error == "Inventory.UnknownSku"
    assert "SKU-GHOST" in rejected.value.cause
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}
    assert inventory_repository.get_stock("SKU-GHOST") is None  # the failed decrement created no row


def test_a_duplicate_reserve_returns_the_same_reservation_and_takes_stock_once(
    inventory, inventory_repository, command_for
):
    # Given a reservation made
    first = inventory.reserve_items(command_for("ReserveItems"))

    # When the same command is delivered again
    second = inventory.reserve_items(command_for("ReserveItems"))

    # Then it answers the same, and the stock was taken once
    assert second == first
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 4, "SKU-MOUSE": 1}


def test_release_gives_the_stock_back(inventory, inventory_repository, command_for, saga_id):
    # Given a reservation made
    inventory.reserve_items(command_for("ReserveItems"))

    # When it is released
    result = inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # Then the stock is back and the reservation is RELEASED
    assert result["status"] == "RELEASED"
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}
    assert inventory_repository.get_reservation(saga_id).status is ReservationStatus.RELEASED


def test_release_without_a_reservation_succeeds_and_leaves_a_tombstone(
    inventory, inventory_repository, command_for, saga_id
):
    # Given no reservation (the action never got through)
    # When the release arrives
    result = inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # Then it succeeds, changes no stock, and leaves a RELEASED tombstone holding nothing
    assert result == {"reservation_id": saga_id, "status": "RELEASED", "items": []}
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}
    tombstone = inventory_repository.get_reservation(saga_id)
    assert tombstone.status is ReservationStatus.RELEASED
    assert tombstone.items == []


def test_a_late_reserve_after_the_tombstone_is_refused(inventory, inventory_repository, command_for):
    # Given the saga already compensated this step before the action arrived
    inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # When the late action arrives, Then it is refused and takes no stock
    with pytest.raises(PermanentFailure) as refused:
        inventory.reserve_items(command_for("ReserveItems"))
    assert refused.value.error == "Inventory.ReservationReleased"
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}


def test_releasing_twice_gives_the_stock_back_once(inventory, inventory_repository, command_for):
    # Given a reservation made and released
    inventory.reserve_items(command_for("ReserveItems"))
    first = inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # When the release is delivered again
    second = inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # Then it is a no-op: the same answer, the stock returned once
    assert second == first
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}


def test_a_release_racing_the_reservation_re_reads_and_releases_it(
    inventory, inventory_repository, command_for, stale_first_read
):
    # Given a reservation made, but the release's first read is stale and sees none
    inventory.reserve_items(command_for("ReserveItems"))
    reads = stale_first_read(inventory_repository, "get_reservation")

    # When the release runs, its tombstone write loses to the reservation
    result = inventory.release_reservation(command_for("ReleaseReservation", kind="compensation"))

    # Then it re-reads and releases the reservation it found
    assert len(reads) == 2
    assert result["status"] == "RELEASED"
    assert result["items"] != []
    assert stock(inventory_repository) == {"SKU-KEYBOARD": 5, "SKU-MOUSE": 3}


def test_a_throttled_store_is_a_transient_failure(inventory, command_for, throttle):
    # Given DynamoDB throttling every call
    throttle()

    # When the reservation runs, Then the failure is the retriable one the saga's retry policy names
    with pytest.raises(TransientFailure) as failed:
        inventory.reserve_items(command_for("ReserveItems"))
    assert failed.value.error == "Inventory.StoreUnavailable"


def test_a_price_the_client_sent_is_not_the_price_reserved(inventory, command_for, order):
    # Given an order whose lines name their own (free) price
    order["items"] = [{"sku": "SKU-KEYBOARD", "quantity": 1, "unit_price_cents": 0}]
    # When it is reserved / Then the line is at the catalog's price
    assert inventory.reserve_items(command_for("ReserveItems"))["items"][0]["unit_price_cents"] == 4999


def test_a_sku_in_stock_but_without_a_price_is_not_for_sale(inventory_repository, command_for, order):
    # Given a stock row with no price (not in the catalog)
    inventory_repository.seed_stock("SKU-KEYBOARD", 5, unit_price_cents=4999)
    inventory_repository._table.put(
        {"pk": "SKU#SKU-MOUSE", "sk": "STOCK", "sku": "SKU-MOUSE", "available": 3}, condition=None
    )
    # When an order for it is reserved / Then it is refused as unknown, and no stock is taken
    with pytest.raises(PermanentFailure) as rejected:
        InventoryService(inventory_repository).reserve_items(command_for("ReserveItems"))
    assert rejected.value.error == "Inventory.UnknownSku"
    assert inventory_repository.get_stock("SKU-KEYBOARD") == 5
