"""The saga bus, as the tracker publishes on it (a timed-out step's event)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3

from saga_records.events import SagaEventDetail


class TrackerBus:
    def __init__(self, bus_name: str) -> None:
        self.bus_name = bus_name

    @cached_property
    def _events(self) -> Any:
        return boto3.client("events")

    def publish(self, detail: SagaEventDetail) -> None:
        response = self._events.put_events(Entries=[detail.entry(self.bus_name)])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"{detail.detail_type} was not put on the bus: {response['Entries'][0]}")
