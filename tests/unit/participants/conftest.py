"""Fixtures for the participants' domain tests: one moto DynamoDB table per service, a sample order, commands."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from participant_toolkit.command import CommandKind, SagaCommand
from services.inventory.repository import InventoryRepository
from services.notification.repository import NotificationRepository
from services.payment.repository import PaymentRepository
from services.shipping.repository import ShippingRepository
from tests.unit.tables import create_service_table

SAGA_ID = "saga-0001"
ORDER: dict[str, Any] = {
    "order_id": "ord-0001",
    "customer": {"customer_id": "c-1", "email": "ana@example.com"},
    "items": [
        {"sku": "SKU-KEYBOARD", "quantity": 1},
        {"sku": "SKU-MOUSE", "quantity": 2},
    ],
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {
        "name": "Ana",
        "line1": "1 Main St",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
}
PRICES = {"SKU-KEYBOARD": 4999, "SKU-MOUSE": 1250}  # the inventory catalog's


def reservation_result(items: list[dict[str, Any]], saga_id: str = SAGA_ID) -> dict[str, Any]:
    """ReserveItems' result for `items`, each line at its catalog price (or the `unit_price_cents` it names)."""
    return {
        "reservation_id": saga_id,
        "status": "ACTIVE",
        "items": [
            {
                "sku": i["sku"],
                "quantity": i["quantity"],
                "unit_price_cents": i.get("unit_price_cents", PRICES[i["sku"]]),
            }
            for i in items
        ],
    }


STEP_OF_COMMAND = {
    "ReserveItems": "reserve_inventory",
    "ReleaseReservation": "reserve_inventory",
    "ProcessPayment": "process_payment",
    "RefundPayment": "process_payment",
    "CreateShipment": "create_shipment",
    "CancelShipment": "create_shipment",
    "SendOrderConfirmation": "send_confirmation",
    "SendCancellationNotice": "send_confirmation",
}

CommandFactory = Callable[..., SagaCommand]


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[Any]:
    """moto first, then the resource every repository in the test shares."""
    with mock_aws():
        yield boto3.resource("dynamodb")


@pytest.fixture
def inventory_repository(dynamodb: Any) -> InventoryRepository:
    return InventoryRepository(create_service_table("inventory"), dynamodb=dynamodb)


@pytest.fixture
def payment_repository(dynamodb: Any) -> PaymentRepository:
    return PaymentRepository(create_service_table("payments"), dynamodb=dynamodb)


@pytest.fixture
def shipping_repository(dynamodb: Any) -> ShippingRepository:
    return ShippingRepository(create_service_table("shipping"), dynamodb=dynamodb)


@pytest.fixture
def notification_repository(dynamodb: Any) -> NotificationRepository:
    return NotificationRepository(create_service_table("notifications"), dynamodb=dynamodb)


@pytest.fixture
def saga_id() -> str:
    return SAGA_ID


@pytest.fixture
def order() -> dict[str, Any]:
    return copy.deepcopy(ORDER)


@pytest.fixture
def command_for(order: dict[str, Any]) -> CommandFactory:
    """`command_for("ReserveItems")`: the command as the state machine would send it for the sample order."""

    def build(
        command: str,
        *,
        kind: CommandKind = "action",
        saga_id: str = SAGA_ID,
        order_input: dict[str, Any] | None = None,
        results: dict[str, Any] | None = None,
    ) -> SagaCommand:
        """The steps after the reservation carry its result, as the state machine passes it on."""
        step = STEP_OF_COMMAND[command]
        saga_input = order if order_input is None else order_input
        if results is None:
            results = (
                {} if step == "reserve_inventory" else {"reserve_inventory": reservation_result(saga_input["items"])}
            )
        return SagaCommand(
            saga_id=saga_id,
            saga_type="OrderFulfillment",
            step=step,
            kind=kind,
            command=command,
            idempotency_key=f"{saga_id}#{step}#{kind}",
            task_token="token",
            heartbeat_seconds=20,
            input=saga_input,
            results=results,
        )

    return build


@pytest.fixture
def throttle(dynamodb: Any) -> Callable[[], None]:
    """Call it to make every further DynamoDB call of the test throttled, as under a hot partition."""

    def refuse(**_: Any) -> None:
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds throughput"}
        raise ClientError({"Error": error}, "DynamoDB")

    return lambda: dynamodb.meta.client.meta.events.register("before-call.dynamodb", refuse)


@pytest.fixture
def stale_first_read(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, str], list[str]]:
    """`reads = stale_first_read(repository, "get_ledger")`: its first read sees nothing, as if it lost a race.

    Returns the list of reads made, so a test can tell the re-read happened.
    """

    def patch(repository: Any, method: str) -> list[str]:
        reads: list[str] = []
        real_read = getattr(repository, method)

        def read(saga_id: str) -> Any:
            reads.append(saga_id)
            return None if len(reads) == 1 else real_read(saga_id)

        monkeypatch.setattr(repository, method, read)
        return reads

    return patch
