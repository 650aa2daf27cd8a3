"""Each incident the detector reports reaches a human as its own notice on the alarm topic (moto SNS + SQS)."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from saga_operations.detector import StuckSagaDetector
from saga_operations.notices import SUBJECT_LIMIT, AllOf, IncidentNotices, notice_subject
from saga_operations.stuck_queue import StuckSagaQueue

pytestmark = pytest.mark.unit


@pytest.fixture
def topic_inbox(records):
    """The alarm topic, with an SQS queue subscribed (raw delivery) standing in for a human's inbox."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic_arn = sns.create_topic(Name="alarms")["TopicArn"]
    inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "false"})
    return topic_arn, inbox


def notices(inbox: str) -> list[dict]:
    messages = boto3.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_every_new_parked_saga_is_its_own_notice_even_when_another_is_already_reported(
    records, put_saga, now, topic_inbox
):
    topic_arn, inbox = topic_inbox
    operators = boto3.client("sqs").create_queue(QueueName="stuck")["QueueUrl"]
    detector = StuckSagaDetector(
        records,
        AllOf([StuckSagaQueue(operators), IncidentNotices(topic_arn)]),
        deadlines={"OrderFulfillment": 3600},
        clock=lambda: now,
    )
    # Given a saga parked and already reported (the StuckSagas alarm is in ALARM from here on)
    put_saga(
        "first",
        "COMPENSATION_FAILED",
        age=timedelta(minutes=5),
        failed_step="process_payment",
        compensation_error="Payment.GatewayDown",
        compensation_cause="refund refused",
    )
    detector.run()
    assert [notice["Subject"] for notice in notices(inbox)] == [
        "Saga needs a human: OrderFulfillment first COMPENSATION_FAILED"
    ]
    # When a second saga parks
    put_saga("second", "EXECUTION_FAILED", age=timedelta(minutes=2), error="States.Timeout", cause="deadline")
    detector.run()
    # Then a human gets a notice for it alone, naming saga, type, status, step and error
    (notice,) = notices(inbox)
    assert notice["Subject"] == "Saga needs a human: OrderFulfillment second EXECUTION_FAILED"
    assert "Saga second (OrderFulfillment) is EXECUTION_FAILED: parked for a human." in notice["Message"]
    assert "Step:      process_payment" in notice["Message"]
    assert "Error:     States.Timeout" in notice["Message"]
    assert "python -m saga_ops show second" in notice["Message"]
    assert notice["MessageAttributes"]["saga_id"]["Value"] == "second"
    # And a third run sends nothing new
    detector.run()
    assert notices(inbox) == []


def test_a_notice_that_cannot_be_sent_is_sent_next_run(records, put_saga, now, topic_inbox):
    topic_arn, inbox = topic_inbox
    put_saga("parked", "FORWARD_RECOVERY_FAILED", age=timedelta(minutes=5), error="Shipping.CarrierDown")
    # Given a topic that refuses the first publish
    broken = IncidentNotices("arn:aws:sns:us-east-1:123456789012:missing")
    with pytest.raises(Exception, match=r"NotFound|does not exist"):
        StuckSagaDetector(records, AllOf([broken]), deadlines={"OrderFulfillment": 3600}, clock=lambda: now).run()
    # When the next run publishes to the real topic / Then the incident was not lost
    StuckSagaDetector(
        records, AllOf([IncidentNotices(topic_arn)]), deadlines={"OrderFulfillment": 3600}, clock=lambda: now
    ).run()
    assert [notice["MessageAttributes"]["saga_id"]["Value"] for notice in notices(inbox)] == ["parked"]


def test_a_subject_stays_within_what_sns_takes():
    report = {"saga_type": "OrderFulfillment", "saga_id": "é" * 200, "status": "COMPENSATION_FAILED"}
    subject = notice_subject(report)
    assert len(subject) <= SUBJECT_LIMIT
    assert subject.isascii()
    assert "\n" not in subject
