"""The participant toolkit: fakes for callbacks and saga records, Powertools idempotency on moto DynamoDB."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from local_runtime.cloud import LocalLambdaContext
from participant_toolkit import ParticipantSettings, PermanentFailure, SagaParticipant, TransientFailure, observability
from participant_toolkit.callbacks import LateCallback
from saga_records import StepStatus

pytestmark = pytest.mark.unit

SECRET_TOKEN = "token-that-must-never-be-logged"


class FakeCallbacks:
    def __init__(self, refuse_success: bool = False) -> None:
        self.calls: list[tuple] = []
        self.refuse_success = refuse_success
        self._lock = threading.Lock()

    def succeed(self, task_token, output):
        with self._lock:
            self.calls.append(("succeed", task_token, output))
        if self.refuse_success:
            raise LateCallback("TaskTimedOut")

    def fail(self, task_token, error, cause):
        self.calls.append(("fail", task_token, error, cause))

    def heartbeat(self, task_token):
        with self._lock:
            self.calls.append(("heartbeat", task_token))

    def heartbeats(self, task_token, every_seconds, **options):
        from participant_toolkit.callbacks import TaskCallbacks

        return TaskCallbacks.heartbeats(self, task_token, every_seconds, **options)

    def heartbeats_for(self, tokens, every_seconds, **options):
        from participant_toolkit.callbacks import TaskCallbacks

        return TaskCallbacks.heartbeats_for(self, tokens, every_seconds, **options)

    def answers(self):
        return [call for call in self.calls if call[0] != "heartbeat"]


class FakeRecords:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def step_started(self, saga_id, step, kind):
        self.events.append(("started", saga_id, step, kind))
        return True

    def step_finished(self, saga_id, step, status, **fields):
        self.events.append(("finished", saga_id, step, status, fields))
        return True


class Domain:
    """A participant's domain functions, counting what they applied."""

    def __init__(self, action=None, compensation=None) -> None:
        self.applied: list[str] = []
        self.undone: list[str] = []
        self._action = action
        self._compensation = compensation

    def action(self, command):
        if self._action:
            self._action(command)
        self.applied.append(command.saga_id)
        return {"reservation_id": f"r-{command.saga_id}"}

    def compensation(self, command):
        if self._compensation:
            self._compensation(command)
        self.undone.append(command.saga_id)
        return {"released": True}


@pytest.fixture
def settings(aws_env, monkeypatch):
    # What the stack sets on every participant function, minus X-Ray (no daemon here).
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # The shared Metrics object read its namespace when first imported, maybe before this test's env.
    monkeypatch.setattr(observability.metrics, "namespace", "Sagas")
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ParticipantSettings(
            SERVICE_TABLE_NAME="svc", SAGA_TABLE_NAME="sagas", IDEMPOTENCY_TABLE_NAME="idempotency", SAGA_TIME_SCALE=1.0
        )


def make_participant(settings, domain, callbacks=None, records=None):
    callbacks = callbacks or FakeCallbacks()
    records = records or FakeRecords()
    participant = SagaParticipant(
        service="InventoryService",
        action=domain.action,
        compensation=domain.compensation,
        settings=settings,
        callbacks=callbacks,
        records=records,
    )
    return participant, callbacks, records


def command(kind="action", saga_id="saga-1", token=None, heartbeat_seconds=20, **overrides):
    body = {
        "saga_id": saga_id,
        "saga_type": "OrderFulfillment",
        "step": "reserve_inventory",
        "kind": kind,
        "command": "ReserveItems" if kind == "action" else "ReleaseReservation",
        "idempotency_key": f"{saga_id}#reserve_inventory#{kind}",
        "task_token": token or f"{SECRET_TOKEN}-{uuid.uuid4()}",
        "heartbeat_seconds": heartbeat_seconds,
        "input": {"order_id": "o-1"},
        "results": {},
    }
    return {**body, **overrides}


def sqs_event(*bodies):
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": f"h-{index}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:commands",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def context():
    return LocalLambdaContext("fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", 256, time.monotonic() + 30)


