"""A failure's cause names no credential or personal data of the saga's input, whatever the domain function wrote: the
cause reaches Step Functions, the saga record, the status API, the operator CLI and incident notices."""

from __future__ import annotations

import pytest

from participant_toolkit import PermanentFailure, TransientFailure
from participant_toolkit.redaction import REDACTED, redact
from tests.unit.toolkit.harness import context, sqs_event

pytestmark = pytest.mark.unit


def _quoting_everything(failure_type: type):
    def refuse(command):
        order = command.input
        raise failure_type(
            "Inventory.Locked",
            f"order {order['order_id']}: card {order['payment']['card_token']} of {order['customer']['email']}, "
            f"to {order['shipping_address']['name']} at {order['shipping_address']['line1']}, "
            f"{order['shipping_address']['postal_code']} {order['shipping_address']['city']}",
        )

    return refuse


@pytest.mark.parametrize("failure_type", [PermanentFailure, TransientFailure])
def test_a_rejection_quoting_the_card_and_the_customer_reaches_nobody_with_them(
    saga, participants, board, failure_type
):
    # Given a domain function whose rejection quotes the order's card token, email and address
    participant = participants.new("InventoryService", action=_quoting_everything(failure_type))
    # When it runs the saga's first action
    participant.handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    # Then the cause Step Functions gets keeps the order id and none of those values
    [cause] = board.causes
    order = saga.order
    assert order["order_id"] in cause
    for secret in (
        order["payment"]["card_token"],
        order["customer"]["email"],
        order["shipping_address"]["name"],
        order["shipping_address"]["line1"],
        order["shipping_address"]["postal_code"],
        order["shipping_address"]["city"],
    ):
        assert secret not in cause, secret
    assert REDACTED in cause


def test_a_stored_rejection_is_stored_redacted_on_the_saga_record(saga, participants, board):
    participants.new("InventoryService", action=_quoting_everything(PermanentFailure)).handle(
        "ReserveItems", sqs_event(saga.command("reserve_inventory")), context()
    )
    step = saga.record()["steps"]["reserve_inventory"]
    assert step["status"] == "FAILED"
    assert saga.order["payment"]["card_token"] not in step["cause"]
    assert saga.order["customer"]["email"] not in step["cause"]


def test_values_under_sensitive_fields_go_and_the_others_stay():
    command_input = {
        "order_id": "ord-1",
        "items": [{"sku": "SKU-KEYBOARD", "quantity": 2}],
        "payment": {"card_token": "tok_declined"},
        "billing": {"address": {"street": "Rue 9", "country": "FR"}},
        "contact": {"phone_number": "+33 1 23"},
    }
    cause = "ord-1: SKU-KEYBOARD x2, tok_declined, Rue 9, FR, +33 1 23"
    assert redact(cause, command_input) == f"ord-1: SKU-KEYBOARD x2, {REDACTED}, {REDACTED}, FR, {REDACTED}"
