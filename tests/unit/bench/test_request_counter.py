"""The throughput bench counts the requests moto serves per service, leaving out a waiting loop's polls."""

from __future__ import annotations

import threading

import boto3
import pytest
from moto import mock_aws

from bench.throughput import RequestCounter, per_saga

pytestmark = pytest.mark.unit


def test_requests_are_counted_by_service_except_those_of_a_skipped_thread():
    # Given a counter installed around moto, and a queue and a table
    counter = RequestCounter()
    with counter.installed(), mock_aws():
        sqs, dynamodb = boto3.client("sqs", region_name="eu-west-1"), boto3.client("dynamodb", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="counted")["QueueUrl"]
        before = counter.snapshot()
        # When this thread sends two messages, another thread lists tables, and this thread then polls while skipped
        sqs.send_message(QueueUrl=url, MessageBody="a")
        sqs.send_message(QueueUrl=url, MessageBody="b")
        other = threading.Thread(target=dynamodb.list_tables)
        other.start()
        other.join()
        with counter.skip_this_thread():
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        after = counter.snapshot()
    # Then the window holds the two sends and the other thread's call, not the skipped poll
    assert after - before == {"sqs": 2, "dynamodb": 1}
    # And per saga divides each service's count by the sagas
    assert per_saga(before, after, sagas=2) == {"dynamodb": 0.5, "sqs": 1.0}
