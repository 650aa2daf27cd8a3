"""A refused answer never undoes a step its saga kept: each race, with the order saga's services, Powertools
idempotency and the real saga record repository on moto, Step Functions' side of tokens on a task board.

A refused success only means the task no longer waits for that token. The toolkit undoes the effect only when the
saga record shows the saga did not keep the step; when the record shows neither, the command goes back to SQS.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from functools import partial

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from participant_toolkit import TransientFailure
from participant_toolkit.participant import QUICK_RETURNS_ON_LOCK
from saga_records import SagaStatus
from tests.unit.toolkit.harness import IDEMPOTENCY_TABLE, INITIAL_STOCK, SAGA_TABLE, SKU, Crash, context, sqs_event

pytestmark = pytest.mark.unit


def _act(saga, participants, step, body=None, *, participant=None, seconds=30.0):
    """Deliver `step`'s action command (a new one unless `body` is given); returns it and the batch response."""
    body = body or saga.command(step)
    participant = participant or participants[saga.service(step)]
    return body, _respond(partial(participant.handle, body["command"]), body, seconds)


def _compensate(saga, participants, step, body=None, *, participant=None):
    body = body or saga.command(step, "compensation")
    participant = participant or participants[saga.service(step)]
    return body, _respond(partial(participant.handle, body["command"]), body, 30.0)


def _respond(handle, body, seconds):
    """The batch response; a batch whose every record failed makes the invocation fail, as Lambda reports it."""
    try:
        return handle(sqs_event(body), context(seconds))
    except BatchProcessingError:
        return {"batchItemFailures": [{"itemIdentifier": "the whole batch"}]}


@contextmanager
def _answering_slowly(saga, participants, body):
    """A delivery of `body`, in another warm environment, that ran its step and is answering its token slowly: the
    block runs meanwhile, and on leaving it the answer goes on. Yields a list that then holds its batch response."""
    release = participants.board.hold_next_answer()
    participant = participants.new(saga.service(body["step"]))
    handle = partial(participant.handle, body["command"])
    response = []
    thread = threading.Thread(target=lambda: response.append(_respond(handle, body, 30.0)))
    thread.start()
    assert participants.board.answering.wait(5)
    try:
        yield response
    finally:
        release.set()
        thread.join(5)


def _expire_idempotency_records():
    """What DynamoDB TTL does once the records' hour has passed."""
    table = boto3.resource("dynamodb").Table(IDEMPOTENCY_TABLE)
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def _retriable_confirmation(raw_definition):
    """The order saga with its last step past the pivot: retried on timeouts, never compensated."""
    last = raw_definition["steps"][3]
    last["retriable"] = True
    del last["compensation"]
    return raw_definition


# --- duplicates and retries while a delivery is in flight ---


def test_a_duplicate_delivered_while_the_first_answers_comes_back_soon_and_changes_nothing(
    saga, participants, board, services, deliveries
):
    # Given a command whose first delivery ran its domain call and is answering its token, slowly
    body = saga.command("reserve_inventory")
    with _answering_slowly(saga, participants, body) as first_response:
        # When SQS delivers the same message meanwhile
        # Then that delivery fails back to SQS, asking to come back after half its heartbeat window (20 s), not 180 s
        with pytest.raises(BatchProcessingError):
            participants["InventoryService"].handle("ReserveItems", sqs_event(body), context())
        assert [seconds for _, _, seconds in deliveries.requests] == [10]
    assert first_response == [{"batchItemFailures": []}]
    # And once redelivered it changes nothing: one effect, nothing undone, the token answered once
    assert participants["InventoryService"].handle("ReserveItems", sqs_event(body), context()) == {
        "batchItemFailures": []
    }
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2
    assert participants.undone == []
    assert board.answered(body["task_token"]) == ["succeed"]
    assert board.refused == []
    assert saga.step_statuses()["reserve_inventory"] == "SUCCEEDED"


