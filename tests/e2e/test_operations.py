"""Operations end to end on the local runtime: the detector on its schedule, the execution-status reconciler,
DLQ redrive of expired commands, and resuming or resolving parked sagas with the operator CLI's code."""

from __future__ import annotations

import hashlib
import json
import time

import boto3
import pytest
from rich.console import Console

from local_runtime.eventbridge import StatusChangeRule
from saga_ops import cli
from saga_ops.operations import NotResumable, OperatorError
from saga_records.starter import SagaSpec, SagaStarter
from saga_testkit.faults import Fault
from tests.e2e.orders import TIME_SCALE, make_order

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

DETECTOR_PERIOD = 60 * TIME_SCALE  # the 1-minute schedule on the local clock, seconds


PENDING_AT_REFUND = [
    {"step": "process_payment", "kind": "compensation"},
    {"step": "reserve_inventory", "kind": "compensation"},
]


def park_at_refund(local_sagas, saga_id):
    """A saga whose shipment is refused and whose refund then fails for good: parked at process_payment, with the
    refund and the release of the stock pending."""
    local_sagas.faults.plan(saga_id, "create_shipment", "action", Fault.permanent("Shipping.AddressNotServiceable"))
    local_sagas.faults.plan(saga_id, "process_payment", "compensation", Fault.permanent("Payment.ProviderDown"))
    local_sagas.start(saga_id, make_order())
    assert local_sagas.wait([saga_id], timeout_seconds=30) == []
    record = local_sagas.records.get(saga_id)
    assert (record["status"], record["pending"]) == ("COMPENSATION_FAILED", PENDING_AT_REFUND)


def reports_for(operator, saga_id, *, within):
    """Take the stuck-sagas queue's reports for `saga_id` until one arrives or `within` seconds pass."""
    found, deadline = [], time.monotonic() + within
    while not found and time.monotonic() < deadline:
        found = [report for report in operator.take_stuck_reports() if report["saga_id"] == saga_id]
    return found


def console():
    return Console(record=True, width=200)


def test_a_parked_saga_is_flagged_once_and_resumed_to_compensated(local_sagas, operator, saga_id):
    # Given a saga parked because its refund failed
    park_at_refund(local_sagas, saga_id)
    # When the detector runs on its schedule
    (report,) = reports_for(operator, saga_id, within=4 * DETECTOR_PERIOD)
    # Then operators got one report naming the saga, step, status, error and execution
    assert report["status"] == "COMPENSATION_FAILED"
    assert report["step"] == "process_payment"
    assert report["error"] == "Payment.ProviderDown"
    assert report["execution_arn"].endswith(f":{saga_id}")
    # And later runs do not report the same incident again
    assert reports_for(operator, saga_id, within=1.5 * DETECTOR_PERIOD) == []

    # When the provider is back and an operator resumes the saga
    local_sagas.faults.clear(saga_id, "process_payment", "compensation")
    output = console()
    exit_code = cli.main(
        [
            "resume",
            saga_id,
            "--retry",
            "--reason",
            "payment provider is back",
            "--by",
            "ana@ops",
            "--wait-seconds",
            "20",
        ],
        console=output,
    )
    # Then the failed refund and the remaining release ran, in reverse order, and the saga is compensated
    assert exit_code == 0, output.export_text()
    record = local_sagas.records.get(saga_id)
    assert (record["status"], record["pending"]) == ("FAILED", [])
    assert record["steps"]["process_payment"]["status"] == "COMPENSATED"
    assert record["steps"]["reserve_inventory"]["status"] == "COMPENSATED"
    assert local_sagas.kit.payments.get_ledger(saga_id).net_cents == 0
    # And the record says who did it, when and why
    started, finished = record["operator_actions"]
    assert (started["action"], started["by"], started["reason"]) == ("retry", "ana@ops", "payment provider is back")
    assert started["steps"] == ["process_payment", "reserve_inventory"]
    assert finished["action"] == "retry-succeeded"
    assert started["at"] <= finished["at"]
    assert local_sagas.check().problems == []
    assert "compensated" in output.export_text()


