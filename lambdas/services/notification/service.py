"""NotificationService: SendOrderConfirmation / SendCancellationNotice, written to an outbox a relay delivers."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import apply_once, compensate_once

from .models import NotificationOrder, Outbox, OutboxMessage
from .repository import NotificationRepository

# Domains the email provider bounced or that complained: sending there again hurts deliverability.
SUPPRESSED_DOMAINS = frozenset({"bounce.example", "invalid.example"})
EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")


class NotificationService:
    def __init__(self, repository: NotificationRepository, *, clock: Callable[[], datetime] | None = None) -> None:
        self._repository = repository
        self._clock = clock or (lambda: datetime.now(UTC))

    def send_order_confirmation(self, command: SagaCommand) -> dict[str, Any]:
        order = NotificationOrder.model_validate(command.input)
        outbox = apply_once(
            load=lambda: self._repository.get_outbox(command.saga_id),
            is_compensated=lambda outbox: outbox.is_cancelled,
            apply=lambda: self._confirm(command.saga_id, order),
            refusal=PermanentFailure("Notification.NoticeWithdrawn", f"saga {command.saga_id} was already cancelled"),
        )
        return outbox.as_result()

    def send_cancellation_notice(self, command: SagaCommand) -> dict[str, Any]:
        order = NotificationOrder.model_validate(command.input)
        outbox = compensate_once(
            load=lambda: self._repository.get_outbox(command.saga_id),
            is_compensated=lambda outbox: outbox.is_cancelled,
            compensate=lambda outbox: self._retract(outbox, order),
            write_tombstone=lambda: self._repository.write_cancellation_tombstone(
                command.saga_id, self._message(order, delivered=False)
            ),
        )
        return outbox.as_result()

    def _confirm(self, saga_id: str, order: NotificationOrder) -> Outbox:
        reject_undeliverable(order)
        message = OutboxMessage(
            recipient=order.customer.email,
            subject=f"Your order {order.order_id} is confirmed",
            body=f"Thank you! Order {order.order_id} is paid and on its way.",
            created_at=self._now(),
        )
        return self._repository.put_confirmation(saga_id, message)

    def _retract(self, outbox: Outbox, order: NotificationOrder) -> Outbox:
        assert outbox.confirmation is not None
        message = self._message(order, delivered=True).model_copy(update={"recipient": outbox.confirmation.recipient})
        return self._repository.put_cancellation(outbox, message)

    def _message(self, order: NotificationOrder, *, delivered: bool) -> OutboxMessage:
        return OutboxMessage(
            recipient=order.customer.email,
            subject=f"Your order {order.order_id} is cancelled",
            body=f"Order {order.order_id} was cancelled; any payment has been refunded.",
            created_at=self._now(),
            delivered=delivered,
        )

    def _now(self) -> str:
        return self._clock().isoformat()


def reject_undeliverable(order: NotificationOrder) -> None:
    email = order.customer.email
    match = EMAIL.match(email)
    if match is None:
        raise PermanentFailure("Notification.RecipientRejected", f"order {order.order_id}: not an email address")
    if match.group(1).lower() in SUPPRESSED_DOMAINS:
        raise PermanentFailure(
            "Notification.RecipientRejected", f"order {order.order_id}: the recipient's domain is suppressed"
        )