def test_a_delivery_that_meets_the_lock_again_and_again_waits_the_visibility_timeout(saga, participants, deliveries):
    # Given a step whose first delivery holds its lock
    body = saga.command("reserve_inventory")
    with _answering_slowly(saga, participants, body):
        # When another delivery meets it on its first receives, then once more
        for receives in range(1, QUICK_RETURNS_ON_LOCK + 2):
            with pytest.raises(BatchProcessingError):
                participants["InventoryService"].handle("ReserveItems", sqs_event(body, receives=receives), context())
    # Then the first ones came back early, the last waits the queue's visibility timeout (a dead holder's lock has
    # expired by then, before the message runs out of receives)
    assert len(deliveries.requests) == QUICK_RETURNS_ON_LOCK


def test_on_sqs_a_delivery_that_meets_the_lock_is_received_again_within_its_heartbeat_window(
    saga, participants, board, settings
):
    from participant_toolkit.deliveries import Deliveries

    # Given a command on a queue whose visibility timeout is 180 s, with a 2 s heartbeat window, received (a real
    # receipt handle) while another delivery of its step holds the lock
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="ReserveItems", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 2}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    (message,) = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]
    participant = participants.new("InventoryService")
    participant.deliveries = Deliveries()
    # When it is handled
    with _answering_slowly(saga, participants, body), pytest.raises(BatchProcessingError):
        participant.handle("ReserveItems", {"Records": [_sqs_record(message, queue_arn)]}, context())
    # Then SQS delivers it again after a second (half the window), not after 180 s
    started = time.monotonic()
    again = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5, AttributeNames=["All"]).get("Messages", [])
    assert time.monotonic() - started < 3
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in again] == ["2"]