def test_a_parked_saga_resolved_by_hand_is_closed_and_audited(local_sagas, operator, saga_id):
    park_at_refund(local_sagas, saga_id)
    # When an operator tries without a reason, nothing changes
    with pytest.raises(OperatorError, match="reason"):
        operator.resolve(saga_id, reason="  ", by="ana@ops")
    assert local_sagas.records.get(saga_id)["status"] == "COMPENSATION_FAILED"
    # When they refund by hand, release the stock by hand, and resolve it with a reason
    ledger = local_sagas.kit.payments.get_ledger(saga_id)
    local_sagas.kit.payments.refund(ledger)
    local_sagas.kit.inventory.release(local_sagas.kit.inventory.get_reservation(saga_id))
    output = console()
    exit_code = cli.main(
        ["resume", saga_id, "--resolve", "--reason", "refunded by hand, ticket 4711", "--by", "ben@ops"],
        console=output,
    )
    # Then the saga is RESOLVED, with who, when and why on its record
    assert exit_code == 0, output.export_text()
    record = local_sagas.records.get(saga_id)
    assert (record["status"], record["pending"]) == ("RESOLVED", [])
    (entry,) = record["operator_actions"]
    assert entry["pending"] == ["process_payment (compensation)", "reserve_inventory (compensation)"]
    assert (entry["action"], entry["by"], entry["reason"]) == ("resolve", "ben@ops", "refunded by hand, ticket 4711")
    assert entry["from_status"] == "COMPENSATION_FAILED"
    assert entry["at"] >= record["created_at"]
    # And it can be neither resumed nor resolved again
    with pytest.raises(NotResumable):
        operator.resume(saga_id, reason="again", by="ana@ops")
    assert cli.main(["resume", saga_id, "--resolve", "--reason", "again", "--by", "x"], console=console()) == 2
    assert local_sagas.check().problems == []


def idempotency_id(service: str, kind: str, key: str) -> str:
    """The Powertools idempotency record id of a command (its key prefix, then the MD5 of the JSON key)."""
    return f"{service}.{kind}#{hashlib.md5(json.dumps(key).encode()).hexdigest()}"


@pytest.mark.parametrize("idempotency_expired", [False, True], ids=["remembered", "idempotency-expired"])
def test_redriving_a_command_whose_token_expired_has_no_second_effect(
    local_sagas, operator, saga_id, idempotency_expired
):
    # Given a saga compensated around its payment: charged, then refunded when shipping refused the address
    local_sagas.start(saga_id, make_order(country="AQ"))
    assert local_sagas.wait([saga_id], timeout_seconds=30) == []
    assert local_sagas.records.get(saga_id)["status"] == "FAILED"
    charged_before = local_sagas.kit.payments.get_ledger(saga_id)
    # And its ProcessPayment command (task token now expired) sitting in the DLQ, as if it had dead-lettered
    execution_arn = local_sagas.records.get(saga_id)["execution_arn"]
    sent = [
        json.loads(event["taskScheduledEventDetails"]["parameters"])
        for event in boto3.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
        if event["type"] == "TaskScheduled"
    ]
    (command,) = [
        parameters["MessageBody"]
        for parameters in sent
        if parameters.get("MessageBody", {}).get("command") == "ProcessPayment"
    ]
    (dlq,) = [queue for queue in operator.deployment.dead_letter_queues if "ProcessPayment" in queue.label]
    boto3.client("sqs").send_message(QueueUrl=dlq.url, MessageBody=json.dumps(command))
    if idempotency_expired:  # past the idempotency window only the participant's own records guard it
        table = boto3.resource("dynamodb").Table(local_sagas.cloud.output("IdempotencyTableName"))
        key = {"id": idempotency_id("PaymentService", "action", command["idempotency_key"])}
        assert "Item" in table.get_item(Key=key)
        table.delete_item(Key=key)
    calls_before = local_sagas.faults.attempts(saga_id, "process_payment", "action")
    listed = console()
    cli.main(["dlq", "list"], console=listed)
    assert saga_id in listed.export_text()
    assert command["task_token"] not in listed.export_text()

    # When the operator redrives that DLQ
    outcome = operator.redrive(dlq)
    # Then the command went back, was handled (not dead-lettered again), and the saga's money did not move
    assert outcome.moved >= 1
    assert wait_until_drained(dlq.source_url, within=10)
    # (within the idempotency window the participant does not even run it again; past it, its domain runs, finds
    # the refund's tombstone and refuses: no second effect, and the refused answer undoes nothing. Or it is shed
    # unrun: picked up later than a third of its heartbeat window, its pick-up beat is refused, its task long over)
    reruns = (0, 1) if idempotency_expired else (0,)
    assert local_sagas.faults.attempts(saga_id, "process_payment", "action") - calls_before in reruns
    assert local_sagas.faults.attempts(saga_id, "process_payment", "compensation") == 1
    ledger = local_sagas.kit.payments.get_ledger(saga_id)
    assert ledger.charge == charged_before.charge
    assert ledger.net_cents == 0
    assert local_sagas.records.get(saga_id)["status"] == "FAILED"
    assert local_sagas.check().problems == []


