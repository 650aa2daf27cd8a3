"""The saga bus (the only module of the toolkit that calls EventBridge): a choreographed step's answer is an event."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3

from saga_records.events import SagaEventDetail


class EventNotPublished(Exception):
    """EventBridge did not take the event: the command goes back to SQS, and the step's claim lets it publish again."""


class SagaBus:
    def __init__(self, bus_name: str | None) -> None:
        self.bus_name = bus_name

    @cached_property
    def _events(self) -> Any:
        return boto3.client("events")

    def publish(self, detail: SagaEventDetail) -> None:
        """PutEvents of one saga event, validated (the model) and sized before it is sent, under the saga's source."""
        if not self.bus_name:
            raise EventNotPublished("this function has no saga bus (SAGA_BUS_NAME) to answer a choreographed command")
        response = self._events.put_events(Entries=[detail.entry(self.bus_name)])
        if response.get("FailedEntryCount"):
            failed = response["Entries"][0]
            raise EventNotPublished(f"{detail.detail_type}: {failed.get('ErrorCode')} {failed.get('ErrorMessage')}")
