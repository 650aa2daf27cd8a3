"""The local Lambda service's SQS poller keeps polling when a receive fails, as Lambda's does."""

from __future__ import annotations

import pytest

import local_runtime.cloud as cloud_module
from local_runtime.cloud import DeployedFunction, EventSourceMapping, ExecutionEnvironment, LocalCloud

pytestmark = pytest.mark.unit


class FailingOnceSqs:
    """Fails the first receive (moto's DLQ race), then delivers one message, then stops the cloud."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.receives = 0

    def receive_message(self, **_: object) -> dict:
        self.receives += 1
        if self.receives == 1:
            raise ValueError("list.remove(x): x not in list")
        self.cloud._stop.set()
        return {"Messages": [{"MessageId": "m-1", "ReceiptHandle": "h-1", "Body": "{}"}]}

    def delete_message_batch(self, **_: object) -> None:
        return None


def test_a_failed_receive_does_not_end_the_poller(tmp_path, monkeypatch):
    # Given a cloud whose queue's first receive fails
    cloud = LocalCloud(tmp_path)
    sqs = FailingOnceSqs(cloud)
    monkeypatch.setattr(cloud_module.boto3, "client", lambda service: sqs)
    handled = []
    function = DeployedFunction("fn", "arn:fn", "handlers.handle", {}, 30, 256, tmp_path)
    environment = ExecutionEnvironment(module=None, entry_point=lambda event, context: handled.append(event))
    mapping = EventSourceMapping(function, "https://sqs/queue", "arn:aws:sqs:us-east-1:1:queue", 10, True, 180)
    # When the poller runs
    cloud._poll(mapping, environment)
    # Then it received again after the failure and handed the message to the function
    assert sqs.receives == 2
    assert [record["messageId"] for event in handled for record in event["Records"]] == ["m-1"]
