"""NotificationService's trip command: SendItinerary queues the itinerary with the issued tickets, once; past the
pivot it never fails for an address (a suppressed one is kept undelivered for customer service)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit

ISSUED = {"issue_tickets": {"flight_number": "LH400", "tickets": ["TKT-1", "TKT-2"], "status": "TICKETED"}}


def test_the_itinerary_names_the_flight_its_tickets_and_the_hotel_once(
    notifications, notification_repository, command_for, saga_id, clock
):
    result = notifications.send_itinerary(command_for("SendItinerary", results=ISSUED))
    assert result == {"message": "ITINERARY", "delivered": True, "created_at": clock.now.isoformat()}
    itinerary = notification_repository.get_outbox(saga_id).itinerary
    assert itinerary.recipient == "ana@example.com"
    for named in ("LH400", "TKT-1, TKT-2", "BER-MITTE"):
        assert named in itinerary.body
    # a redelivery (or an operator's run) queues nothing more
    assert notifications.send_itinerary(command_for("SendItinerary", results=ISSUED)) == result
    assert len(notification_repository.list_outboxes()) == 1


def test_an_itinerary_to_a_suppressed_address_is_kept_undelivered_not_refused(
    notifications, notification_repository, command_for, saga_id, trip
):
    trip["traveller"]["email"] = "ana@bounce.example"
    result = notifications.send_itinerary(command_for("SendItinerary", trip_input=trip, results=ISSUED))
    assert result["delivered"] is False
    assert notification_repository.get_outbox(saga_id).itinerary.delivered is False


def test_a_delivery_racing_another_answers_the_itinerary_the_other_queued(
    notifications, notification_repository, command_for, saga_id, monkeypatch
):
    # Given another delivery queues the itinerary between this one's read and its write
    real_get = notification_repository.get_outbox
    racing: list[dict] = []

    def stale_first(saga):
        if not racing:
            racing.append({})  # the racing delivery reads the store as it is
            racing[0] = notifications.send_itinerary(command_for("SendItinerary", results=ISSUED))
            return None
        return real_get(saga)

    monkeypatch.setattr(notification_repository, "get_outbox", stale_first)
    # When this delivery writes / Then its write is refused, it re-reads and answers the queued itinerary
    assert notifications.send_itinerary(command_for("SendItinerary", results=ISSUED)) == racing[0]
    assert real_get(saga_id).itinerary is not None