def wait_until_drained(queue_url, *, within):
    sqs, deadline = boto3.client("sqs"), time.monotonic() + within
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}:
            return True
        time.sleep(0.1)
    return False


def test_the_local_runtime_watches_the_saga_state_machines_for_uncaught_endings(local_sagas, saga_definitions):
    # The stack's rule, read from EventBridge, is what the local runtime delivers: one rule for every saga's machine
    (rule,) = local_sagas.cloud.events.status_rules
    machines = [
        local_sagas.cloud.output(f"{definition.name}StateMachineArn")
        for definition in saga_definitions
        if definition.pattern == "orchestration"  # a choreographed saga has no state machine
    ]
    assert sorted(rule.state_machine_arns) == sorted(machines)
    assert local_sagas.state_machine_arn in rule.state_machine_arns
    assert sorted(rule.statuses) == ["ABORTED", "FAILED", "TIMED_OUT"]


def test_a_timed_out_execution_parks_its_saga_record(local_sagas, operator, saga_id):
    # Given a saga whose execution times out as a whole (top-level TimeoutSeconds: no Catch runs)
    sfn = boto3.client("stepfunctions")
    probe = sfn.create_state_machine(
        name=f"timeout-{saga_id}",
        definition=json.dumps(
            {"StartAt": "Wait", "TimeoutSeconds": 1, "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/probe",
    )["stateMachineArn"]
    name = local_sagas.definition.name
    steps = tuple(step.name for step in local_sagas.definition.steps)
    SagaStarter(local_sagas.records, [SagaSpec(name, probe, steps)]).start(name, saga_id, make_order())
    execution_arn = local_sagas.records.get(saga_id)["execution_arn"]
    deadline = time.monotonic() + 10
    while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "TIMED_OUT"
    assert local_sagas.records.get(saga_id)["status"] == "PENDING"  # what Catch could not fix
    # When the status change reaches the reconciler, as the stack's rule delivers it
    (stack_rule,) = local_sagas.cloud.events.status_rules
    rule = StatusChangeRule("probe", ["TIMED_OUT"], [probe], stack_rule.targets)
    assert local_sagas.cloud.events.deliver_status_changes([rule]) == 1
    # Then the record is parked with the truth, and the detector lists it for an operator
    record = local_sagas.records.get(saga_id)
    assert record["status"] == "EXECUTION_FAILED"
    assert record["execution_status"] == "TIMED_OUT"
    assert saga_id in [saga.saga_id for saga in operator.stuck(time_scale=TIME_SCALE)]
    # And a second delivery of the same change is not made
    assert local_sagas.cloud.events.deliver_status_changes([rule]) == 0
    # When an operator resumes it: its record says the first step was running (none after it had started), so the
    # compensations run from there, in reverse
    first = local_sagas.definition.steps[0]
    assert (record["failed_step"], record["steps"][first.name]["status"]) == (first.name, "RUNNING")
    outcome = operator.resume(saga_id, reason="execution timed out; undo whatever it did", by="ana@ops")
    # Then the participant left a tombstone where nothing had happened, and the saga is compensated
    assert outcome.status == "FAILED"
    assert outcome.done == [first.name]
    assert local_sagas.kit.inventory.get_reservation(saga_id).status == "RELEASED"
    assert local_sagas.check().problems == []


def test_an_event_the_reconciler_cannot_handle_lands_in_its_dead_letter_queue(local_sagas, operator):
    # Given an event that is not a status change (a wiring mistake, say)
    reconciler = local_sagas.cloud.function_with_handler("saga_operations.handlers.reconcile_execution_status")
    (dlq,) = [queue for queue in operator.deployment.dead_letter_queues if "Reconciler" in queue.label]
    depth_before = operator.depth(dlq.url)
    # When it is delivered / Then the invocation fails and the event is kept in the alarmed DLQ, not lost
    assert local_sagas.cloud.invoke_async(reconciler.arn, {"source": "aws.states", "detail": {}}) is False
    assert operator.depth(dlq.url) == depth_before + 1
