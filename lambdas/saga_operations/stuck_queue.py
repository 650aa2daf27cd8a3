"""The stuck-sagas queue operators read (the only SQS code of the detector)."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import boto3


class StuckSagaQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    @cached_property
    def _sqs(self) -> Any:
        return boto3.client("sqs")

    def send(self, report: dict[str, Any]) -> None:
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(report, separators=(",", ":")))
