"""Notification's outbox table: `OUTBOX#<saga_id>` with `CONFIRMATION` and `CANCELLATION` messages (an order's), or
an `ITINERARY` (a trip's)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from participant_toolkit.dynamodb import Item, SagaTable

from .models import Outbox, OutboxMessage

CONFIRMATION_SK = "CONFIRMATION"
CANCELLATION_SK = "CANCELLATION"
ITINERARY_SK = "ITINERARY"


def _outbox_pk(saga_id: str) -> str:
    return f"OUTBOX#{saga_id}"


class NotificationRepository:
    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self._table = SagaTable(table_name, error_prefix="Notification", dynamodb=dynamodb)

    def get_outbox(self, saga_id: str) -> Outbox | None:
        """The saga's messages, or None when there are none."""
        return self._outbox(saga_id, self._table.query(_outbox_pk(saga_id)))

    def list_outboxes(self) -> list[Outbox]:
        items_by_saga: dict[str, list[Item]] = defaultdict(list)
        for item in self._table.scan_prefix("OUTBOX#"):
            items_by_saga[item["saga_id"]].append(item)
        return [outbox for saga_id, items in items_by_saga.items() if (outbox := self._outbox(saga_id, items))]

    def put_confirmation(self, saga_id: str, message: OutboxMessage) -> Outbox:
        """Queue the confirmation unless one exists or the saga was cancelled; else ConditionFailed."""
        pk = _outbox_pk(saga_id)
        self._table.transact(
            self._table.put_op(self._item(saga_id, CONFIRMATION_SK, message)),
            self._table.absent_check_op(pk, CANCELLATION_SK),
        )
        return Outbox(saga_id=saga_id, confirmation=message)

    def put_cancellation(self, outbox: Outbox, message: OutboxMessage) -> Outbox:
        """Queue the notice retracting a sent confirmation, once."""
        self._table.put(self._item(outbox.saga_id, CANCELLATION_SK, message))
        return outbox.model_copy(update={"cancellation": message})

    def write_cancellation_tombstone(self, saga_id: str, message: OutboxMessage) -> Outbox:
        """No confirmation went out: close the outbox, unless a confirmation appeared meanwhile (ConditionFailed)."""
        pk = _outbox_pk(saga_id)
        self._table.transact(
            self._table.put_op(self._item(saga_id, CANCELLATION_SK, message)),
            self._table.absent_check_op(pk, CONFIRMATION_SK),
        )
        return Outbox(saga_id=saga_id, cancellation=message)

    def put_itinerary(self, saga_id: str, message: OutboxMessage) -> Outbox:
        """Queue the trip's itinerary unless it is queued already (ConditionFailed)."""
        self._table.put(self._item(saga_id, ITINERARY_SK, message))
        return Outbox(saga_id=saga_id, itinerary=message)

    @staticmethod
    def _item(saga_id: str, sk: str, message: OutboxMessage) -> Item:
        return {"pk": _outbox_pk(saga_id), "sk": sk, "saga_id": saga_id, **message.model_dump()}

    @staticmethod
    def _outbox(saga_id: str, items: list[Item]) -> Outbox | None:
        messages = {item["sk"]: OutboxMessage.model_validate(item) for item in items}
        if not messages:
            return None
        return Outbox(
            saga_id=saga_id,
            confirmation=messages.get(CONFIRMATION_SK),
            cancellation=messages.get(CANCELLATION_SK),
            itinerary=messages.get(ITINERARY_SK),
        )