def _sqs_record(message, queue_arn):
    """The record the Lambda service hands a function for a received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def test_a_retried_compensation_that_meets_the_slow_first_attempt_answers_its_own_token(
    saga, participants, board, services
):
    # Given a reservation to release, whose release runs slowly: its task times out and Step Functions retries it
    _act(saga, participants, "reserve_inventory")
    first_body = saga.command("reserve_inventory", "compensation")
    with _answering_slowly(saga, participants, first_body):
        board.time_out(first_body["task_token"])
        retry = saga.command("reserve_inventory", "compensation")
        # When the retry (a fresh token) arrives while the first attempt holds the step
        _, response = _compensate(saga, participants, "reserve_inventory", retry)
        # Then it goes back to SQS, after beating its own task so that it lives until it is back
        assert len(response["batchItemFailures"]) == 1
        assert board.beats == [retry["task_token"]]
    # And once back it answers its own token from the stored outcome: released once, nothing undone twice
    _, response = _compensate(saga, participants, "reserve_inventory", retry)
    assert response == {"batchItemFailures": []}
    assert board.answered(retry["task_token"]) == ["succeed"]
    assert board.refused == [("succeed", first_body["task_token"])]
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK
    assert participants.undone == [("InventoryService", saga.saga_id)]
    assert saga.step_statuses()["reserve_inventory"] == "COMPENSATED"


def test_forward_recovery_never_undoes_a_late_success(saga_of, raw_definition, participants, board, services):
    # Given a retriable last step (past the pivot) whose first attempt is slow: its task times out and is retried
    saga = saga_of(_retriable_confirmation(raw_definition))
    for step in ("reserve_inventory", "process_payment", "create_shipment"):
        _act(saga, participants, step)
    first_body = saga.command("send_confirmation")
    with _answering_slowly(saga, participants, first_body):
        board.time_out(first_body["task_token"])
        retry = saga.command("send_confirmation")
        _, response = _act(saga, participants, "send_confirmation", retry)
        assert len(response["batchItemFailures"]) == 1  # the first attempt holds the step: back to SQS, soon
    # When the first attempt's success is refused (its task timed out), and the retry comes back
    _, response = _act(saga, participants, "send_confirmation", retry)
    # Then nothing was undone: the retry answered success from the stored outcome and the confirmation stands
    assert response == {"batchItemFailures": []}
    assert board.refused == [("succeed", first_body["task_token"])]
    assert board.answered(retry["task_token"]) == ["succeed"]
    assert participants.undone == []
    outbox = services.notifications.get_outbox(saga.saga_id)
    assert outbox.confirmation is not None
    assert outbox.cancellation is None
    assert saga.step_statuses()["send_confirmation"] == "SUCCEEDED"


def test_the_same_fresh_token_delivered_twice_at_once_is_answered_once(
    saga_of, raw_definition, participants, board, services
):
    # Given a retriable step whose first attempt ran and whose task then timed out, and its retry's command
    saga = saga_of(_retriable_confirmation(raw_definition))
    for step in ("reserve_inventory", "process_payment", "create_shipment"):
        _act(saga, participants, step)
    first_body = saga.command("send_confirmation")
    board.time_out(first_body["task_token"])
    _act(saga, participants, "send_confirmation", first_body)
    retry = saga.command("send_confirmation")
    # When SQS delivers the retry twice at once: one copy is answering (slowly) when the other arrives
    with _answering_slowly(saga, participants, retry) as response_a:
        _, response_b = _act(saga, participants, "send_confirmation", retry)
    # Then the second copy went back to SQS, and when it comes back finds the token answered
    assert response_a == [{"batchItemFailures": []}]
    assert len(response_b["batchItemFailures"]) == 1
    _, response_b = _act(saga, participants, "send_confirmation", retry)
    assert response_b == {"batchItemFailures": []}
    assert board.answered(retry["task_token"]) == ["succeed"]
    assert board.refused == [("succeed", first_body["task_token"])]
    assert participants.undone == []
    assert len(services.notifications.list_outboxes()) == 1


def test_a_transient_failure_then_a_retry_and_a_late_duplicate_of_the_failed_attempt(
    saga, participants, board, services
):
    # Given a first attempt that failed transiently (throttled store), so Step Functions retried with a fresh token
    reserve = services.domain["InventoryService"]["ReserveItems"]
    attempts = []

    def throttled_once(command):
        attempts.append(command.task_token)
        if len(attempts) == 1:
            raise TransientFailure("Inventory.StoreUnavailable", "throttled")
        return reserve(command)

    participant = participants.new("InventoryService", action=throttled_once)
    first, retry = saga.command("reserve_inventory"), saga.command("reserve_inventory")
    _act(saga, participants, "reserve_inventory", first, participant=participant)
    _act(saga, participants, "reserve_inventory", retry, participant=participant)
    # (the transient failure was reported under its own name and not remembered: the retry ran the domain again)
    assert board.answers[0][:3] == ("fail", first["task_token"], "Inventory.StoreUnavailable")
    assert len(attempts) == 2
    # When SQS delivers the failed attempt's command once more
    _, response = _act(saga, participants, "reserve_inventory", first, participant=participant)
    # Then the retry's success stands: the late copy's success is refused and nothing is undone
    assert response == {"batchItemFailures": []}
    assert board.answers[0][:3] == ("fail", first["task_token"], "Inventory.StoreUnavailable")
    assert board.answered(retry["task_token"]) == ["succeed"]
    assert board.refused == [("succeed", first["task_token"])]
    assert participants.undone == []
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2
    assert saga.step_statuses()["reserve_inventory"] == "SUCCEEDED"


# --- a refused success after a real timeout ---


def test_a_success_refused_after_the_step_timed_out_and_was_compensated_is_undone_once(
    saga, participants, board, services, records
):
    # Given a reservation that took effect while its task timed out (answering slowly), and the saga compensated it
    body = saga.command("reserve_inventory")
    with _answering_slowly(saga, participants, body) as late_response:
        board.time_out(body["task_token"])
        _compensate(saga, participants, "reserve_inventory")
        saga.ends(SagaStatus.FAILED)
        # When its success is refused
    # Then the effect was undone exactly once: the stock is whole, the reservation released
    assert late_response == [{"batchItemFailures": []}]
    assert board.refused == [("succeed", body["task_token"])]
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK
    assert services.inventory.get_reservation(saga.saga_id).status == "RELEASED"
    assert services.reconcile(records).problems == []


def test_a_success_refused_before_the_compensation_began_waits_for_the_record_to_tell(
    saga, participants, board, services, records
):
    # Given a reservation that took effect while its task timed out, before the saga's compensation began
    body = saga.command("reserve_inventory")
    with _answering_slowly(saga, participants, body) as late_response:
        board.time_out(body["task_token"])
        # When its success is refused while the record shows the step still running
    # Then it neither undoes nor keeps: the command goes back to SQS
    assert len(late_response[0]["batchItemFailures"]) == 1
    assert participants.undone == []
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2
    # And once the saga compensated the step, the redelivery changes nothing more (the release refuses the action)
    _compensate(saga, participants, "reserve_inventory")
    saga.ends(SagaStatus.FAILED)
    _, response = _act(saga, participants, "reserve_inventory", body)
    assert response == {"batchItemFailures": []}
    assert participants.undone == [("InventoryService", saga.saga_id)]
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK
    assert services.reconcile(records).problems == []


def test_a_success_refused_after_a_timeout_the_saga_does_not_compensate_is_undone_by_the_participant(
    saga_of, raw_definition, participants, board, services, records
):
    # Given a payment step whose timeout is taken as "not applied": the saga compensates the steps before it only
    raw_definition["steps"][1]["on_timeout"] = "assume_not_applied"
    saga = saga_of(raw_definition)
    _act(saga, participants, "reserve_inventory")
    body = saga.command("process_payment")
    with _answering_slowly(saga, participants, body) as late_response:
        board.time_out(body["task_token"])
        _compensate(saga, participants, "reserve_inventory")
        # When the charge's success is refused
    saga.ends(SagaStatus.FAILED)
    # Then the participant refunded it itself, once: no money kept for a failed saga
    assert late_response == [{"batchItemFailures": []}]
    assert services.payments.get_ledger(saga.saga_id).net_cents == 0
    assert participants.undone.count(("PaymentService", saga.saga_id)) == 1
    assert services.reconcile(records).problems == []


# --- crashes and lost writes ---


def test_a_crash_between_the_domain_write_and_the_answer_is_answered_by_the_redelivery(
    saga, participants, board, services
):
    # Given a reservation made, and the participant's process dying before it answered (its lock left taken)
    board.crash_on_answer(accepted=False)
    body = saga.command("reserve_inventory")
    with pytest.raises(Crash):
        _act(saga, participants, "reserve_inventory", body, seconds=0.2)
    # When SQS redelivers the command after the dead invocation's deadline
    threading.Event().wait(0.3)
    _, response = _act(saga, participants, "reserve_inventory", body, participant=participants.new("InventoryService"))
    # Then the redelivery answers the token; the stock was taken once
    assert response == {"batchItemFailures": []}
    assert board.answered(body["task_token"]) == ["succeed"]
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2
    assert saga.step_statuses()["reserve_inventory"] == "SUCCEEDED"


def test_a_crash_after_step_functions_took_the_answer_never_undoes_the_step(saga, participants, board, services):
    # Given a reservation whose success Step Functions took, and the participant dying before it wrote anything more
    board.crash_on_answer(accepted=True)
    body = saga.command("reserve_inventory")
    with pytest.raises(Crash):
        _act(saga, participants, "reserve_inventory", body, seconds=0.2)
    threading.Event().wait(0.3)
    # When SQS redelivers the command before the saga shows it moved on
    _, response = _act(saga, participants, "reserve_inventory", body, participant=participants.new("InventoryService"))
    # Then its refused success undoes nothing: back to SQS, to decide later
    assert len(response["batchItemFailures"]) == 1
    assert participants.undone == []
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2
    # And once the next step ran, the redelivery knows the saga kept the step, and records it
    _act(saga, participants, "process_payment")
    _, response = _act(saga, participants, "reserve_inventory", body)
    assert response == {"batchItemFailures": []}
    assert participants.undone == []
    assert services.inventory.get_reservation(saga.saga_id).status == "ACTIVE"
    assert saga.step_statuses()["reserve_inventory"] == "SUCCEEDED"


@pytest.fixture
def throttled(monkeypatch):
    """`throttled("UpdateItem", table)`: the next such call of any DynamoDB client in the test fails as throttled."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    plan = {}

    def make_api_call(self, operation_name, api_params):
        key = (operation_name, api_params.get("TableName"))
        if self.meta.service_model.service_name == "dynamodb" and plan.get(key, 0) > 0:
            plan[key] -= 1
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds throughput"}
            raise ClientError({"Error": error}, operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)

    def throttle(operation, table, times=1):
        plan[(operation, table)] = plan.get((operation, table), 0) + times

    return throttle


