"""The OrderFulfillment saga end to end: the synthesized stack on moto, the real participants in-process.

Expected compensations are derived from the saga definition, so a new step is covered without edits.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from saga_records import SagaStatus
from saga_testkit.faults import Fault
from tests.e2e.orders import TIME_SCALE, make_order

# One xdist group: the package-scoped local cloud serves these tests back to back on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]


def _names(steps):
    return tuple(step.name for step in steps)


def _once_every_step_is_marked(local_sagas, saga_id, within_seconds=10.0):
    """The saga record once each step has its finished_at, which only a participant's mark writes."""
    deadline = time.monotonic() + within_seconds
    while True:
        record = local_sagas.records.get(saga_id)
        if all("finished_at" in fields for fields in record["steps"].values()) or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def test_happy_path_completes_every_step_in_five_transitions(run_saga, local_sagas, saga_id, definition):
    # Given a healthy order / When the saga runs
    outcome = run_saga(saga_id)
    # Then every step ran once, nothing was compensated, and the record says so
    assert outcome.status == "COMPLETED"
    assert outcome.execution_status == "SUCCEEDED"
    assert outcome.actions_succeeded == _names(definition.steps)
    assert outcome.compensations_succeeded == ()
    assert outcome.transitions == len(definition.steps) + 1
    record = outcome.record
    assert {step: fields["status"] for step, fields in record["steps"].items()} == {
        step.name: "SUCCEEDED" for step in definition.steps
    }
    assert record["current_step"] == definition.steps[-1].name
    assert record["execution_arn"].endswith(f":{saga_id}")
    assert record["created_at"] <= record["updated_at"]
    # And once every participant's mark has landed (each marks its step after its answer was taken, so the last ones
    # may land after the saga completed), the record is still at its last step and counts one write each: created,
    # marked running, a mark per step, completed
    record = _once_every_step_is_marked(local_sagas, saga_id)
    assert record["current_step"] == definition.steps[-1].name
    assert record["version"] == len(definition.steps) + 3
    # And the status index lists it among the completed sagas, newest first
    completed = local_sagas.records.list_by_status(SagaStatus.COMPLETED, limit=100)
    assert saga_id in [item["saga_id"] for item in completed]
    assert [item["created_at"] for item in completed] == sorted(
        (item["created_at"] for item in completed), reverse=True
    )


@pytest.mark.parametrize(
    ("failing_step", "order_change", "error"),
    [
        ("reserve_inventory", {"sku": "SKU-SCARCE", "quantity": 3}, "Inventory.InsufficientStock"),
        ("process_payment", {"card": "tok_declined"}, "Payment.CardDeclined"),
        ("create_shipment", {"country": "AQ"}, "Shipping.AddressNotServiceable"),
        ("send_confirmation", {"email_domain": "bounce.example"}, "Notification.RecipientRejected"),
    ],
)
def test_a_business_rejection_compensates_the_completed_steps_in_reverse(
    run_saga, saga_id, definition, failing_step, order_change, error
):
    # Given an order that a participant's own rules reject at `failing_step`
    index = _names(definition.steps).index(failing_step)
    completed = definition.steps[:index]
    # When the saga runs
    outcome = run_saga(saga_id, make_order(**order_change))
    # Then exactly the completed steps are compensated, last first; the execution itself succeeds
    assert outcome.status == "FAILED"
    assert outcome.execution_status == "SUCCEEDED"
    assert outcome.actions_succeeded == _names(completed)
    assert outcome.compensations_succeeded == _names(reversed(completed))
    assert outcome.transitions <= 2 * (index + 1)
    assert outcome.record["error"] == error
    assert outcome.record["steps"][failing_step]["status"] == "FAILED"


@pytest.mark.parametrize("index", range(4))
def test_a_permanent_failure_at_any_step_compensates_exactly_the_steps_before_it(
    run_saga, local_sagas, saga_id, definition, index
):
    step = definition.steps[index]
    local_sagas.faults.plan(saga_id, step.name, "action", Fault.permanent(step.permanent_errors[0]))
    outcome = run_saga(saga_id)
    assert outcome.status == "FAILED"
    assert outcome.compensations_succeeded == _names(reversed(definition.steps[:index]))
    assert outcome.transitions == 2 * (index + 1)


@pytest.mark.parametrize("index", range(4))
def test_a_timeout_compensates_the_timed_out_step_too(run_saga, local_sagas, saga_id, definition, index):
    # Given a participant that acts but whose reply is lost (its outcome is unknown to the saga)
    step = definition.steps[index]
    local_sagas.faults.plan(saga_id, step.name, "action", Fault.lost_reply())
    # When the task times out
    outcome = run_saga(saga_id)
    # Then the timed-out step is compensated as well, and its side effect is undone (reconciliation holds)
    assert outcome.status == "FAILED"
    assert outcome.record["error"] == "States.Timeout"
    assert outcome.compensations_succeeded == _names(reversed(definition.steps[: index + 1]))


def test_a_transient_failure_is_retried_then_succeeds(run_saga, local_sagas, saga_id, definition):
    step = definition.step("process_payment")
    local_sagas.faults.plan(saga_id, step.name, "action", Fault.transient(step.retry.errors[0], times=2))
    outcome = run_saga(saga_id)
    assert outcome.status == "COMPLETED"
    assert outcome.compensations_succeeded == ()
    # Two retries are two more billed transitions.
    assert outcome.transitions == len(definition.steps) + 1 + 2
    assert local_sagas.kit.payments.get_ledger(saga_id) is not None


