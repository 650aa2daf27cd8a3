"""At-least-once, end to end: duplicate deliveries during flight to every participant, DLQ redrive of commands
whose task tokens expired, and redelivery of a completed saga's commands after their idempotency records expired. In
each case no participant takes effect a second time, and none undoes a step its saga kept.

"No second effect" is read from the ground truth: each participant's own table (every item of the saga, compared
before and after), the domain functions' call counts, and the reconciliation of stock and money.
"""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from boto3.dynamodb.conditions import Attr

from saga_testkit.faults import Fault
from tests.e2e.orders import make_order

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]
COPIES = 2  # extra deliveries of each command, while the first is being processed


def _participant_items(local_sagas, saga_id):
    """Every item of every participant's table that belongs to the saga: what its effects are."""
    dynamodb = boto3.resource("dynamodb")
    return {
        step.service: sorted(
            json.dumps(item, sort_keys=True, default=str)
            for item in dynamodb.Table(local_sagas.service_table(step.service))
            .scan(FilterExpression=Attr("saga_id").eq(saga_id), ConsistentRead=True)
            .get("Items", [])
        )
        for step in local_sagas.definition.steps
    }


def test_every_action_delivered_again_during_flight_takes_effect_once(
    local_sagas, wait_until_quiet, saga_id, definition
):
    # Given every step's command delivered COPIES more times, while the first delivery is being processed
    for step in definition.steps:
        local_sagas.faults.plan(saga_id, step.name, "action", Fault.duplicate_delivery(copies=COPIES))
    # When the saga runs
    local_sagas.start(saga_id, make_order())
    assert local_sagas.wait([saga_id], timeout_seconds=60) == []
    wait_until_quiet()
    outcome = local_sagas.outcome(saga_id)
    # Then it completed once, each participant's domain code ran once although each got 1 + COPIES deliveries
    assert outcome.status == "COMPLETED"
    assert outcome.actions_succeeded == tuple(step.name for step in definition.steps)
    for step in definition.steps:
        assert local_sagas.faults.delivery_faults(saga_id, step.name, "action") == COPIES
        assert local_sagas.faults.effects(saga_id, step.name, "action") == 1, step.name
    assert local_sagas.check().problems == []


def test_every_compensation_delivered_again_during_flight_takes_effect_once(
    local_sagas, wait_until_quiet, saga_id, definition
):
    # Given the last step refusing for good, and every compensation delivered COPIES more times during flight
    last = definition.steps[-1]
    local_sagas.faults.plan(saga_id, last.name, "action", Fault.permanent(last.permanent_errors[0]))
    undone = [step for step in reversed(definition.steps[:-1]) if step.compensation]
    for step in undone:
        local_sagas.faults.plan(saga_id, step.name, "compensation", Fault.duplicate_delivery(copies=COPIES))
    # When the saga compensates
    local_sagas.start(saga_id, make_order())
    assert local_sagas.wait([saga_id], timeout_seconds=60) == []
    wait_until_quiet()
    outcome = local_sagas.outcome(saga_id)
    # Then every completed step was compensated once, last first, and nothing else ran again
    assert outcome.status == "FAILED"
    assert outcome.compensations_succeeded == tuple(step.name for step in undone)
    for step in undone:
        assert local_sagas.faults.delivery_faults(saga_id, step.name, "compensation") == COPIES
        assert local_sagas.faults.effects(saga_id, step.name, "compensation") == 1, step.name
        assert local_sagas.faults.effects(saga_id, step.name, "action") == 1, step.name
    assert local_sagas.check().problems == []