def test_success_answers_the_token_and_records_the_step(settings):
    # Given a healthy domain
    domain = Domain()
    participant, callbacks, records = make_participant(settings, domain)
    body = command()
    # When one command arrives
    response = participant.handle_actions(sqs_event(body), context())
    # Then it applied once, answered its own token with the result, and moved the saga record along
    assert response == {"batchItemFailures": []}
    assert domain.applied == ["saga-1"]
    assert callbacks.answers() == [("succeed", body["task_token"], {"reservation_id": "r-saga-1"})]
    assert records.events[0] == ("started", "saga-1", "reserve_inventory", "action")
    assert records.events[1][:4] == ("finished", "saga-1", "reserve_inventory", StepStatus.SUCCEEDED)


def test_a_duplicate_with_a_new_token_gets_the_stored_result_without_a_second_effect(settings):
    domain = Domain()
    participant, callbacks, _ = make_participant(settings, domain)
    first, retry = command(), command()
    participant.handle_actions(sqs_event(first), context())
    # When the same command (same idempotency key) arrives again with a fresh token
    participant.handle_actions(sqs_event(retry), context())
    # Then the domain ran once and both tokens got the same answer
    assert domain.applied == ["saga-1"]
    assert [(c[0], c[1]) for c in callbacks.answers()] == [
        ("succeed", first["task_token"]),
        ("succeed", retry["task_token"]),
    ]
    assert callbacks.answers()[0][2] == callbacks.answers()[1][2]


def test_a_business_rejection_fails_the_task_and_is_remembered(settings):
    calls = []

    def decline(command):
        calls.append(command.saga_id)
        raise PermanentFailure("Inventory.InsufficientStock", "SKU-1: 0 available")

    participant, callbacks, records = make_participant(settings, Domain(action=decline))
    first, duplicate = command(), command()
    participant.handle_actions(sqs_event(first), context())
    participant.handle_actions(sqs_event(duplicate), context())
    assert calls == ["saga-1"]
    assert callbacks.answers() == [
        ("fail", first["task_token"], "Inventory.InsufficientStock", "SKU-1: 0 available"),
        ("fail", duplicate["task_token"], "Inventory.InsufficientStock", "SKU-1: 0 available"),
    ]
    finished = [event for event in records.events if event[0] == "finished"]
    assert finished[0][3] == StepStatus.FAILED
    assert finished[0][4]["error"] == "Inventory.InsufficientStock"


def test_a_transient_failure_is_reported_for_retry_and_not_remembered(settings):
    attempts = []

    def flaky(command):
        attempts.append(command.task_token)
        if len(attempts) == 1:
            raise TransientFailure("Inventory.StoreUnavailable", "throttled")

    domain = Domain(action=flaky)
    participant, callbacks, _ = make_participant(settings, domain)
    first, retry = command(), command()
    participant.handle_actions(sqs_event(first), context())
    participant.handle_actions(sqs_event(retry), context())
    # Then the first attempt reported the transient error name, and the retry really ran
    assert callbacks.answers()[0] == ("fail", first["task_token"], "Inventory.StoreUnavailable", "throttled")
    assert callbacks.answers()[1][:2] == ("succeed", retry["task_token"])
    assert domain.applied == ["saga-1"]
    assert len(attempts) == 2


def test_bad_messages_fail_only_their_own_batch_item(settings):
    domain = Domain()
    participant, callbacks, _ = make_participant(settings, domain)
    good = command(saga_id="saga-good")
    event = sqs_event(good, "{not json", command(saga_id="saga-x", kind="compensation"), {"saga_id": "s"})
    # When a batch mixes a good command with an unparseable one, a command for the wrong function and a bad shape
    response = participant.handle_actions(event, context())
    # Then only the bad ones are reported back to SQS (so they are redelivered, then dead-lettered)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["m-1", "m-2", "m-3"]
    assert domain.applied == ["saga-good"]
    assert len(callbacks.answers()) == 1


def test_an_unexpected_error_leaves_the_message_for_redelivery_without_answering(settings):
    def boom(command):
        raise RuntimeError("bug")

    participant, callbacks, _ = make_participant(settings, Domain(action=boom))
    # When every record of the batch hits a bug / Then the invocation fails, so SQS redelivers the whole batch
    with pytest.raises(BatchProcessingError):
        participant.handle_actions(sqs_event(command(), command(saga_id="saga-2")), context())
    assert callbacks.answers() == []


