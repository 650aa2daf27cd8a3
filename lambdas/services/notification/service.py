"""NotificationService, written to an outbox a relay delivers: an order's SendOrderConfirmation /
SendCancellationNotice, and a trip's SendItinerary (past the trip's pivot: never withdrawn, and never refused for an
address; one the provider suppresses is kept undelivered for customer service)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from participant_toolkit.saga_record import StateChanged, apply_once, compensate_once

from .models import IssuedTrip, NotificationOrder, Outbox, OutboxMessage
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

    def send_itinerary(self, command: SagaCommand) -> dict[str, Any]:
        trip = IssuedTrip.model_validate({**command.input, "issued": command.results.get("issue_tickets")})
        outbox = self._repository.get_outbox(command.saga_id)
        if outbox is None or outbox.itinerary is None:
            try:
                outbox = self._repository.put_itinerary(command.saga_id, self._itinerary(trip))
            except StateChanged:  # another delivery queued it meanwhile: the same itinerary
                outbox = self._repository.get_outbox(command.saga_id)
        assert outbox is not None
        return outbox.itinerary_result()

    def _itinerary(self, trip: IssuedTrip) -> OutboxMessage:
        hotel = trip.hotel
        return OutboxMessage(
            recipient=trip.traveller.email,
            subject=f"Your trip {trip.trip_id} is booked",
            body=(
                f"Flight {trip.flight.flight_number}, tickets {', '.join(trip.issued.tickets)}. "
                f"Hotel {hotel.hotel_id}: {hotel.rooms} room(s) for {hotel.nights} night(s)."
            ),
            created_at=self._now(),
            delivered=undeliverable(trip.traveller.email) is None,
        )

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


def undeliverable(email: str) -> str | None:
    """Why the provider would not deliver to `email` (naming neither the address nor its domain), or None."""
    match = EMAIL.match(email)
    if match is None:
        return "not an email address"
    if match.group(1).lower() in SUPPRESSED_DOMAINS:
        return "the recipient's domain is suppressed"
    return None


def reject_undeliverable(order: NotificationOrder) -> None:
    reason = undeliverable(order.customer.email)
    if reason is not None:
        raise PermanentFailure("Notification.RecipientRejected", f"order {order.order_id}: {reason}")