def test_redriving_every_command_of_a_compensated_saga_has_no_second_effect(
    local_sagas, wait_until_quiet, operator, saga_id, definition
):
    # Given a saga whose last step acted but never answered: it timed out, and every step was compensated
    last = definition.steps[-1]
    local_sagas.faults.plan(saga_id, last.name, "action", Fault.lost_reply())
    local_sagas.start(saga_id, make_order())
    assert local_sagas.wait([saga_id], timeout_seconds=60) == []
    wait_until_quiet()
    record = local_sagas.records.get(saga_id)
    assert (record["status"], record["error"]) == ("FAILED", "States.Timeout")
    # And every command its state machine sent (each task token now expired) parked in its participant's DLQ
    history = boto3.client("stepfunctions").get_execution_history(
        executionArn=record["execution_arn"], maxResults=1000
    )["events"]
    sent = [
        json.loads(event["taskScheduledEventDetails"]["parameters"])
        for event in history
        if event["type"] == "TaskScheduled" and event["taskScheduledEventDetails"]["resourceType"] == "sqs"
    ]
    dead_letter_queues = {queue.source_url: queue for queue in operator.deployment.dead_letter_queues}
    sqs = boto3.client("sqs")
    for parameters in sent:
        queue = dead_letter_queues[parameters["QueueUrl"]]
        sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps(parameters["MessageBody"]))
    commands = {(body["MessageBody"]["step"], body["MessageBody"]["kind"]) for body in sent}
    assert len(commands) == 2 * len(definition.steps)  # every action and every compensation
    effects_before = {key: local_sagas.faults.effects(saga_id, *key) for key in commands}
    items_before = _participant_items(local_sagas, saga_id)
    local_sagas.faults.clear(saga_id, last.name, "action")  # the lost reply is long gone; the redrive is healthy
    # When the operator redrives those DLQs
    moved = sum(operator.redrive(dead_letter_queues[url]).moved for url in {p["QueueUrl"] for p in sent})
    # Then every command went back and was consumed (none dead-lettered again)
    assert moved >= len(sent)
    wait_until_quiet()
    assert all(operator.depth(dead_letter_queues[url].url) == 0 for url in {p["QueueUrl"] for p in sent})
    # And no domain code took effect again, no participant's data changed, and the saga is as it ended
    assert {key: local_sagas.faults.effects(saga_id, *key) for key in commands} == effects_before
    assert _participant_items(local_sagas, saga_id) == items_before
    assert local_sagas.records.get(saga_id)["status"] == "FAILED"
    assert local_sagas.check().problems == []


def _sent_commands(record):
    """The body and queue of every command the saga's state machine sent, from its execution history."""
    history = boto3.client("stepfunctions").get_execution_history(
        executionArn=record["execution_arn"], maxResults=1000
    )["events"]
    return [
        json.loads(event["taskScheduledEventDetails"]["parameters"])
        for event in history
        if event["type"] == "TaskScheduled" and event["taskScheduledEventDetails"]["resourceType"] == "sqs"
    ]


def _expire_idempotency_records(local_sagas, definition, saga_id):
    """What DynamoDB TTL does an hour after each step ran. Powertools names a record `<key prefix>#<MD5 of the key's
    JSON>`; the toolkit's prefix is `<service>.<kind>`, its key the command's idempotency key."""
    table = boto3.resource("dynamodb").Table(local_sagas.cloud.output("IdempotencyTableName"))
    for step in definition.steps:
        for kind in ("action", "compensation"):
            key = json.dumps(f"{saga_id}#{step.name}#{kind}", sort_keys=True)
            table.delete_item(Key={"id": f"{step.service}.{kind}#{hashlib.md5(key.encode()).hexdigest()}"})


def test_redelivering_a_completed_saga_s_commands_after_their_idempotency_records_expired_undoes_nothing(
    local_sagas, wait_until_quiet, run_saga, saga_id, definition
):
    # Given a completed saga whose commands' idempotency records expired (an hour; a DLQ keeps messages 14 days)
    assert run_saga(saga_id).status == "COMPLETED"
    wait_until_quiet()
    record = local_sagas.records.get(saga_id)
    sent = _sent_commands(record)
    assert len(sent) == len(definition.steps)
    items_before = _participant_items(local_sagas, saga_id)
    effects_before = {step.name: local_sagas.faults.effects(saga_id, step.name, "action") for step in definition.steps}
    _expire_idempotency_records(local_sagas, definition, saga_id)
    # When every one of them is delivered again (an operator's redrive, a late redelivery)
    sqs = boto3.client("sqs")
    for parameters in sent:
        sqs.send_message(QueueUrl=parameters["QueueUrl"], MessageBody=json.dumps(parameters["MessageBody"]))
    wait_until_quiet()
    # Then each participant ran its domain again, found its effect, was refused by Step Functions (the task ended
    # long ago) and kept its step, or shed the command unrun (picked up later than a third of its heartbeat window,
    # its pick-up beat was refused): no compensation ran, no data changed, the saga is as it ended and reconciles
    assert all(
        local_sagas.faults.effects(saga_id, step.name, "action") - effects_before[step.name] in (0, 1)
        for step in definition.steps
    )
    assert all(local_sagas.faults.attempts(saga_id, step.name, "compensation") == 0 for step in definition.steps)
    assert _participant_items(local_sagas, saga_id) == items_before
    assert local_sagas.records.get(saga_id) == record
    assert local_sagas.check().problems == []