def test_a_throttled_mark_after_the_answer_never_undoes_the_step(
    saga, participants, board, services, throttled, records
):
    # Given a reservation whose success Step Functions took, and the saga record's mark throttled after it
    throttled("UpdateItem", SAGA_TABLE)
    body, response = _act(saga, participants, "reserve_inventory")
    assert len(response["batchItemFailures"]) == 1
    assert board.answered(body["task_token"]) == ["succeed"]
    # When the saga went on and completed, and SQS redelivers the command
    for step in ("process_payment", "create_shipment", "send_confirmation"):
        _act(saga, participants, step)
    saga.ends(SagaStatus.COMPLETED)
    _, response = _act(saga, participants, "reserve_inventory", body)
    # Then nothing is undone, and the record says the step succeeded
    assert response == {"batchItemFailures": []}
    assert participants.undone == []
    assert services.inventory.get_reservation(saga.saga_id).status == "ACTIVE"
    assert saga.step_statuses()["reserve_inventory"] == "SUCCEEDED"
    assert services.reconcile(records).problems == []


def test_a_throttled_idempotency_write_after_the_answer_never_undoes_the_step(
    saga, participants, board, services, throttled
):
    # Given a reservation answered and marked, whose idempotency record could not be completed (throttled)
    throttled("UpdateItem", IDEMPOTENCY_TABLE)
    body, response = _act(saga, participants, "reserve_inventory", seconds=0.2)
    assert len(response["batchItemFailures"]) == 1
    # When SQS redelivers the command once the invocation's lock expired
    threading.Event().wait(0.3)
    _, response = _act(saga, participants, "reserve_inventory", body, participant=participants.new("InventoryService"))
    # Then its refused success undoes nothing: the record shows the step SUCCEEDED
    assert response == {"batchItemFailures": []}
    assert board.refused == [("succeed", body["task_token"])]
    assert participants.undone == []
    assert services.inventory.get_stock(SKU) == INITIAL_STOCK - 2