def test_a_late_success_undoes_its_own_effect(settings):
    # Given a step whose task already timed out (the saga compensated around it)
    domain = Domain()
    participant, _callbacks, _ = make_participant(settings, domain, FakeCallbacks(refuse_success=True))
    # When the action completes and its callback is refused
    response = participant.handle_actions(sqs_event(command()), context())
    # Then the participant takes its effect back itself
    assert response == {"batchItemFailures": []}
    assert domain.applied == ["saga-1"]
    assert domain.undone == ["saga-1"]


def test_a_duplicate_delivery_of_an_answered_command_changes_nothing(settings):
    # Given an action whose success Step Functions took
    domain = Domain()
    participant, callbacks, records = make_participant(settings, domain)
    delivered = command()
    participant.handle_actions(sqs_event(delivered), context())
    # When SQS delivers the same message again (same token) after the saga moved on
    response = participant.handle_actions(sqs_event(delivered), context())
    # Then nothing runs again: no second effect, no undo, no second answer, no rewind of the record
    assert response == {"batchItemFailures": []}
    assert domain.applied == ["saga-1"]
    assert domain.undone == []
    assert [call[0] for call in callbacks.answers()] == ["succeed"]
    assert [event[0] for event in records.events] == ["started", "finished"]


class SlowFirstAnswer(FakeCallbacks):
    """Step Functions taking a token's first answer slowly, then refusing any other answer to it."""

    def __init__(self) -> None:
        super().__init__()
        self.answering, self.release = threading.Event(), threading.Event()
        self._answered: set[str] = set()

    def succeed(self, task_token, output):
        super().succeed(task_token, output)
        if task_token in self._answered:
            raise LateCallback("InvalidToken")
        self._answered.add(task_token)
        self.answering.set()
        self.release.wait(5)


def test_a_duplicate_delivered_while_the_first_answers_waits_and_undoes_nothing(settings):
    # Given a command whose first delivery ran its domain call and is still answering its token
    domain = Domain()
    callbacks = SlowFirstAnswer()
    participant, _, records = make_participant(settings, domain, callbacks)
    # (another warm environment of the same function: one environment runs one invocation at a time)
    other_environment, _, _ = make_participant(settings, domain, callbacks, records)
    delivered = command()
    first_response = []
    first = threading.Thread(
        target=lambda: first_response.append(other_environment.handle_actions(sqs_event(delivered), context()))
    )
    first.start()
    assert callbacks.answering.wait(5)
    # When SQS delivers the same message meanwhile
    # Then that delivery fails back to SQS (its whole batch, here of one), to be redelivered
    with pytest.raises(BatchProcessingError):
        participant.handle_actions(sqs_event(delivered), context())
    callbacks.release.set()
    first.join(5)
    assert first_response == [{"batchItemFailures": []}]
    # And once redelivered it changes nothing: the effect ran once, nothing was undone, the token was answered once
    # and the record not rewound
    after = participant.handle_actions(sqs_event(delivered), context())
    assert after == {"batchItemFailures": []}
    assert domain.applied == ["saga-1"]
    assert domain.undone == []
    assert [call[0] for call in callbacks.answers()] == ["succeed"]
    assert [event[0] for event in records.events] == ["started", "finished"]


def test_heartbeats_are_sent_while_the_work_runs(settings):
    domain = Domain(action=lambda command: time.sleep(0.8))
    participant, callbacks, _ = make_participant(settings, domain)
    body = command(heartbeat_seconds=1)  # beat every 1/3 s
    participant.handle_actions(sqs_event(body), context())
    beats = [call for call in callbacks.calls if call[0] == "heartbeat"]
    assert len(beats) >= 2
    assert all(call[1] == body["task_token"] for call in beats)


