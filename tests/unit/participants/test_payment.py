"""PaymentService: ProcessPayment charges once; RefundPayment refunds once, or closes the ledger with a zero refund."""

from __future__ import annotations

import pytest

from participant_toolkit.errors import PermanentFailure, TransientFailure
from services.payment.models import MissingReservation, Refund
from services.payment.repository import PaymentRepository
from services.payment.service import PaymentService
from tests.unit.participants.conftest import reservation_result

pytestmark = pytest.mark.unit

ORDER_AMOUNT_CENTS = 4999 + 2 * 1250  # the sample order: a keyboard and two mice


@pytest.fixture
def payments(payment_repository: PaymentRepository) -> PaymentService:
    return PaymentService(payment_repository)


def test_process_payment_charges_the_order_amount(payments, payment_repository, command_for, saga_id):
    # When the payment is processed
    result = payments.process_payment(command_for("ProcessPayment"))

    # Then the card is charged the sum of the lines
    assert result == {"payment_id": saga_id, "charged_cents": ORDER_AMOUNT_CENTS, "refunded_cents": 0}
    ledger = payment_repository.get_ledger(saga_id)
    assert ledger.charge.amount_cents == ORDER_AMOUNT_CENTS
    assert ledger.charge.card_token == "tok_visa"
    assert ledger.refund is None


@pytest.mark.parametrize(
    ("card_token", "unit_price_cents", "error"),
    [
        ("tok_declined", 4999, "Payment.CardDeclined"),
        ("tok_insufficient_funds", 4999, "Payment.InsufficientFunds"),
        ("tok_visa", 500_001, "Payment.CardDeclined"),  # over the card limit
    ],
)
def test_a_rejected_payment_charges_nothing(
    payments, payment_repository, command_for, saga_id, order, card_token, unit_price_cents, error
):
    # Given an order the card will not pay for (its line reserved at that price)
    order["payment"]["card_token"] = card_token
    order["items"] = [{"sku": "SKU-KEYBOARD", "quantity": 1, "unit_price_cents": unit_price_cents}]

    # When the payment is processed, Then it is rejected for good, and nothing is recorded
    with pytest.raises(PermanentFailure) as rejected:
        payments.process_payment(command_for("ProcessPayment"))
    assert rejected.value.error == error
    assert payment_repository.get_ledger(saga_id) is None
    # And the rejection names the order, never the card
    assert order["order_id"] in rejected.value.cause
    assert card_token not in rejected.value.cause


def test_the_card_limit_itself_is_accepted(payments, command_for, order):
    # Given an order of exactly the card limit
    order["items"] = [{"sku": "SKU-KEYBOARD", "quantity": 2, "unit_price_cents": 250_000}]

    # When the payment is processed, Then it is charged
    assert payments.process_payment(command_for("ProcessPayment"))["charged_cents"] == 500_000


def test_a_duplicate_payment_returns_the_same_charge_and_charges_once(
    payments, payment_repository, command_for, saga_id
):
    # Given a payment processed
    first = payments.process_payment(command_for("ProcessPayment"))

    # When the same command is delivered again
    second = payments.process_payment(command_for("ProcessPayment"))

    # Then it answers the same, and the ledger holds one charge
    assert second == first
    assert [ledger.charge.amount_cents for ledger in payment_repository.list_ledgers()] == [ORDER_AMOUNT_CENTS]


def test_refund_returns_the_whole_charge(payments, payment_repository, command_for, saga_id):
    # Given a payment processed
    payments.process_payment(command_for("ProcessPayment"))

    # When it is refunded
    result = payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # Then the refund equals the charge and the saga nets zero
    assert result["refunded_cents"] == ORDER_AMOUNT_CENTS
    assert payment_repository.get_ledger(saga_id).net_cents == 0


