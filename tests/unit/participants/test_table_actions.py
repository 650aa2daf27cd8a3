"""The item actions each participant's code calls on its own table are the ones the stack grants it, no more.

IAM enforces the grant on AWS and moto enforces nothing: every service's action, its compensation, a compensation
with nothing to undo (the tombstone) and a late action after it are run here on moto, recording each DynamoDB
operation the service's code sends, and the union must be exactly infra.constants.DOMAIN_TABLE_ACTIONS.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.model import OperationModel

from infra import constants
from participant_toolkit.errors import PermanentFailure
from services.inventory.service import InventoryService
from services.notification.service import NotificationService
from services.payment.service import PaymentService
from services.shipping.service import ShippingService
from tests.unit.participants.conftest import PRICES

pytestmark = pytest.mark.unit

# TransactWriteItems is authorised item by item (PutItem, UpdateItem, ConditionCheckItem on each table named).
TRANSACTION_PARTS = {"Put": "PutItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem"}


@pytest.fixture
def calls(dynamodb: Any) -> list[str]:
    """The IAM actions of every DynamoDB request the test makes from here on."""
    recorded: list[str] = []

    def record(params: dict[str, Any], model: OperationModel, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            recorded.extend(TRANSACTION_PARTS[kind] for item in params["TransactItems"] for kind in item)
        else:
            recorded.append(model.name)

    dynamodb.meta.client.meta.events.register("provide-client-params.dynamodb", record)
    return recorded


def run_each_path(service: Any, action: str, compensation: str, command_for: Any) -> None:
    """Action then compensation of one saga; a compensation first, then the late action it refuses, of another."""
    getattr(service, action)(command_for(_command(action)))
    getattr(service, compensation)(command_for(_command(compensation), kind="compensation"))
    getattr(service, compensation)(command_for(_command(compensation), kind="compensation", saga_id="saga-late"))
    with pytest.raises(PermanentFailure):
        getattr(service, action)(command_for(_command(action), saga_id="saga-late"))


def _command(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def test_the_participants_call_exactly_the_granted_item_actions(
    calls,
    command_for,
    inventory_repository,
    payment_repository,
    shipping_repository,
    notification_repository,
):
    # Given every example service on its own moto table (the stock seeded beforehand, as an operator would)
    inventory_repository.seed_stock("SKU-KEYBOARD", 5, unit_price_cents=PRICES["SKU-KEYBOARD"])
    inventory_repository.seed_stock("SKU-MOUSE", 3, unit_price_cents=PRICES["SKU-MOUSE"])
    calls.clear()
    # When each runs its action, its compensation, a tombstone and a refused late action
    run_each_path(InventoryService(inventory_repository), "reserve_items", "release_reservation", command_for)
    run_each_path(PaymentService(payment_repository), "process_payment", "refund_payment", command_for)
    run_each_path(ShippingService(shipping_repository), "create_shipment", "cancel_shipment", command_for)
    run_each_path(
        NotificationService(notification_repository), "send_order_confirmation", "send_cancellation_notice", command_for
    )
    # Then what they called is what the stack grants: nothing missing (AccessDenied on AWS), nothing unused
    assert {f"dynamodb:{name}" for name in calls} == set(constants.DOMAIN_TABLE_ACTIONS)
