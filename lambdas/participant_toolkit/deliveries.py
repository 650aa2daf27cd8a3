"""SQS deliveries of commands (the only module of the toolkit that calls the SQS API)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from participant_toolkit.observability import logger


class Deliveries:
    @cached_property
    def _sqs(self) -> Any:
        return boto3.client("sqs")

    def redeliver_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in `seconds` instead of after the queue's visibility timeout.

        Best effort: should the call fail, the message still comes back, only later."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.queue_url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as error:
            logger.warning("Could not bring the delivery back early", extra={"error": repr(error)})

    def send_again(self, queue_arn: str, body: str, delay_seconds: int) -> None:
        """Send a command back to its own queue, visible in `delay_seconds` (SQS takes 0-900): a choreographed
        step's retry of a transient failure."""
        self._sqs.send_message(
            QueueUrl=self.queue_url(queue_arn), MessageBody=body, DelaySeconds=max(0, min(900, delay_seconds))
        )

    def queue_url(self, queue_arn: str) -> str:
        """The URL of the queue `queue_arn` names, at this client's endpoint (region and partition included)."""
        _, _, _, _, account, name = queue_arn.split(":", 5)
        return f"{self._sqs.meta.endpoint_url}/{account}/{name}"