def test_refund_without_a_charge_succeeds_and_leaves_a_zero_refund_tombstone(
    payments, payment_repository, command_for, saga_id
):
    # Given no charge (the action never got through)
    # When the refund arrives
    result = payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # Then it succeeds and closes the ledger with a zero refund
    assert result == {"payment_id": saga_id, "charged_cents": 0, "refunded_cents": 0}
    ledger = payment_repository.get_ledger(saga_id)
    assert ledger.charge is None
    assert ledger.refund == Refund(amount_cents=0)


def test_a_late_payment_after_the_tombstone_is_refused(payments, payment_repository, command_for, saga_id):
    # Given the saga already compensated this step before the action arrived
    payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # When the late action arrives, Then it is refused and charges nothing
    with pytest.raises(PermanentFailure) as refused:
        payments.process_payment(command_for("ProcessPayment"))
    assert refused.value.error == "Payment.ChargeRefunded"
    assert payment_repository.get_ledger(saga_id).charge is None


def test_refunding_twice_refunds_once(payments, payment_repository, command_for, saga_id):
    # Given a payment processed and refunded
    payments.process_payment(command_for("ProcessPayment"))
    first = payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # When the refund is delivered again
    second = payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # Then it is a no-op
    assert second == first
    assert payment_repository.get_ledger(saga_id).net_cents == 0


def test_a_refund_racing_the_charge_re_reads_and_refunds_it(
    payments, payment_repository, command_for, saga_id, stale_first_read
):
    # Given a payment processed, but the refund's first read is stale and sees no ledger
    payments.process_payment(command_for("ProcessPayment"))
    reads = stale_first_read(payment_repository, "get_ledger")

    # When the refund runs, its tombstone loses to the charge
    result = payments.refund_payment(command_for("RefundPayment", kind="compensation"))

    # Then it re-reads and refunds the charge
    assert len(reads) == 2
    assert result["refunded_cents"] == ORDER_AMOUNT_CENTS
    assert payment_repository.get_ledger(saga_id).net_cents == 0


def test_a_charge_racing_the_refund_tombstone_is_refused(
    payments, payment_repository, command_for, saga_id, stale_first_read
):
    # Given the ledger closed by a zero refund, but the charge's first read is stale and sees nothing
    payments.refund_payment(command_for("RefundPayment", kind="compensation"))
    reads = stale_first_read(payment_repository, "get_ledger")

    # When the charge runs, its write is guarded by the refund: it re-reads and is refused
    with pytest.raises(PermanentFailure) as refused:
        payments.process_payment(command_for("ProcessPayment"))
    assert refused.value.error == "Payment.ChargeRefunded"
    assert len(reads) == 2
    assert payment_repository.get_ledger(saga_id).charge is None


def test_a_throttled_store_is_a_transient_failure(payments, command_for, throttle):
    # Given DynamoDB throttling every call
    throttle()

    # When the payment runs, Then the failure is the retriable one the saga's retry policy names
    with pytest.raises(TransientFailure) as failed:
        payments.process_payment(command_for("ProcessPayment"))
    assert failed.value.error == "Payment.StoreUnavailable"


def test_the_charge_is_the_reservations_prices_never_the_inputs(payments, command_for, order, saga_id):
    # Given an order whose input names a price of 0, reserved at the catalog's prices
    order["items"] = [{"sku": "SKU-KEYBOARD", "quantity": 1, "unit_price_cents": 0}]
    reserved = {"reserve_inventory": reservation_result([{"sku": "SKU-KEYBOARD", "quantity": 1}])}
    # When the payment is processed / Then the catalog's price is charged
    assert payments.process_payment(command_for("ProcessPayment", results=reserved))["charged_cents"] == 4999


def test_a_payment_without_a_reservation_to_charge_is_not_answered(payments, payment_repository, command_for, saga_id):
    # Given a command that carries no reservation (a saga wired wrong) / When processed / Then nothing is charged and
    # the command fails (SQS redelivers it, then dead-letters it: the DLQ alarm fires)
    with pytest.raises(MissingReservation):
        payments.process_payment(command_for("ProcessPayment", results={}))
    assert payment_repository.get_ledger(saga_id) is None
