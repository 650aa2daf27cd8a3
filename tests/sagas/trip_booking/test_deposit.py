"""PaymentService's trip commands: ChargeDeposit takes what the seat and room holds cost (their results, never a
price from the client), once; RefundDeposit refunds it, or closes the ledger with a zero refund."""

from __future__ import annotations

import pytest

from participant_toolkit.errors import PermanentFailure
from tests.sagas.trip_booking.conftest import FARE_CENTS, NIGHTLY_RATE_CENTS

pytestmark = pytest.mark.unit

TRIP_PRICE_CENTS = 2 * FARE_CENTS + 3 * NIGHTLY_RATE_CENTS  # two passengers, one room for three nights


def test_the_deposit_is_what_the_holds_cost_at_the_catalog_s_prices(
    payments, payment_repository, command_for, held_results, saga_id
):
    # When the deposit is charged after the seat and the room were held
    result = payments.charge_deposit(command_for("ChargeDeposit", results=held_results))
    # Then it is their total, charged once
    assert result == {"payment_id": saga_id, "charged_cents": TRIP_PRICE_CENTS, "refunded_cents": 0}
    assert payments.charge_deposit(command_for("ChargeDeposit", results=held_results)) == result
    assert [ledger.charge.amount_cents for ledger in payment_repository.list_ledgers()] == [TRIP_PRICE_CENTS]


def test_a_price_in_the_trip_input_is_not_read(payments, command_for, held_results, trip):
    # Given a client that slipped a price into the trip (the API's model refuses it; the service must not read it)
    trip["deposit_cents"] = 1
    result = payments.charge_deposit(command_for("ChargeDeposit", trip_input=trip, results=held_results))
    assert result["charged_cents"] == TRIP_PRICE_CENTS


def test_a_deposit_without_the_holds_results_charges_nothing(payments, payment_repository, command_for):
    # (a wiring error, not a business outcome: the toolkit lets SQS redeliver it to its DLQ)
    with pytest.raises(ValueError, match="held"):
        payments.charge_deposit(command_for("ChargeDeposit", results={}))
    assert payment_repository.list_ledgers() == []


@pytest.mark.parametrize(
    ("card_token", "error"),
    [("tok_declined", "Payment.CardDeclined"), ("tok_insufficient_funds", "Payment.InsufficientFunds")],
)
def test_a_declined_deposit_charges_nothing_and_its_cause_names_no_card(
    payments, payment_repository, command_for, held_results, trip, card_token, error
):
    trip["payment"]["card_token"] = card_token
    with pytest.raises(PermanentFailure) as refused:
        payments.charge_deposit(command_for("ChargeDeposit", trip_input=trip, results=held_results))
    assert refused.value.error == error
    assert card_token not in refused.value.cause
    assert "ana@example.com" not in refused.value.cause
    assert payment_repository.list_ledgers() == []


def test_refunding_the_deposit_returns_it_whole_once(payments, payment_repository, command_for, held_results, saga_id):
    payments.charge_deposit(command_for("ChargeDeposit", results=held_results))
    payments.refund_deposit(command_for("RefundDeposit", kind="compensation"))
    payments.refund_deposit(command_for("RefundDeposit", kind="compensation"))
    ledger = payment_repository.get_ledger(saga_id)
    assert (ledger.refund.amount_cents, ledger.net_cents) == (TRIP_PRICE_CENTS, 0)


def test_a_late_deposit_after_the_refund_tombstone_is_refused(
    payments, payment_repository, command_for, held_results, saga_id
):
    payments.refund_deposit(command_for("RefundDeposit", kind="compensation"))
    with pytest.raises(PermanentFailure) as refused:
        payments.charge_deposit(command_for("ChargeDeposit", results=held_results))
    assert refused.value.error == "Payment.ChargeRefunded"
    assert payment_repository.get_ledger(saga_id).charge is None