def test_a_command_waiting_behind_a_slow_one_in_its_batch_keeps_its_task_alive(settings):
    # Given a batch of two commands whose first takes longer than a heartbeat interval (1/3 s)
    domain = Domain(action=lambda command: time.sleep(0.7) if command.saga_id == "saga-1" else None)
    participant, callbacks, _ = make_participant(settings, domain)
    first, second = command(saga_id="saga-1", heartbeat_seconds=1), command(saga_id="saga-2", heartbeat_seconds=1)
    # When the batch is processed, one command after the other
    participant.handle_actions(sqs_event(first, second), context())
    # Then the second command's task got heartbeats while the first one was still working, not only after
    first_answered = callbacks.calls.index(("succeed", first["task_token"], {"reservation_id": "r-saga-1"}))
    early_beats = [call for call in callbacks.calls[:first_answered] if call == ("heartbeat", second["task_token"])]
    assert len(early_beats) >= 2
    assert domain.applied == ["saga-1", "saga-2"]


def test_a_failed_heartbeat_call_does_not_stop_the_heartbeats():
    # Given a Step Functions client whose first heartbeat call fails for a reason other than the task having ended
    # (moto 5.2.5 raises AttributeError while an execution is being created; AWS may throttle)
    from participant_toolkit.callbacks import TaskCallbacks

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


def _sent_seconds_ago(event, seconds):
    for record in event["Records"]:
        record["attributes"]["SentTimestamp"] = str(int((time.time() - seconds) * 1000))
    return event


def test_a_fresh_command_answered_within_one_beat_interval_sends_no_heartbeat(settings):
    # Given a command sent just now, whose heartbeat window is 6 s (a beat due every 2 s), and quick domain work
    domain = Domain()
    participant, callbacks, _ = make_participant(settings, domain)
    event = _sent_seconds_ago(sqs_event(command(heartbeat_seconds=6)), 0)
    # When it is handled
    participant.handle_actions(event, context())
    # Then it is answered with no heartbeat: one SendTask* call for the step
    assert [call[0] for call in callbacks.calls] == ["succeed"]


def test_a_command_that_waited_in_the_queue_beats_on_pick_up(settings):
    # Given a command that waited 3 s of its 6 s heartbeat window in the queue (more than one 2 s interval)
    domain = Domain()
    participant, callbacks, _ = make_participant(settings, domain)
    body = command(heartbeat_seconds=6)
    event = _sent_seconds_ago(sqs_event(body), 3)
    # When it is handled
    participant.handle_actions(event, context())
    # Then the window is renewed on pick-up (the only beat: the work took no interval), and the step answered
    assert sorted(call[0] for call in callbacks.calls) == ["heartbeat", "succeed"]
    assert all(call[1] == body["task_token"] for call in callbacks.calls)


def test_a_fresh_command_still_beats_once_its_work_outlasts_an_interval(settings):
    # Given a fresh command beating every 5/3 s (a 5 s window) whose domain work takes 2 s
    domain = Domain(action=lambda command: time.sleep(2.0))
    participant, callbacks, _ = make_participant(settings, domain)
    event = _sent_seconds_ago(sqs_event(command(heartbeat_seconds=5)), 0)
    # When it is handled / Then a heartbeat went out while the work ran, before the answer
    participant.handle_actions(event, context())
    kinds = [call[0] for call in callbacks.calls]
    assert "heartbeat" in kinds
    assert kinds.index("heartbeat") < kinds.index("succeed")


def test_a_fresh_command_on_a_sub_second_interval_keeps_the_pick_up_beat(settings):
    # Given a fresh command beating every 1/3 s (a scaled local clock's kind of interval), answered at once
    domain = Domain()
    participant, callbacks, _ = make_participant(settings, domain)
    event = _sent_seconds_ago(sqs_event(command(heartbeat_seconds=1)), 0)
    # When it is handled / Then it beat on pick-up: scheduling delays are a fair share of such an interval
    participant.handle_actions(event, context())
    assert sorted(call[0] for call in callbacks.calls) == ["heartbeat", "succeed"]


def test_compensation_runs_through_its_own_entry_point(settings):
    domain = Domain()
    participant, _callbacks, records = make_participant(settings, domain)
    response = participant.handle_compensations(sqs_event(command(kind="compensation")), context())
    assert response == {"batchItemFailures": []}
    assert domain.undone == ["saga-1"]
    assert records.events[-1][3] == StepStatus.COMPENSATED


