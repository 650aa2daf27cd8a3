"""The participant toolkit: the order saga's services, Powertools idempotency and the real saga record repository on
moto; Step Functions' side of task tokens is a task board (tests/unit/toolkit/harness.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from participant_toolkit import PermanentFailure, TransientFailure, observability
from participant_toolkit.callbacks import TaskCallbacks
from participant_toolkit.participant import DeliveryInProgress
from saga_operations.records import OperationsRecords
from saga_records import SagaStatus, StepStatus, metric_names
from tests.unit.toolkit.harness import SAGA_TABLE, SKU, SagaDriver, context, order, sqs_event

pytestmark = pytest.mark.unit

SECRET_TOKEN = "token-that-must-never-be-logged"


def counting(function, calls):
    """`function`, appending the saga id of each call to `calls`."""

    def counted(command):
        calls.append(command.saga_id)
        return function(command)

    return counted


def test_success_answers_the_token_and_records_the_step(saga, participants, board, services):
    # Given a started saga (its first step running)
    assert saga.step_statuses()["reserve_inventory"] == "RUNNING"
    body = saga.command("reserve_inventory")
    # When its first command arrives
    response = participants["InventoryService"].handle("ReserveItems", sqs_event(body), context())
    # Then the stock is reserved, the token answered with the reservation, and the record moved to the next step
    assert response == {"batchItemFailures": []}
    assert services.inventory.get_stock(SKU) == 8
    ((kind, token, output),) = board.answers
    assert (kind, token) == ("succeed", body["task_token"])
    assert output["status"] == "ACTIVE"
    record = saga.record()
    assert record["steps"]["reserve_inventory"]["status"] == "SUCCEEDED"
    assert record["steps"]["reserve_inventory"]["result"] == output
    assert (record["current_step"], record["steps"]["process_payment"]["status"]) == ("process_payment", "RUNNING")
    assert record["status"] == SagaStatus.PENDING


def test_a_saga_completed_before_its_last_answer_was_marked_shows_every_step_succeeded(saga, participants):
    # Given a saga whose last step's answer was taken, and the state machine recording COMPLETED before that step's
    # participant wrote its mark
    for step in ("reserve_inventory", "process_payment", "create_shipment"):
        body = saga.command(step)
        participants[saga.service(step)].handle(body["command"], sqs_event(body), context())
    participant = participants.new("NotificationService")
    mark = participant.records.action_answered
    seen = []

    def completed_first(*args, **kwargs):
        saga.ends(SagaStatus.COMPLETED)
        seen.append(saga.step_statuses())
        return mark(*args, **kwargs)

    participant.records.action_answered = completed_first
    participant.handle("SendOrderConfirmation", sqs_event(saga.command("send_confirmation")), context())
    # Then the record said every step SUCCEEDED as soon as it said COMPLETED, and the mark added the step's result
    assert seen == [dict.fromkeys(seen[0], "SUCCEEDED")]
    record = saga.record()
    assert record["status"] == SagaStatus.COMPLETED
    assert record["steps"]["send_confirmation"]["result"]["message"] == "CONFIRMATION"
    assert "finished_at" in record["steps"]["send_confirmation"]


def test_a_saga_that_completed_before_any_mark_landed_ends_at_its_last_step(definition, board, records, participants):
    # Given a saga whose record is written but whose starter has not marked it running yet (StartExecution answers
    # slowly, as moto's first one in a process does), and whose state machine ran every step and recorded COMPLETED
    # before any participant's mark landed (each marks its step only after Step Functions took its answer)
    saga = SagaDriver(definition, board, records)
    steps = [step.name for step in definition.steps]
    records.create(saga_id=saga.saga_id, saga_type=definition.name, steps=steps, saga_input=saga.order)
    # (each command carries the reservation's result, as the state machine passes it on)
    commands = [saga.command(step, results={steps[0]: saga.reservation_result()}) for step in steps]
    saga.ends(SagaStatus.COMPLETED)
    # When the marks land, then the starter's
    for step, body in zip(steps, commands, strict=True):
        participants[saga.service(step)].handle(body["command"], sqs_event(body), context())
    records.mark_running(saga.saga_id, f"arn:aws:states:us-east-1:123456789012:execution:x:{saga.saga_id}", steps[0])
    # Then the record ends at the saga's last step, every step SUCCEEDED with its result: nothing rewound it
    record = saga.record()
    assert (record["status"], record["current_step"]) == (SagaStatus.COMPLETED, steps[-1])
    assert {step: fields["status"] for step, fields in record["steps"].items()} == dict.fromkeys(steps, "SUCCEEDED")
    assert all("result" in record["steps"][step] for step in steps)


def test_a_retried_task_gets_the_stored_result_without_a_second_effect(saga, participants, board, services):
    calls = []
    participant = participants.new(
        "InventoryService", action=counting(services.domain["InventoryService"]["ReserveItems"], calls)
    )
    first, retry = saga.command("reserve_inventory"), saga.command("reserve_inventory")
    participant.handle("ReserveItems", sqs_event(first), context())
    # When the same step's command (same idempotency key) arrives again with a fresh token
    participant.handle("ReserveItems", sqs_event(retry), context())
    # Then the domain ran once and both tokens got the same answer
    assert calls == [saga.saga_id]
    assert [(kind, token) for kind, token, _ in board.answers] == [
        ("succeed", first["task_token"]),
        ("succeed", retry["task_token"]),
    ]
    assert board.answers[0][2] == board.answers[1][2]
    assert services.inventory.get_stock(SKU) == 8


def test_a_business_rejection_fails_the_task_and_is_remembered(saga, participants, board, services):
    calls = []
    participant = participants.new(
        "ShippingService", action=counting(services.domain["ShippingService"]["CreateShipment"], calls)
    )
    saga.order["shipping_address"]["country"] = "AQ"  # no carrier serves it
    first, retry = saga.command("create_shipment"), saga.command("create_shipment")
    participant.handle("CreateShipment", sqs_event(first), context())
    participant.handle("CreateShipment", sqs_event(retry), context())
    assert calls == [saga.saga_id]
    assert [(kind, token, error) for kind, token, error in board.answers] == [
        ("fail", first["task_token"], "Shipping.AddressNotServiceable"),
        ("fail", retry["task_token"], "Shipping.AddressNotServiceable"),
    ]
    step = saga.record()["steps"]["create_shipment"]
    assert (step["status"], step["error"]) == ("FAILED", "Shipping.AddressNotServiceable")


def test_bad_messages_fail_only_their_own_batch_item(saga, participants, board, services):
    good = saga.command("reserve_inventory")
    wrong_queue = saga.command("reserve_inventory", "compensation")
    event = sqs_event(good, "{not json", wrong_queue, {"saga_id": "s"})
    # When a batch mixes a good command with an unparseable one, a command for the wrong function and a bad shape
    response = participants["InventoryService"].handle("ReserveItems", event, context())
    # Then only the bad ones are reported back to SQS (so they are redelivered, then dead-lettered)
    failed = sorted(failure["itemIdentifier"] for failure in response["batchItemFailures"])
    assert failed == sorted(record["messageId"] for record in event["Records"][1:])
    assert [token for _, token, _ in board.answers] == [good["task_token"]]
    assert services.inventory.get_stock(SKU) == 8


def test_an_unexpected_error_leaves_the_message_for_redelivery_without_answering(saga, participants, board):
    def boom(command):
        raise RuntimeError("bug")

    participant = participants.new("InventoryService", action=boom)
    # When every record of the batch hits a bug / Then the invocation fails, so SQS redelivers the whole batch
    with pytest.raises(BatchProcessingError):
        participant.handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    assert board.answers == []
    assert saga.step_statuses()["reserve_inventory"] == "RUNNING"


def test_a_duplicate_delivery_of_an_answered_command_changes_nothing(saga, participants, board, services):
    # Given an action whose success Step Functions took, and the saga moved on
    delivered = saga.command("reserve_inventory")
    participants["InventoryService"].handle("ReserveItems", sqs_event(delivered), context())
    before = saga.record()
    # When SQS delivers the same message again (same token)
    response = participants.new("InventoryService").handle("ReserveItems", sqs_event(delivered), context())
    # Then nothing runs again: no second effect, no undo, no second answer, no write to the record
    assert response == {"batchItemFailures": []}
    assert services.inventory.get_stock(SKU) == 8
    assert participants.undone == []
    assert [kind for kind, _, _ in board.answers] == ["succeed"]
    assert board.refused == []
    assert saga.record() == before


def test_heartbeats_are_sent_while_the_work_runs(saga, participants, board, services):
    reserve = services.domain["InventoryService"]["ReserveItems"]
    participant = participants.new("InventoryService", action=lambda command: (time.sleep(0.8), reserve(command))[1])
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 1}  # beat every 1/3 s
    participant.handle(body["command"], sqs_event(body), context())
    assert len(board.beats) >= 2
    assert set(board.beats) == {body["task_token"]}


def test_a_command_waiting_behind_a_slow_one_in_its_batch_keeps_its_task_alive(
    board, participants, saga_of, raw_definition
):
    # Given a batch of two commands whose first takes longer than a heartbeat interval (1/3 s)
    first_saga, second_saga = saga_of(raw_definition), saga_of(raw_definition)
    reserve = participants.services.domain["InventoryService"]["ReserveItems"]

    def slow_for_the_first(command):
        if command.saga_id == first_saga.saga_id:
            time.sleep(0.7)
        return reserve(command)

    participant = participants.new("InventoryService", action=slow_for_the_first)
    first = first_saga.command("reserve_inventory") | {"heartbeat_seconds": 1}
    second = second_saga.command("reserve_inventory") | {"heartbeat_seconds": 1}
    # When the batch is processed, one command after the other
    participant.handle("ReserveItems", sqs_event(first, second), context())
    # Then the second command's task got heartbeats while the first one was still working, not only after
    answers_at = [index for index, (_, token, _) in enumerate(board.answers) if token == first["task_token"]]
    assert answers_at == [0]
    assert board.beats.count(second["task_token"]) >= 2
    assert [token for _, token, _ in board.answers] == [first["task_token"], second["task_token"]]


def test_a_batch_of_fresh_commands_answered_within_a_beat_interval_sends_no_heartbeat(
    board, participants, saga_of, raw_definition
):
    # Given three commands sent just now, each with a 6 s heartbeat window (a beat due every 2 s), in one batch
    bodies = [saga_of(raw_definition).command("reserve_inventory") | {"heartbeat_seconds": 6} for _ in range(3)]
    # When the batch is handled (quick domain work)
    participants["InventoryService"].handle("ReserveItems", sqs_event(*bodies), context())
    # Then each was answered and none was beaten: one SendTask* call per step
    assert [token for _, token, _ in board.answers] == [body["task_token"] for body in bodies]
    assert board.beats == []


def test_a_failed_heartbeat_call_does_not_stop_the_heartbeats():
    # Given a Step Functions client whose first heartbeat call fails for a reason other than the task having ended
    # (moto 5.2.5 raises AttributeError while an execution is being created; AWS may throttle)
    class FlakyCallbacks(TaskCallbacks):
        def __init__(self):
            self.beats = 0

        def heartbeat(self, task_token):
            self.beats += 1
            if self.beats == 1:
                raise AttributeError("'NoneType' object has no attribute 'value'")

    callbacks = FlakyCallbacks()
    # When work runs for several heartbeat intervals
    with callbacks.heartbeats("token", every_seconds=0.05):
        time.sleep(0.4)
    # Then the beats went on after the failed one
    assert callbacks.beats >= 3


def test_a_fresh_command_answered_within_one_beat_interval_sends_no_heartbeat(saga, participants, board):
    # Given a command sent just now, whose heartbeat window is 6 s (a beat due every 2 s), and quick domain work
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 6}
    # When it is handled
    participants["InventoryService"].handle("ReserveItems", sqs_event(body, sent_seconds_ago=0), context())
    # Then it is answered with no heartbeat: one SendTask* call for the step
    assert board.beats == []
    assert board.answered(body["task_token"]) == ["succeed"]


def test_a_command_that_waited_in_the_queue_beats_on_pick_up(saga, participants, board):
    # Given a command that waited 3 s of its 6 s heartbeat window in the queue (more than one 2 s interval)
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 6}
    # When it is handled (its answer held a moment, as a busy Step Functions would)
    release = board.hold_next_answer()
    threading.Timer(0.3, release.set).start()
    participants["InventoryService"].handle("ReserveItems", sqs_event(body, sent_seconds_ago=3), context())
    # Then the window was renewed on pick-up (the only beat: the work took no interval), and the step answered
    assert board.beats == [body["task_token"]]
    assert board.answered(body["task_token"]) == ["succeed"]


def test_a_fresh_command_still_beats_once_its_work_outlasts_an_interval(saga, participants, board, services):
    # Given a fresh command beating every 5/3 s (a 5 s window) whose domain work takes 2 s
    reserve = services.domain["InventoryService"]["ReserveItems"]
    participant = participants.new("InventoryService", action=lambda command: (time.sleep(2.0), reserve(command))[1])
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 5}
    # When it is handled / Then a heartbeat went out while the work ran, before the answer
    participant.handle(body["command"], sqs_event(body), context())
    assert board.beats == [body["task_token"]]
    assert board.answered(body["task_token"]) == ["succeed"]


def test_a_fresh_command_on_a_sub_second_interval_keeps_the_pick_up_beat(saga, participants, board):
    # Given a fresh command beating every 1/3 s (a scaled local clock's kind of interval), its answer held a moment
    body = saga.command("reserve_inventory") | {"heartbeat_seconds": 1}
    release = board.hold_next_answer()
    threading.Timer(0.2, release.set).start()
    # When it is handled / Then it beat on pick-up: scheduling delays are a fair share of such an interval
    participants["InventoryService"].handle("ReserveItems", sqs_event(body), context())
    assert board.beats[:1] == [body["task_token"]]


def test_each_command_runs_through_its_own_entry_point_and_refuses_another_command(saga, participants, board, services):
    participant = participants["InventoryService"]
    participant.handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    body = saga.command("reserve_inventory", "compensation")
    # Given a compensation command that reached the function of the action (a wiring error) / When it is handled
    with pytest.raises(BatchProcessingError) as failure:
        participant.handler("ReserveItems")(sqs_event(body), context())
    # Then the invocation fails (SQS redelivers it, and finally dead-letters it) naming both, and nothing is undone
    assert "ReleaseReservation reached the function of ReserveItems" in str(failure.value.child_exceptions)
    assert services.inventory.get_stock(SKU) == 8
    assert board.answered(body["task_token"]) == []
    # When it reaches its own function / Then the reservation is released and its task answered
    response = participant.handler("ReleaseReservation")(sqs_event(body), context())
    assert response == {"batchItemFailures": []}
    assert services.inventory.get_stock(SKU) == 10
    assert board.answered(body["task_token"]) == ["succeed"]
    assert saga.record()["status"] == SagaStatus.COMPENSATING
    assert saga.step_statuses()["reserve_inventory"] == StepStatus.COMPENSATED


def test_task_tokens_and_payloads_stay_out_of_logs_and_errors(saga, participants, capsys):
    participant = participants["PaymentService"]
    # Given a batch of only malformed commands that carry a token and card data
    leaky = saga.command("process_payment") | {
        "task_token": SECRET_TOKEN,
        "input": {"card": "4111-secret"},
        "heartbeat_seconds": "soon",
        "surprise": SECRET_TOKEN,
    }
    # When the handler fails the whole batch (so Lambda logs the error)
    with pytest.raises(BatchProcessingError) as failure:
        participant.handler("ProcessPayment")(sqs_event(leaky, "{broken"), context())
    error_text = str(failure.value)  # read now: the processor reuses its exception list on the next batch
    # And a command whose card is declined is answered (and logged)
    reserved = {"reserve_inventory": saga.reservation_result()}
    declined = saga.command("process_payment", results=reserved) | {"task_token": SECRET_TOKEN + "-2"}
    declined["input"] = order() | {"payment": {"card_token": "tok_declined"}, "card": "4111-secret"}
    participant.handler("ProcessPayment")(sqs_event(declined), context())
    # Then neither the error nor the logs repeat the token or the payload, but they do name the bad fields
    printed = capsys.readouterr()
    text = printed.out + printed.err + error_text
    assert "heartbeat_seconds" in text
    assert SECRET_TOKEN not in text
    assert "4111-secret" not in text


# --- compensations an operator re-runs (saga_ops resume): no task token, the outcome goes on the saga record ---


def _parked_at_reservation(saga, participants, operator_records):
    """A saga parked with its reservation's release failed, which the operator resumes: the record as the resume
    leaves it before sending the tokenless compensation."""
    participants["InventoryService"].handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    saga.set_status(SagaStatus.COMPENSATING)
    operator_records.mark_step(
        saga.saga_id, "reserve_inventory", StepStatus.COMPENSATING, saga_status=SagaStatus.COMPENSATING
    )
    body = saga.command("reserve_inventory", "compensation")
    return body | {"task_token": None, "idempotency_key": f"{saga.saga_id}#reserve_inventory#compensation#operator-1"}


def test_a_compensation_without_a_token_records_its_outcome_and_calls_back_nobody(saga, participants, board, services):
    body = _parked_at_reservation(saga, participants, OperationsRecords(SAGA_TABLE))
    answered_before = list(board.answers)
    # When the operator's compensation arrives
    response = participants["InventoryService"].handle("ReleaseReservation", sqs_event(body), context())
    # Then it ran, the saga record got COMPENSATED, and no callback or heartbeat was attempted
    assert response == {"batchItemFailures": []}
    assert services.inventory.get_stock(SKU) == 10
    assert board.answers == answered_before
    assert board.beats == []
    step = saga.record()["steps"]["reserve_inventory"]
    assert (step["status"], step["result"]["status"]) == ("COMPENSATED", "RELEASED")


@pytest.mark.parametrize(
    "failure",
    [
        PermanentFailure("Inventory.Locked", "the warehouse is closed"),
        TransientFailure("Inventory.StoreUnavailable", "throttled"),
    ],
)
def test_a_failing_compensation_without_a_token_records_the_failure(saga, participants, board, failure):
    body = _parked_at_reservation(saga, participants, OperationsRecords(SAGA_TABLE))

    def refuse(_command):
        raise failure

    answered_before = list(board.answers)
    participants.new("InventoryService", compensation=refuse).handle("ReleaseReservation", sqs_event(body), context())
    step = saga.record()["steps"]["reserve_inventory"]
    assert (step["status"], step["error"]) == ("COMPENSATION_FAILED", failure.error)
    assert board.answers == answered_before


def test_an_action_without_a_token_is_refused_naming_the_field(saga, participants, services):
    body = saga.command("reserve_inventory") | {"task_token": None}
    with pytest.raises(BatchProcessingError):
        participants["InventoryService"].handle("ReserveItems", sqs_event(body), context())
    assert services.inventory.get_stock(SKU) == 10


def test_each_command_publishes_its_step_latency_and_outcome(saga, participants, capsys):
    participants["InventoryService"].handle("ReserveItems", sqs_event(saga.command("reserve_inventory")), context())
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    step_metrics = [m for m in metrics if m.get("step") == "reserve_inventory"]
    names = {definition["Name"] for m in step_metrics for definition in m["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"StepDuration", "StepSucceeded"}
    assert all((m["service"], m["kind"]) == ("InventoryService", "action") for m in step_metrics)
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Sagas" for m in step_metrics)


def test_the_refusal_of_a_tokenless_action_names_the_field(saga):
    from participant_toolkit.command import MalformedCommand, parse_command

    body = saga.command("reserve_inventory")
    with pytest.raises(MalformedCommand, match="task_token"):
        parse_command(json.dumps(body | {"task_token": None}))
    without_token = {key: value for key, value in body.items() if key != "task_token"}
    with pytest.raises(MalformedCommand, match="task_token"):
        parse_command(json.dumps(without_token))


@pytest.fixture
def fresh_metrics():
    """The toolkit's process-wide Metrics, emptied of what tests calling `handle` directly left unflushed."""
    observability.metrics.clear_metrics()


