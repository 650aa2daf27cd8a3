"""PaymentService, against a stand-in card gateway with fixed rules: an order's payment (ProcessPayment /
RefundPayment) and a trip's deposit (ChargeDeposit / RefundDeposit), each a saga's ledger of one charge and its refund.

A rejection's cause names the saga and the rule, never the card token: causes travel to the saga record, the
execution history, the API and the logs.
"""

from __future__ import annotations

from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import Charge, Ledger, PaymentOrder, TripDeposit
from .repository import PaymentRepository

CARD_LIMIT_CENTS = 500_000
# Test card tokens the stand-in gateway rejects, and how.
REJECTED_CARDS = {"tok_declined": "Payment.CardDeclined", "tok_insufficient_funds": "Payment.InsufficientFunds"}


class PaymentService:
    def __init__(self, repository: PaymentRepository) -> None:
        self._repository = repository

    def process_payment(self, command: SagaCommand) -> dict[str, Any]:
        order = PaymentOrder.of(command.input, command.results)
        return self._charge_once(
            command.saga_id, f"order {order.order_id}", order.payment.card_token, order.amount_cents
        )

    def refund_payment(self, command: SagaCommand) -> dict[str, Any]:
        return self._refund_once(command.saga_id)

    def charge_deposit(self, command: SagaCommand) -> dict[str, Any]:
        """The trip's deposit: what its seat and room holds cost (their results), never an amount the client sent."""
        deposit = TripDeposit.model_validate({**command.input, "held": command.results})
        return self._charge_once(
            command.saga_id, f"trip {deposit.trip_id}", deposit.payment.card_token, deposit.amount_cents
        )

    def refund_deposit(self, command: SagaCommand) -> dict[str, Any]:
        return self._refund_once(command.saga_id)

    def _charge_once(self, saga_id: str, reference: str, card_token: str, amount_cents: int) -> dict[str, Any]:
        ledger = apply_once(
            load=lambda: self._repository.get_ledger(saga_id),
            is_compensated=lambda ledger: ledger.is_refunded,
            apply=lambda: self._charge(saga_id, reference, card_token, amount_cents),
            refusal=PermanentFailure("Payment.ChargeRefunded", f"saga {saga_id} was already refunded"),
        )
        return ledger.as_result()

    def _refund_once(self, saga_id: str) -> dict[str, Any]:
        ledger = compensate_once(
            load=lambda: self._repository.get_ledger(saga_id),
            is_compensated=lambda ledger: ledger.is_refunded,
            compensate=self._repository.refund,
            write_tombstone=lambda: self._repository.write_refund_tombstone(saga_id),
        )
        return ledger.as_result()

    def _charge(self, saga_id: str, reference: str, card_token: str, amount_cents: int) -> Ledger:
        authorise(reference, card_token, amount_cents)
        return self._repository.charge(saga_id, Charge(amount_cents=amount_cents, card_token=card_token))


def authorise(reference: str, card_token: str, amount_cents: int) -> None:
    """The stand-in gateway's decision on charging `amount_cents` to the card (for `reference`, e.g. "order ord-1"):
    raise the rejection, or return to charge."""
    if card_token in REJECTED_CARDS:
        raise PermanentFailure(REJECTED_CARDS[card_token], f"{reference}: the card issuer refused the charge")
    if amount_cents > CARD_LIMIT_CENTS:
        raise PermanentFailure("Payment.CardDeclined", f"{reference}: {amount_cents} cents is over the card limit")