def test_task_tokens_and_payloads_stay_out_of_logs_and_errors(settings, capsys):
    def decline(command):
        raise PermanentFailure("Inventory.InsufficientStock", "none left")

    participant, _, _ = make_participant(settings, Domain(action=decline), FakeCallbacks(refuse_success=True))
    # Given a batch of only malformed commands that carry a token and card data
    leaky = command(input={"card": "4111-secret"}, heartbeat_seconds="soon", surprise=SECRET_TOKEN)
    # When the handler fails the whole batch (so Lambda logs the error)
    with pytest.raises(BatchProcessingError) as failure:
        participant.action_handler(sqs_event(leaky, "{broken"), context())
    error_text = str(failure.value)  # read now: the processor reuses its exception list on the next batch
    participant.action_handler(sqs_event(command(input={"card": "4111-secret"})), context())
    # Then neither the error nor the logs repeat the token or the payload, but they do name the bad fields
    printed = capsys.readouterr()
    text = printed.out + printed.err + error_text
    assert "heartbeat_seconds" in text
    assert SECRET_TOKEN not in text
    assert "4111-secret" not in text


# --- compensations an operator re-runs (saga_ops resume): no task token, the outcome goes on the saga record ---


def test_a_compensation_without_a_token_records_its_outcome_and_calls_back_nobody(settings):
    # Given a healthy domain
    domain = Domain()
    participant, callbacks, records = make_participant(settings, domain)
    body = command("compensation", task_token=None, idempotency_key="saga-1#reserve_inventory#compensation#resume-1")
    # When the operator's compensation arrives
    response = participant.handle_compensations(sqs_event(body), context())
    # Then it ran, the saga record got COMPENSATED, and no callback or heartbeat was attempted
    assert response == {"batchItemFailures": []}
    assert domain.undone == ["saga-1"]
    assert callbacks.calls == []
    assert records.events[-1][:4] == ("finished", "saga-1", "reserve_inventory", StepStatus.COMPENSATED)


def test_a_failing_compensation_without_a_token_records_the_failure(settings):
    def refuse(_command):
        raise PermanentFailure("Inventory.Locked", "the warehouse is closed")

    participant, callbacks, records = make_participant(settings, Domain(compensation=refuse))
    body = command("compensation", task_token=None, idempotency_key="saga-1#reserve_inventory#compensation#resume-1")
    participant.handle_compensations(sqs_event(body), context())
    finished = records.events[-1]
    assert finished[:4] == ("finished", "saga-1", "reserve_inventory", StepStatus.COMPENSATION_FAILED)
    assert finished[4]["error"] == "Inventory.Locked"
    assert callbacks.calls == []


def test_an_action_without_a_token_is_refused_naming_the_field(settings):
    domain = Domain()
    participant, _, _ = make_participant(settings, domain)
    body = command("action", task_token=None)
    with pytest.raises(BatchProcessingError):
        participant.handle_actions(sqs_event(body), context())
    assert domain.applied == []


def test_each_command_publishes_its_step_latency_and_outcome(settings, capsys):
    participant, _, _ = make_participant(settings, Domain())
    participant.handle_actions(sqs_event(command()), context())
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    step_metrics = [m for m in metrics if m.get("step") == "reserve_inventory"]
    names = {definition["Name"] for m in step_metrics for definition in m["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"StepDuration", "StepSucceeded"}
    assert all((m["service"], m["kind"]) == ("InventoryService", "action") for m in step_metrics)
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Sagas" for m in step_metrics)


def test_the_refusal_of_a_tokenless_action_names_the_field():
    from participant_toolkit.command import MalformedCommand, parse_command

    with pytest.raises(MalformedCommand, match="task_token"):
        parse_command(json.dumps(command("action", task_token=None)))
    without_token = {key: value for key, value in command("action").items() if key != "task_token"}
    with pytest.raises(MalformedCommand, match="task_token"):
        parse_command(json.dumps(without_token))