def batch_records_failed(capsys) -> list[float]:
    """Values of BatchRecordsFailed in the EMF lines printed so far."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = [line[metric_names.BATCH_RECORDS_FAILED] for line in lines if metric_names.BATCH_RECORDS_FAILED in line]
    return [value[0] if isinstance(value, list) else value for value in values]


def test_records_of_a_batch_handed_back_to_sqs_are_counted(saga, participants, capsys, fresh_metrics):
    # Given a batch of one good command and one that is not a command at all
    participant = participants["InventoryService"]
    # When the Lambda entry point handles it
    event = sqs_event(saga.command("reserve_inventory"), "not a command")
    response = participant.handler("ReserveItems")(event, context())
    # Then SQS gets the bad record back, and the metric the alarm reads counts it (Lambda's Errors would not)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert batch_records_failed(capsys) == [1]


def test_a_batch_without_failures_counts_zero(saga, participants, capsys, fresh_metrics):
    participants["InventoryService"].handler("ReserveItems")(sqs_event(saga.command("reserve_inventory")), context())
    assert batch_records_failed(capsys) == [0]


def test_a_duplicate_waiting_for_its_twin_is_not_counted_as_failed(
    saga, participants, capsys, monkeypatch, fresh_metrics
):
    # Given a delivery whose twin is still answering (SQS redelivers it later; nothing is wrong)
    participant = participants["InventoryService"]
    body = saga.command("reserve_inventory")
    twin = {**body, "saga_id": "saga-twin"}
    execute = participant._execute

    def twin_still_answering(command, schedule):
        if command.saga_id == "saga-twin":
            raise DeliveryInProgress("another delivery is answering")
        return execute(command, schedule)

    monkeypatch.setattr(participant, "_execute", twin_still_answering)
    event = sqs_event(body, twin)
    response = participant.handler("ReserveItems")(event, context())
    # Then it goes back to SQS, and does not count as a failed record
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert batch_records_failed(capsys) == [0]
