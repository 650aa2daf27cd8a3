"""PaymentService: ProcessPayment / RefundPayment, against a stand-in card gateway with fixed rules."""

from __future__ import annotations

from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import Charge, Ledger, PaymentOrder
from .repository import PaymentRepository

CARD_LIMIT_CENTS = 500_000
# Test card tokens the stand-in gateway rejects, and how.
REJECTED_CARDS = {"tok_declined": "Payment.CardDeclined", "tok_insufficient_funds": "Payment.InsufficientFunds"}


class PaymentService:
    def __init__(self, repository: PaymentRepository) -> None:
        self._repository = repository

    def process_payment(self, command: SagaCommand) -> dict[str, Any]:
        order = PaymentOrder.of(command.input, command.results)
        ledger = apply_once(
            load=lambda: self._repository.get_ledger(command.saga_id),
            is_compensated=lambda ledger: ledger.is_refunded,
            apply=lambda: self._charge(command.saga_id, order),
            refusal=PermanentFailure("Payment.ChargeRefunded", f"saga {command.saga_id} was already refunded"),
        )
        return ledger.as_result()

    def refund_payment(self, command: SagaCommand) -> dict[str, Any]:
        ledger = compensate_once(
            load=lambda: self._repository.get_ledger(command.saga_id),
            is_compensated=lambda ledger: ledger.is_refunded,
            compensate=self._repository.refund,
            write_tombstone=lambda: self._repository.write_refund_tombstone(command.saga_id),
        )
        return ledger.as_result()

    def _charge(self, saga_id: str, order: PaymentOrder) -> Ledger:
        authorise(order)
        return self._repository.charge(
            saga_id, Charge(amount_cents=order.amount_cents, card_token=order.payment.card_token)
        )


def authorise(order: PaymentOrder) -> None:
    """The stand-in gateway's decision: raise the rejection, or return to charge."""
    token = order.payment.card_token
    if token in REJECTED_CARDS:
        raise PermanentFailure(REJECTED_CARDS[token], f"order {order.order_id}: the card was rejected")
    if order.amount_cents > CARD_LIMIT_CENTS:
        raise PermanentFailure(
            "Payment.CardDeclined", f"order {order.order_id}: {order.amount_cents} cents is over the card limit"
        )
