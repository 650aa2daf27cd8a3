"""What a choreographed saga did, read from the saga bus: a rule of the test kit's own copies every event of a saga
type to an SQS queue of its own (the stack is not changed), and the events are kept per saga, in the order the bus
took them.

Under orchestration the execution history says which actions and compensations succeeded; under choreography the
events on the bus are the same evidence: `<step>.Succeeded`, `<step>.Compensated`.

The order is each event's ingestion time (EventBridge's `aws.events.event.ingestion-time`, added to the observer's
copy by its input transformer), not the order the copies reach the observer's queue: a bus delivers an event to its
rules' targets independently (moto one rule after another), so a participant can take an event, act and publish the
next one before the observer's copy of the first arrived. An event is taken by the bus before any target gets it, and
a participant publishes only after it got the event it reacts to, so ingestion times follow what caused what.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from datetime import datetime
from itertools import count
from typing import Any

import boto3

from saga_records.events import saga_source

RECEIVE_BATCH = 10
# The observer's copy: the event as the bus took it, and when it took it.
COPY_TEMPLATE = '{"event": <aws.events.event.json>, "ingestion_time": "<aws.events.event.ingestion-time>"}'


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
        events.put_targets(
            Rule=rule,
            EventBusName=bus_name,
            Targets=[
                {
                    "Id": "observer",
                    "Arn": queue_arn,
                    "InputTransformer": {"InputPathsMap": {}, "InputTemplate": COPY_TEMPLATE},
                }
            ],
        )
        # saga id -> (ingestion time, arrival, event) of each of its events
        self._events: dict[str, list[tuple[float, int, dict[str, Any]]]] = defaultdict(list)
        self._arrivals = count()
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
                    copy = json.loads(message["Body"])
                    event = copy["event"]
                    taken = ingestion_seconds(copy["ingestion_time"])
                    self._events[event["detail"]["saga_id"]].append((taken, next(self._arrivals), event))
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )

    def events_of(self, saga_id: str) -> list[dict[str, Any]]:
        """The events of `saga_id`, in the order the bus took them."""
        self.drain()
        with self._lock:
            return [event for _, _, event in sorted(self._events.get(saga_id, []), key=lambda kept: kept[:2])]

    def steps_with(self, saga_id: str, outcome: str) -> tuple[str, ...]:
        """The steps of `saga_id` that published `outcome` (Succeeded, Compensated, ...), in order, each once (a
        participant that finds its own claim on the record publishes it again: consumers are idempotent)."""
        seen: list[str] = []
        for event in self.events_of(saga_id):
            step, _, published = event["detail-type"].partition(".")
            if published == outcome and step not in seen:
                seen.append(step)
        return tuple(seen)


def ingestion_seconds(value: str) -> float:
    """Epoch seconds of an event's ingestion time: EventBridge writes ISO 8601, moto epoch seconds."""
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
