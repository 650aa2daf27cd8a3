"""What a choreographed saga did, read from the saga bus: a rule of the test kit's own copies every event of a saga
type to an SQS queue of its own (the stack is not changed), and the events are kept per saga, in order of arrival.

Under orchestration the execution history says which actions and compensations succeeded; under choreography the
events on the bus are the same evidence: `<step>.Succeeded`, `<step>.Compensated`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import boto3

from saga_records.events import saga_source

RECEIVE_BATCH = 10


class BusObserver:
    def __init__(self, bus_name: str, saga_type: str) -> None:
        self.bus_name, self.saga_type = bus_name, saga_type
        self._sqs = boto3.client("sqs")
        name = f"saga-kit-observer-{saga_type}"[:80]
        self.queue_url = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events")
        rule = f"saga-kit-observe-{saga_type}"[:64]
        events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps({"source": [saga_source(saga_type)]}))
        events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[{"Id": "observer", "Arn": queue_arn}])
        self._events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()

    def drain(self) -> None:
        """Take every event waiting on the observer's queue."""
        with self._lock:
            while True:
                messages = self._sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=RECEIVE_BATCH, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    return
                for message in messages:
                    event = json.loads(message["Body"])
                    self._events[event["detail"]["saga_id"]].append(event)
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )

    def events_of(self, saga_id: str) -> list[dict[str, Any]]:
        self.drain()
        with self._lock:
            return list(self._events.get(saga_id, []))

    def steps_with(self, saga_id: str, outcome: str) -> tuple[str, ...]:
        """The steps of `saga_id` that published `outcome` (Succeeded, Compensated, ...), in order, each once (a
        participant that finds its own claim on the record publishes it again: consumers are idempotent)."""
        seen: list[str] = []
        for event in self.events_of(saga_id):
            step, _, published = event["detail-type"].partition(".")
            if published == outcome and step not in seen:
                seen.append(step)
        return tuple(seen)
