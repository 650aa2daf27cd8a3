"""What a step costs in DynamoDB requests, counted on moto: a regression in the toolkit's writes fails here.

Targets: at most 5 requests for a happy action step (the step's idempotency record put and completed, the domain's
read and write, the saga record's mark) and 6 for a compensation step (its COMPENSATING mark too); 1 for a duplicate
delivery (the idempotency put that finds the record, which DynamoDB returns with the refusal).
"""

from __future__ import annotations

import pytest

from saga_records import SagaStatus
from tests.unit.toolkit.harness import context, sqs_event

pytestmark = pytest.mark.unit


def _run_action(saga, participants, step):
    body = saga.command(step)
    response = participants[saga.service(step)].handle(body["command"], sqs_event(body), context())
    assert response == {"batchItemFailures": []}
    return body


def test_a_happy_action_step_makes_five_dynamodb_requests(saga, participants, requests, board):
    # Given a saga whose first step succeeded
    _run_action(saga, participants, "reserve_inventory")
    # When the payment step runs
    with requests.window() as made:
        body = _run_action(saga, participants, "process_payment")
    # Then it took five requests: the step's idempotency record (put, then completed), the ledger's read and the
    # charge, and one mark on the saga record (the step SUCCEEDED, the next one RUNNING)
    assert sorted(made) == sorted(["PutItem", "Query", "TransactWriteItems", "UpdateItem", "UpdateItem"]), made
    assert board.answered(body["task_token"]) == ["succeed"]
    assert saga.step_statuses()["process_payment"] == "SUCCEEDED"
    assert saga.step_statuses()["create_shipment"] == "RUNNING"
    assert saga.record()["current_step"] == "create_shipment"


def test_a_compensation_step_makes_six_dynamodb_requests(saga, participants, requests, board):
    # Given a saga whose payment was taken
    _run_action(saga, participants, "reserve_inventory")
    _run_action(saga, participants, "process_payment")
    body = saga.command("process_payment", "compensation")
    # When the payment is refunded
    with requests.window() as made:
        response = participants["PaymentService"].handle("RefundPayment", sqs_event(body), context())
    # Then it took six requests: the idempotency record (put, completed), the COMPENSATING and COMPENSATED marks, the
    # ledger's read and the refund
    assert response == {"batchItemFailures": []}
    assert sorted(made) == sorted(["PutItem", "UpdateItem", "Query", "PutItem", "UpdateItem", "UpdateItem"]), made
    assert board.answered(body["task_token"]) == ["succeed"]
    assert saga.record()["status"] == SagaStatus.COMPENSATING
    assert saga.step_statuses()["process_payment"] == "COMPENSATED"


def test_a_duplicate_delivery_makes_one_dynamodb_request(saga, participants, requests, board):
    # Given an answered step
    body = _run_action(saga, participants, "reserve_inventory")
    # When SQS delivers its command again
    with requests.window() as made:
        response = participants["InventoryService"].handle("ReserveItems", sqs_event(body), context())
    # Then one request found it done: the idempotency put, refused with the stored record
    assert response == {"batchItemFailures": []}
    assert made == ["PutItem"]
    assert board.answered(body["task_token"]) == ["succeed"]
    assert board.refused == []
