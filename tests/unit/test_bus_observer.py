"""The test kit's observer of a choreographed saga's bus keeps each saga's events in the order the bus took them,
whatever order their copies reach its queue in."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import SQSBackend

from local_runtime.moto_workarounds import event_stamped_once_when_taken
from saga_testkit.bus_observer import BusObserver, ingestion_seconds

pytestmark = pytest.mark.unit

BUS = "sagas"
SAGA_TYPE = "Order"


def _put(events, step: str, outcome: str) -> None:
    detail = {"saga_id": "s-1", "saga_type": SAGA_TYPE, "step": step}
    events.put_events(
        Entries=[
            {
                "EventBusName": BUS,
                "Source": f"sagas.{SAGA_TYPE}",
                "DetailType": f"{step}.{outcome}",
                "Detail": json.dumps(detail),
            }
        ]
    )


@pytest.fixture
def bus(aws_env):
    with mock_aws(), event_stamped_once_when_taken():
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        yield events


def test_an_event_published_in_reaction_before_the_observer_got_its_cause_is_still_seen_after_it(bus, monkeypatch):
    # Given a participant whose rule the bus serves before the observer's, and which reacts to process_payment's
    # compensation at once: it compensates reserve_inventory and publishes that before the observer's copy of its
    # cause is on the observer's queue (a busy host holds the bus between two rules)
    sqs = boto3.client("sqs")
    release = sqs.create_queue(QueueName="release")["QueueUrl"]
    release_arn = sqs.get_queue_attributes(QueueUrl=release, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus.put_rule(
        Name="release-reservation",
        EventBusName=BUS,
        EventPattern=json.dumps({"detail-type": ["process_payment.Compensated"]}),
    )
    bus.put_targets(Rule="release-reservation", EventBusName=BUS, Targets=[{"Id": "release", "Arn": release_arn}])
    observer = BusObserver(BUS, SAGA_TYPE)
    send_message = SQSBackend.send_message

    def participant_reacting_at_once(self, queue_name, *args, **kwargs):
        sent = send_message(self, queue_name, *args, **kwargs)
        if queue_name == "release":
            _put(bus, "reserve_inventory", "Compensated")
        return sent

    monkeypatch.setattr(SQSBackend, "send_message", participant_reacting_at_once)
    # When process_payment's compensation is published
    _put(bus, "process_payment", "Compensated")
    # Then the observer's queue got the reaction first, and the observer still tells them in the order they happened
    arrived = [
        json.loads(message["Body"])["event"]["detail-type"]
        for message in sqs.receive_message(QueueUrl=observer.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)[
            "Messages"
        ]
    ]
    assert arrived == ["reserve_inventory.Compensated", "process_payment.Compensated"]
    assert observer.steps_with("s-1", "Compensated") == ("process_payment", "reserve_inventory")
    assert [event["detail-type"] for event in observer.events_of("s-1")] == [
        "process_payment.Compensated",
        "reserve_inventory.Compensated",
    ]


def test_events_apart_in_time_keep_their_order_and_each_is_kept_once(bus):
    # Given an observer of the saga type's events
    observer = BusObserver(BUS, SAGA_TYPE)
    # When a saga's steps publish one after another, one of them twice (a participant that found its own claim)
    for step, outcome in [("reserve", "Succeeded"), ("pay", "Succeeded"), ("pay", "Succeeded"), ("pay", "Compensated")]:
        _put(bus, step, outcome)
    # Then each step that published an outcome is named once, in the order the bus took them
    assert observer.steps_with("s-1", "Succeeded") == ("reserve", "pay")
    assert observer.steps_with("s-1", "Compensated") == ("pay",)
    assert len(observer.events_of("s-1")) == 4
    assert observer.events_of("another saga") == []


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("1764514479.25", 1764514479.25), ("2025-11-30T14:54:39.250Z", 1764514479.25)],
)
def test_an_ingestion_time_is_read_as_moto_and_as_eventbridge_write_it(written, seconds):
    assert ingestion_seconds(written) == pytest.approx(seconds)
