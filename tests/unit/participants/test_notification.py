"""NotificationService: the confirmation is queued once; the cancellation retracts it, or closes the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from participant_toolkit.errors import PermanentFailure, TransientFailure
from services.notification.repository import NotificationRepository
from services.notification.service import NotificationService

pytestmark = pytest.mark.unit


@pytest.fixture
def notifications(notification_repository: NotificationRepository) -> NotificationService:
    # A clock that moves on every reading, so a rewritten message would show a new timestamp.
    ticks = iter(range(1_000))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return NotificationService(notification_repository, clock=lambda: start + timedelta(seconds=next(ticks)))


def test_send_order_confirmation_queues_it_for_the_customer(
    notifications, notification_repository, command_for, saga_id
):
    # When the confirmation is sent
    result = notifications.send_order_confirmation(command_for("SendOrderConfirmation"))

    # Then the outbox holds it, addressed to the customer
    assert result["message"] == "CONFIRMATION"
    assert result["recipient"] == "ana@example.com"
    outbox = notification_repository.get_outbox(saga_id)
    assert "ord-0001" in outbox.confirmation.subject
    assert outbox.cancellation is None


@pytest.mark.parametrize("email", ["not-an-email", "ana@", "bob@bounce.example", "eve@Invalid.Example"])
def test_an_undeliverable_recipient_is_rejected(
    notifications, notification_repository, command_for, saga_id, order, email
):
    # Given an address that is malformed or on the suppression list
    order["customer"]["email"] = email

    # When the confirmation is sent, Then it is rejected for good and nothing is queued
    with pytest.raises(PermanentFailure) as rejected:
        notifications.send_order_confirmation(command_for("SendOrderConfirmation"))
    assert rejected.value.error == "Notification.RecipientRejected"
    assert notification_repository.get_outbox(saga_id) is None


def test_a_duplicate_confirmation_returns_the_same_message_and_queues_once(
    notifications, notification_repository, command_for
):
    # Given a confirmation sent
    first = notifications.send_order_confirmation(command_for("SendOrderConfirmation"))

    # When the same command is delivered again
    second = notifications.send_order_confirmation(command_for("SendOrderConfirmation"))

    # Then it answers the same (same timestamp: not rewritten) and one message is queued
    assert second == first
    assert len(notification_repository.list_outboxes()) == 1


def test_cancellation_notice_retracts_a_sent_confirmation(notifications, notification_repository, command_for, saga_id):
    # Given a confirmation sent
    notifications.send_order_confirmation(command_for("SendOrderConfirmation"))

    # When the cancellation notice is sent
    result = notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))

    # Then a delivered cancellation is queued to the same recipient
    assert result["message"] == "CANCELLATION"
    assert result["delivered"] is True
    cancellation = notification_repository.get_outbox(saga_id).cancellation
    assert cancellation.recipient == "ana@example.com"
    assert "cancelled" in cancellation.subject


def test_cancellation_without_a_confirmation_leaves_an_undelivered_tombstone(
    notifications, notification_repository, command_for, saga_id
):
    # Given no confirmation (the action never got through)
    # When the cancellation notice arrives
    result = notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))

    # Then it succeeds and closes the outbox with a tombstone nobody is sent
    assert result["delivered"] is False
    outbox = notification_repository.get_outbox(saga_id)
    assert outbox.confirmation is None
    assert outbox.cancellation.delivered is False


def test_a_late_confirmation_after_the_tombstone_is_refused(
    notifications, notification_repository, command_for, saga_id
):
    # Given the saga already compensated this step before the action arrived
    notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))

    # When the late action arrives, Then it is refused and nothing is confirmed
    with pytest.raises(PermanentFailure) as refused:
        notifications.send_order_confirmation(command_for("SendOrderConfirmation"))
    assert refused.value.error == "Notification.NoticeWithdrawn"
    assert notification_repository.get_outbox(saga_id).confirmation is None


def test_sending_the_cancellation_twice_is_a_no_op(notifications, notification_repository, command_for, saga_id):
    # Given a confirmation sent and retracted
    notifications.send_order_confirmation(command_for("SendOrderConfirmation"))
    first = notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))

    # When the cancellation is delivered again
    second = notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))

    # Then it answers the same: the notice was not rewritten
    assert second == first
    assert notification_repository.get_outbox(saga_id).cancellation.created_at == first["created_at"]


def test_a_confirmation_racing_the_cancellation_is_refused(
    notifications, notification_repository, command_for, saga_id, stale_first_read
):
    # Given the outbox closed by a cancellation, but the confirmation's first read is stale and sees nothing
    notifications.send_cancellation_notice(command_for("SendCancellationNotice", kind="compensation"))
    reads = stale_first_read(notification_repository, "get_outbox")

    # When the confirmation runs, its write is guarded by the cancellation: it re-reads and is refused
    with pytest.raises(PermanentFailure) as refused:
        notifications.send_order_confirmation(command_for("SendOrderConfirmation"))
    assert refused.value.error == "Notification.NoticeWithdrawn"
    assert len(reads) == 2
    assert notification_repository.get_outbox(saga_id).confirmation is None


def test_a_throttled_store_is_a_transient_failure(notifications, command_for, throttle):
    # Given DynamoDB throttling every call
    throttle()

    # When the confirmation is sent, Then the failure is the retriable one the saga's retry policy names
    with pytest.raises(TransientFailure) as failed:
        notifications.send_order_confirmation(command_for("SendOrderConfirmation"))
    assert failed.value.error == "Notification.StoreUnavailable"