def test_a_transient_failure_beyond_the_retry_budget_compensates(run_saga, local_sagas, saga_id, definition):
    step = definition.step("create_shipment")
    times = step.retry.max_attempts + 1
    local_sagas.faults.plan(saga_id, step.name, "action", Fault.transient(step.retry.errors[0], times=times))
    outcome = run_saga(saga_id)
    assert outcome.status == "FAILED"
    assert outcome.record["error"] == step.retry.errors[0]
    assert outcome.compensations_succeeded == ("process_payment", "reserve_inventory")


def test_a_compensation_that_keeps_failing_parks_the_saga(run_saga, local_sagas, saga_id, definition):
    # Given a shipment failure, and a refund that the payment provider refuses for good
    local_sagas.faults.plan(saga_id, "create_shipment", "action", Fault.permanent("Shipping.AddressNotServiceable"))
    local_sagas.faults.plan(saga_id, "process_payment", "compensation", Fault.permanent("Payment.RefundRejected"))
    # When the saga compensates
    outcome = run_saga(saga_id)
    # Then it is parked, visibly: the record names the step and both errors, the execution fails distinctly,
    # and nothing below the failed compensation ran (a human decides what happens next)
    assert outcome.status == "COMPENSATION_FAILED"
    assert outcome.execution_status == "FAILED"
    assert outcome.record["failed_step"] == "process_payment"
    assert outcome.record["compensation_error"] == "Payment.RefundRejected"
    assert outcome.record["error"] == "Shipping.AddressNotServiceable"
    assert outcome.compensations_succeeded == ()
    assert outcome.record["steps"]["reserve_inventory"]["status"] == "SUCCEEDED"
    assert saga_id in local_sagas.check().parked
    execution = local_sagas.execution(saga_id)
    assert execution["error"] == "Saga.CompensationFailed"


def test_a_compensation_that_fails_transiently_is_retried(run_saga, local_sagas, saga_id):
    local_sagas.faults.plan(saga_id, "create_shipment", "action", Fault.permanent("Shipping.AddressNotServiceable"))
    local_sagas.faults.plan(
        saga_id, "process_payment", "compensation", Fault.transient("Payment.GatewayUnavailable", 2)
    )
    outcome = run_saga(saga_id)
    assert outcome.status == "FAILED"
    assert outcome.compensations_succeeded == ("process_payment", "reserve_inventory")


def test_a_late_action_after_its_compensation_is_refused(run_saga, local_sagas, saga_id, definition, wait_until_quiet):
    # Given a carrier so slow that the task times out and CancelShipment runs before CreateShipment does
    step = definition.step("create_shipment")
    slow = step.sla.timeout_seconds * TIME_SCALE * 1.5
    local_sagas.faults.plan(saga_id, step.name, "action", Fault.delay(slow))
    outcome = run_saga(saga_id)
    assert outcome.status == "FAILED"
    # When the slow action finally runs (its delivery is handled and deleted), the tombstone refuses it
    wait_until_quiet(within=slow * 2)
    # Then no shipment survives
    shipment = local_sagas.kit.shipping.get_shipment(saga_id)
    assert shipment is not None
    assert shipment.status == "CANCELLED"
    assert local_sagas.check().problems == []


def test_the_record_of_a_running_saga_shows_its_current_step(local_sagas, saga_id):
    # Given a saga whose payment step is slow (a third of its 90 s timeout)
    local_sagas.faults.plan(saga_id, "process_payment", "action", Fault.delay(30 * TIME_SCALE))
    local_sagas.start(saga_id, make_order())
    # When we read its record while it waits
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = local_sagas.records.get(saga_id)
        seen.append((record["status"], record["current_step"], record["steps"]["reserve_inventory"]["status"]))
        if record["status"] != "PENDING" or record["current_step"] == "process_payment":
            break
        time.sleep(0.01)
    # Then it was PENDING at process_payment, with the earlier step done, and it completed
    assert ("PENDING", "process_payment", "SUCCEEDED") in seen, seen[-5:]
    assert local_sagas.wait([saga_id], timeout_seconds=30) == []
    assert local_sagas.records.get(saga_id)["status"] == "COMPLETED"


def test_every_command_delivered_again_after_the_saga_completed_changes_nothing(run_saga, local_sagas, saga_id):
    # Given a completed saga, and every command its state machine sent (SQS may deliver each one again)
    assert run_saga(saga_id).status == "COMPLETED"
    before = local_sagas.records.get(saga_id)
    history = boto3.client("stepfunctions").get_execution_history(
        executionArn=local_sagas.execution(saga_id)["executionArn"], maxResults=1000
    )["events"]
    sent = [
        json.loads(event["taskScheduledEventDetails"]["parameters"])
        for event in history
        if event["type"] == "TaskScheduled" and event["taskScheduledEventDetails"]["resourceType"] == "sqs"
    ]
    assert len(sent) == len(before["steps"])
    # When SQS delivers every one of them a second time
    sqs = boto3.client("sqs")
    for parameters in sent:
        sqs.send_message(QueueUrl=parameters["QueueUrl"], MessageBody=json.dumps(parameters["MessageBody"]))
    time.sleep(2)
    # Then no participant acts again or undoes its step: the saga record is as it was, and everything reconciles
    after = local_sagas.records.get(saga_id)
    assert after["status"] == "COMPLETED"
    assert after["current_step"] == before["current_step"]
    assert {step: state["status"] for step, state in after["steps"].items()} == {
        step: state["status"] for step, state in before["steps"].items()
    }
    for name in ("SagaStack-InventoryService", "SagaStack-PaymentService"):
        assert all(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            == "0"
            for url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
        )
    assert local_sagas.check().problems == []