# --- redelivery of whole sagas after the idempotency records expired ---


def _redeliver_everything(saga, participants):
    for body in list(saga.sent):
        participant = participants.new(saga.service(body["step"]))
        response = participant.handle(body["command"], sqs_event(body), context())
        assert response == {"batchItemFailures": []}, body["command"]


def test_redelivering_every_command_of_a_completed_saga_after_expiry_changes_nothing(
    saga, participants, board, services, records
):
    # Given a completed saga, and its commands' idempotency records expired (an hour later; a DLQ keeps 14 days)
    for step in ("reserve_inventory", "process_payment", "create_shipment", "send_confirmation"):
        _act(saga, participants, step)
    saga.ends(SagaStatus.COMPLETED)
    record_before, items_before = saga.record(), services.items()
    _expire_idempotency_records()
    # When every command is delivered again (a DLQ redrive, a late redelivery)
    _redeliver_everything(saga, participants)
    # Then no participant undid its step: the data and the saga record are as they were, and it all reconciles
    assert len(board.refused) == 4
    assert participants.undone == []
    assert services.items() == items_before
    assert saga.record() == record_before
    assert services.reconcile(records).problems == []


def test_redelivering_every_command_of_a_compensated_saga_after_expiry_changes_nothing(
    saga, participants, board, services, records
):
    # Given a saga whose shipment was refused for good, so its payment and reservation were compensated
    saga.order["shipping_address"]["country"] = "AQ"
    for step in ("reserve_inventory", "process_payment", "create_shipment"):
        _act(saga, participants, step)
    for step in ("process_payment", "reserve_inventory"):
        _compensate(saga, participants, step)
    saga.ends(SagaStatus.FAILED)
    record_before, items_before = saga.record(), services.items()
    undone_before = list(participants.undone)
    _expire_idempotency_records()
    # When every command, actions and compensations, is delivered again
    _redeliver_everything(saga, participants)
    # Then nothing changed and it all reconciles
    assert len(board.refused) == len(saga.sent)
    assert services.items() == items_before
    assert saga.record() == record_before
    # (the compensations themselves were delivered again: each found its step compensated)
    assert participants.undone == [*undone_before, ("PaymentService", saga.saga_id), ("InventoryService", saga.saga_id)]
    assert services.reconcile(records).problems == []
