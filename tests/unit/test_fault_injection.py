"""The fault injector's SQS part, where the local runtime receives a batch: duplicates, poison, and a message no handler
can use coming back a second after each receive instead of after the queue's visibility timeout."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from saga_testkit.faults import POISON_REDELIVERY_SECONDS, Fault, FaultInjector

pytestmark = pytest.mark.unit

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/ReserveItems"


@dataclass
class FakeSqs:
    """What the injector asks of SQS, recorded."""

    sent: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)  # (receipt handle, seconds)

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # boto3's parameter names
        self.sent.append(MessageBody)

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted.append(ReceiptHandle)

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        self.visibility.append((ReceiptHandle, VisibilityTimeout))


@dataclass
class Mapping:
    queue_url: str = QUEUE


def command(saga_id: str) -> str:
    return json.dumps({"saga_id": saga_id, "step": "reserve_inventory", "kind": "action", "command": "ReserveItems"})


def received(body: str, receipt: str) -> dict[str, str]:
    return {"Body": body, "ReceiptHandle": receipt, "MessageId": receipt}


def test_a_poisoned_command_is_replaced_by_an_unparseable_one_that_comes_back_soon_after_each_receive():
    injector, sqs = FaultInjector(), FakeSqs()
    injector.plan("saga-1", "reserve_inventory", "action", Fault.poison_message())
    # Given the command's first receive: it is replaced on its queue by a truncated copy, and no handler gets it
    assert injector.on_receive(sqs, Mapping(), [received(command("saga-1"), "r-1")]) == []
    (poisoned,) = sqs.sent
    assert (poisoned, sqs.deleted) == (command("saga-1")[:-1], ["r-1"])
    # When the truncated copy and a healthy command are received
    batch = [received(poisoned, "r-2"), received(command("saga-2"), "r-3")]
    delivered = injector.on_receive(sqs, Mapping(), batch)
    # Then both reach the handler (which refuses the poisoned one: SQS counts the receive, and after maxReceiveCount
    # moves it to the DLQ), and only the poisoned one is visible again a second later
    assert delivered == batch
    assert sqs.visibility == [("r-2", POISON_REDELIVERY_SECONDS)]
    assert injector.delivery_faults("saga-1", "reserve_inventory", "action") == 1


def test_a_message_put_on_a_queue_for_no_handler_comes_back_soon_after_each_receive():
    injector, sqs = FaultInjector(), FakeSqs()
    injector.send_unusable(sqs, QUEUE, '{"not": "a saga command"}')
    for receipt in ("r-1", "r-2"):
        injector.on_receive(sqs, Mapping(), [received('{"not": "a saga command"}', receipt)])
    assert sqs.visibility == [("r-1", POISON_REDELIVERY_SECONDS), ("r-2", POISON_REDELIVERY_SECONDS)]


def test_other_messages_keep_the_queue_s_visibility_timeout_and_duplicates_are_sent_once():
    injector, sqs = FaultInjector(), FakeSqs()
    injector.plan("saga-1", "reserve_inventory", "action", Fault.duplicate_delivery(copies=2))
    # Given a command that is to be delivered twice more, and one that is not
    batch = [received(command("saga-1"), "r-1"), received(command("saga-2"), "r-2")]
    # When they are received, and the first again
    injector.on_receive(sqs, Mapping(), batch)
    injector.on_receive(sqs, Mapping(), [received(command("saga-1"), "r-3")])
    # Then two copies were sent once, and no visibility was shortened
    assert sqs.sent == [command("saga-1"), command("saga-1")]
    assert sqs.visibility == []
