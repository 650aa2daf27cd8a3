"""Each moto workaround: the defect shows without it, and is gone with it.

When moto fixes a defect, the `..._without_workaround` test fails: drop the workaround and that test.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from contextlib import nullcontext

import boto3
import pytest
from moto import mock_aws

from local_runtime import moto_workarounds
from local_runtime.moto_workarounds import (
    backend_lookup_without_global_lock,
    callbacks_skip_executions_still_starting,
    cfn_event_bus_ref_is_its_name,
    cfn_state_machine_in_executing_backend,
    compile_each_json_path_once,
    dynamodb_one_request_at_a_time,
    early_callback_seen_at_once,
    event_stamped_once_when_taken,
    fresh_task_token_per_retry,
    parse_each_definition_once,
    request_dispatch_work_done_once,
    retention_check_reads_one_attribute,
    scaled_time,
    send_task_failure_keeps_cause,
    service_clients_built_once,
    start_execution_once_per_name,
    transaction_rollback_copies_written_items,
)

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/sfn"


def _callback_machine(queue_url: str, *, retry: bool = False, timeout: int = 30, heartbeat: int | None = None) -> str:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
        "TimeoutSeconds": timeout,
        "HeartbeatSeconds": heartbeat or timeout - 1,
        "End": True,
    }
    if retry:
        task["Retry"] = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}]
    return json.dumps({"StartAt": "Call", "States": {"Call": task}})


def _answer(queue_url: str, answers: list[dict], stop: threading.Event, tokens: list[str]) -> None:
    """A participant: answer each command in turn with the next of `answers`, noting the tokens it saw."""
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    while answers and not stop.is_set():
        for message in sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            token = json.loads(message["Body"])["token"]
            tokens.append(token)
            answer = answers.pop(0)
            try:
                if "error" in answer:
                    sfn.send_task_failure(taskToken=token, error=answer["error"], cause=answer.get("cause", ""))
                else:
                    sfn.send_task_success(taskToken=token, output=json.dumps(answer))
            except sfn.exceptions.ClientError:
                pass  # a refused callback: the task is no longer waiting
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _run(
    definition: str,
    answers: list[dict],
    queue_url: str,
    timeout: float = 10.0,
    tokens: list | None = None,
    guard_early_callbacks: bool = True,
) -> dict:
    # Other tests' participants answer fast; without this fix moto may lose such an answer (see its test).
    with early_callback_seen_at_once() if guard_early_callbacks else nullcontext():
        return _run_unguarded(definition, answers, queue_url, timeout, tokens)


def _run_unguarded(definition: str, answers: list[dict], queue_url: str, timeout: float, tokens: list | None) -> dict:
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"m{time.monotonic_ns()}", definition=definition, roleArn=ROLE)
    stop = threading.Event()
    participant = threading.Thread(
        target=_answer, args=(queue_url, answers, stop, tokens if tokens is not None else []), daemon=True
    )
    participant.start()
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="run", input="{}")["executionArn"]
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stop.set()
    participant.join(timeout=3)
    return execution


@pytest.fixture
def queue_url(moto_sfn):
    return boto3.client("sqs").create_queue(QueueName=f"q{time.monotonic_ns()}")["QueueUrl"]


@pytest.mark.parametrize("with_workaround", [False, True])
def test_retry_of_a_callback_task_gets_a_fresh_token(queue_url, with_workaround):
    # Given a callback task retried once on "Flaky", whose participant fails once then succeeds
    answers, tokens = [{"error": "Flaky"}, {"ok": True}], []
    # When it runs
    with scaled_time(0.05), fresh_task_token_per_retry() if with_workaround else nullcontext():
        execution = _run(_callback_machine(queue_url, retry=True), answers, queue_url, tokens=tokens)
    # Then the retry is a new attempt with its own token, as on AWS (moto reuses the first one, so a
    # late answer to attempt 1 would settle attempt 2)
    assert execution["status"] == "SUCCEEDED"
    assert len(tokens) == 2
    assert (tokens[0] != tokens[1]) is with_workaround


@pytest.mark.parametrize("with_workaround", [False, True])
def test_send_task_failure_keeps_its_cause(queue_url, with_workaround):
    with send_task_failure_keeps_cause() if with_workaround else nullcontext():
        execution = _run(_callback_machine(queue_url), [{"error": "Card.Declined", "cause": "limit"}], queue_url)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "Card.Declined"
    assert (execution.get("cause") == "limit") is with_workaround


@pytest.mark.parametrize("with_workaround", [False, True])
def test_cloudformation_state_machine_runs_with_its_substitutions(moto_sfn, with_workaround):
    # Given a template whose state machine gets its queue URL through DefinitionSubstitutions
    definition = _callback_machine("${CommandQueueUrl}")
    template = {
        "Resources": {
            "Commands": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "commands"}},
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "saga",
                    "RoleArn": ROLE,
                    "DefinitionString": definition,
                    "DefinitionSubstitutions": {"CommandQueueUrl": {"Ref": "Commands"}},
                },
            },
        }
    }
    with cfn_state_machine_in_executing_backend() if with_workaround else nullcontext():
        boto3.client("cloudformation").create_stack(StackName="s", TemplateBody=json.dumps(template))
    # When we look for it where executions run
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    if not with_workaround:
        # Then without the workaround it is not there at all
        assert machines == []
        return
    # Then with it, it exists with the queue URL filled in, and runs
    (machine,) = machines
    described = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=machine["stateMachineArn"])
    queue_url = boto3.client("sqs").get_queue_url(QueueName="commands")["QueueUrl"]
    assert "${" not in described["definition"]
    assert queue_url in described["definition"]


def test_scaled_time_runs_timeouts_faster(queue_url):
    # Given a task with a 50 s timeout and nobody answering
    started = time.monotonic()
    with scaled_time(0.01, shortest_timeout_seconds=0.0):
        execution = _run(_callback_machine(queue_url, timeout=50), [], queue_url, timeout=10)
    # Then it times out in about half a second, not fifty
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Timeout"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("shortest_timeout_seconds", [0.0, 3.0], ids=["no-floor", "floor"])
def test_scaled_time_keeps_a_task_timeout_of_at_least_its_floor(queue_url, shortest_timeout_seconds):
    # Given a task with a 10 s timeout on a 0.05 clock (0.5 s), its 9 s heartbeat left whole, and nobody answering
    started = time.monotonic()
    with scaled_time(0.05, shortest_heartbeat_seconds=9.0, shortest_timeout_seconds=shortest_timeout_seconds):
        execution = _run(_callback_machine(queue_url, timeout=10), [], queue_url, timeout=10)
    elapsed = time.monotonic() - started
    # Then it times out at half a second unfloored, never before the floor with one (nor after its own 10 s)
    assert (execution["status"], execution["error"]) == ("FAILED", "States.Timeout")
    if shortest_timeout_seconds:
        assert shortest_timeout_seconds <= elapsed < 8
    else:
        assert elapsed < 2.5


@pytest.mark.parametrize("shortest_heartbeat_seconds", [0.0, 3.0], ids=["no-floor", "floor"])
def test_scaled_time_keeps_a_heartbeat_window_of_at_least_its_floor(queue_url, shortest_heartbeat_seconds):
    # Given a task with a 10 s heartbeat and a 100 s timeout on a 0.05 clock (0.5 s and 5 s), and nobody answering
    started = time.monotonic()
    with scaled_time(0.05, shortest_heartbeat_seconds=shortest_heartbeat_seconds):
        execution = _run(_callback_machine(queue_url, timeout=100, heartbeat=10), [], queue_url, timeout=10)
    elapsed = time.monotonic() - started
    # Then it times out when its window closes: at half a second unfloored, never before the floor with one
    assert (execution["status"], execution["error"]) == ("FAILED", "States.Timeout")
    if shortest_heartbeat_seconds:
        assert shortest_heartbeat_seconds <= elapsed < 5
    else:
        assert elapsed < shortest_heartbeat_seconds + 3


@pytest.mark.parametrize("with_workaround", [False, True])
def test_dynamodb_survives_concurrent_transactions(aws_env, with_workaround):
    # Given six threads writing one table with transactions and plain puts
    errors: list[str] = []

    def write(worker: int) -> None:
        client = boto3.client("dynamodb")
        for index in range(40):
            try:
                item = {"pk": {"S": f"{worker}-{index}"}, "v": {"M": {"a": {"S": "x" * 50}}}}
                client.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": item}}])
                client.put_item(TableName="t", Item={"pk": {"S": f"p{worker}-{index}"}})
            except Exception as error:
                errors.append(type(error).__name__)

    with mock_aws(), dynamodb_one_request_at_a_time() if with_workaround else nullcontext():
        boto3.client("dynamodb").create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        workers = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    # Then without the workaround moto's rollback copy races the writers; with it, every write lands
    assert (errors == []) is with_workaround


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_callback_before_the_heartbeat_watch_is_seen_at_once(queue_url, monkeypatch, with_workaround):
    # Given a task thread that is descheduled between sending the command and watching heartbeats, so a
    # fast participant answers first (made deterministic here by delaying the watch's set-up)
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    setup = CallbackEndpoint.setup_heartbeat_endpoint

    def slow_setup(self, heartbeat_seconds):
        time.sleep(0.3)
        return setup(self, heartbeat_seconds)

    monkeypatch.setattr(CallbackEndpoint, "setup_heartbeat_endpoint", slow_setup)
    definition = _callback_machine(queue_url, timeout=4)  # heartbeat 3 s
    with early_callback_seen_at_once() if with_workaround else nullcontext():
        execution = _run(definition, [{"ok": True}], queue_url, timeout=10, guard_early_callbacks=False)
    # Then without the workaround the answer is lost and the task times out a heartbeat later; with it,
    # the answer is seen (a lost one could only end in that timeout)
    if with_workaround:
        assert execution["status"] == "SUCCEEDED"
    else:
        assert execution["status"] == "FAILED"
        assert execution["error"] == "States.Timeout"


@pytest.mark.parametrize("with_workaround", [False, True])
def test_each_definition_is_parsed_once(with_workaround):
    from types import SimpleNamespace

    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    definition = _callback_machine("https://sqs.example/q")
    worker = SimpleNamespace(
        _evaluation_details=SimpleNamespace(state_machine_details=SimpleNamespace(definition=definition))
    )
    with parse_each_definition_once() if with_workaround else nullcontext():
        first = ExecutionWorker._get_evaluation_entrypoint(worker)
        second = ExecutionWorker._get_evaluation_entrypoint(worker)
    assert (first is second) is with_workaround


@pytest.mark.parametrize("with_workaround", [False, True])
def test_each_json_path_is_compiled_once(with_workaround):
    from moto.stepfunctions.parser.asl.utils import json_path

    with compile_each_json_path_once() if with_workaround else nullcontext():
        same = json_path.parse("$.input.items[0]") is json_path.parse("$.input.items[0]")
    assert same is with_workaround


@pytest.mark.parametrize("with_workaround", [False, True])
def test_backend_lookups_skip_the_global_lock_once_registered(monkeypatch, with_workaround):
    from moto.core import base_backend
    from moto.sqs.models import sqs_backends

    class CountingLock:
        def __init__(self):
            self.inner, self.acquired = base_backend.backend_lock, 0

        def __enter__(self):
            self.acquired += 1
            return self.inner.__enter__()

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    lock = CountingLock()
    monkeypatch.setattr(base_backend, "backend_lock", lock)
    with backend_lookup_without_global_lock() if with_workaround else nullcontext():
        sqs_backends["123456789012"]  # registers
        before = lock.acquired
        for _ in range(100):
            sqs_backends["123456789012"]
    assert (lock.acquired == before) is with_workaround


class _SlowCopy:
    """Stands in for the `copy` module in moto's Step Functions backend: a slower deep copy widens the race."""

    @staticmethod
    def deepcopy(value, memo=None):
        time.sleep(0.05)
        return copy.deepcopy(value, memo)


@pytest.mark.parametrize("with_workaround", [False, True])
def test_concurrent_starts_with_one_name_create_one_execution(moto_sfn, monkeypatch, with_workaround):
    from moto.stepfunctions.parser import models as parser_models

    monkeypatch.setattr(parser_models, "copy", _SlowCopy)
    sfn = boto3.client("stepfunctions")
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 1, "End": True}}})
    arn = sfn.create_state_machine(name="m", definition=definition, roleArn=ROLE)["stateMachineArn"]
    barrier = threading.Barrier(5)

    def start() -> None:
        barrier.wait()
        sfn.start_execution(stateMachineArn=arn, name="saga-1", input="{}")

    # Given five identical StartExecution calls at once
    with start_execution_once_per_name() if with_workaround else nullcontext():
        threads = [threading.Thread(target=start) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        names = [execution["name"] for execution in sfn.list_executions(stateMachineArn=arn)["executions"]]
    # Then without the workaround each call made its own execution of that name; with it, one
    assert (names == ["saga-1"]) is with_workaround, names


@pytest.mark.parametrize("with_workaround", [False, True])
def test_receiving_a_message_does_not_compute_every_queue_attribute(moto_sfn, monkeypatch, with_workaround):
    from moto.sqs.models import Queue

    computed = []
    all_attributes = Queue.attributes
    monkeypatch.setattr(Queue, "attributes", property(lambda queue: computed.append(1) or all_attributes.fget(queue)))
    sqs = boto3.client("sqs")
    # Given a queue holding messages
    url = sqs.create_queue(QueueName="commands")["QueueUrl"]
    for number in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{number}")
    computed.clear()
    # When a consumer receives them
    with retention_check_reads_one_attribute() if with_workaround else nullcontext():
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    # Then every message is received, and only without the workaround did each one compute all queue attributes
    assert sorted(message["Body"] for message in received) == [f"m{number}" for number in range(5)]
    assert (not computed) is with_workaround, len(computed)


def test_a_message_past_its_retention_period_is_still_not_received(moto_sfn, monkeypatch):
    from moto.sqs import models as sqs_models

    sqs = boto3.client("sqs")
    # Given a message sent to a queue that retains messages 60 s
    url = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    # When a consumer receives it 61 s later (moto's clock moved on)
    later = time.time() + 61
    monkeypatch.setattr(sqs_models, "unix_time", lambda: later)
    monkeypatch.setattr(moto_workarounds, "unix_time", lambda: later)
    with retention_check_reads_one_attribute():
        received = sqs.receive_message(QueueUrl=url).get("Messages", [])
    # Then the expired message is not delivered
    assert received == []


@pytest.mark.parametrize("with_workaround", [False, True])
def test_service_states_build_one_client_per_service(moto_sfn, with_workaround):
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sqs

    # When two sqs:sendMessage states ask for their client
    with service_clients_built_once() if with_workaround else nullcontext():
        first = state_task_service_sqs.boto_client_for(region="us-east-1", service="sqs", state_credentials=None)
        second = state_task_service_sqs.boto_client_for(region="us-east-1", service="sqs", state_credentials=None)
        other = state_task_service_sqs.boto_client_for(region="us-east-1", service="dynamodb", state_credentials=None)
    # Then only with the workaround do they share one (and another service still gets its own)
    assert (first is second) is with_workaround
    assert other is not first
    assert other.meta.service_model.service_name == "dynamodb"


def test_a_callback_state_still_runs_with_shared_clients(queue_url):
    # Given a callback task whose participant answers (the sendMessage goes through the shared sqs client)
    with service_clients_built_once():
        execution = _run(_callback_machine(queue_url), [{"ok": True}], queue_url)
    # Then the execution succeeds with the participant's answer
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {"ok": True}


@pytest.mark.parametrize("with_workaround", [False, True])
def test_dispatch_lists_methods_and_parses_update_expressions_once(with_workaround):
    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.responses import DynamoHandler

    # When a response class's methods are listed twice, and one update expression parsed twice
    with request_dispatch_work_done_once() if with_workaround else nullcontext():
        listed = [responses.method_names_from_class(DynamoHandler) for _ in range(2)]
        parsed = [UpdateExpressionParser.make("SET #a = :a ADD version :one") for _ in range(2)]
    # Then only with the workaround is the second answer the first one, unchanged
    assert (listed[0] is listed[1]) is with_workaround
    assert "update_item" in listed[1]
    assert (parsed[0] is parsed[1]) is with_workaround


def test_a_cached_update_expression_applies_its_own_values_each_time(moto_sfn):
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="records",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Given one update expression used with different values for two items
    with request_dispatch_work_done_once():
        for key, status in (("a", "RUNNING"), ("b", "DONE"), ("a", "FAILED")):
            dynamodb.update_item(
                TableName="records",
                Key={"pk": {"S": key}},
                UpdateExpression="SET #s = :s ADD version :one",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": status}, ":one": {"N": "1"}},
            )
        items = {key: dynamodb.get_item(TableName="records", Key={"pk": {"S": key}})["Item"] for key in ("a", "b")}
    # Then each update applied its own values (the parsed expression kept none of them)
    assert items["a"]["status"] == {"S": "FAILED"}
    assert items["a"]["version"] == {"N": "2"}
    assert items["b"]["status"] == {"S": "DONE"}
    assert items["b"]["version"] == {"N": "1"}


def _table_with_items(count: int) -> str:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for number in range(count):
        dynamodb.put_item(
            TableName="ledger", Item={"pk": {"S": f"p{number}"}, "sk": {"S": "A"}, "n": {"N": "1"}, "m": {"M": {}}}
        )
    return "ledger"


def _transact(*, failing: bool) -> None:
    dynamodb = boto3.client("dynamodb")
    items = [
        {
            "Update": {
                "TableName": "ledger",
                "Key": {"pk": {"S": "p0"}, "sk": {"S": "A"}},
                "UpdateExpression": "SET m.k = :v ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":v": {"S": "changed"}},
            }
        },
        {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "new"}, "sk": {"S": "A"}}}},
        {
            "ConditionCheck": {
                "TableName": "ledger",
                "Key": {"pk": {"S": "p1"}, "sk": {"S": "A"}},
                "ConditionExpression": "attribute_not_exists(pk)" if failing else "attribute_exists(pk)",
            }
        },
    ]
    dynamodb.transact_write_items(TransactItems=items)


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_transaction_copies_only_the_items_it_writes(aws_env, monkeypatch, with_workaround):
    from moto.dynamodb.models.dynamo_type import Item

    with mock_aws():
        # Given a table of 50 items
        _table_with_items(50)
        copied = []
        item_copy = Item.__deepcopy__
        monkeypatch.setattr(Item, "__deepcopy__", lambda item, memo: copied.append(1) or item_copy(item, memo))
        # When a transaction of three operations runs
        with transaction_rollback_copies_written_items() if with_workaround else nullcontext():
            _transact(failing=False)
    # Then without the workaround it copied the whole table (per operation); with it, at most the items it writes
    assert (len(copied) <= 3) is with_workaround, len(copied)


def test_a_cancelled_transaction_still_rolls_back_every_write(aws_env):
    from botocore.exceptions import ClientError

    with mock_aws(), transaction_rollback_copies_written_items():
        dynamodb = boto3.client("dynamodb")
        # Given a table of items, and a transaction that updates one in place, puts another and then fails a check
        _table_with_items(5)
        with pytest.raises(ClientError, match="TransactionCanceledException"):
            _transact(failing=True)
        items = {item["pk"]["S"]: item for item in dynamodb.scan(TableName="ledger")["Items"]}
        # Then nothing it wrote stayed: the updated item is as before, the new one absent, the others untouched
        assert items["p0"]["n"] == {"N": "1"}
        assert items["p0"]["m"] == {"M": {}}
        assert sorted(items) == [f"p{number}" for number in range(5)]
        # And the same transaction, with its check now passing, applies every write
        _transact(failing=False)
        items = {item["pk"]["S"]: item for item in dynamodb.scan(TableName="ledger")["Items"]}
        assert items["p0"]["n"] == {"N": "2"}
        assert items["p0"]["m"] == {"M": {"k": {"S": "changed"}}}
        assert "new" in items


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_callback_while_another_execution_is_starting_reaches_its_task(queue_url, with_workaround):
    # Given an execution waiting for its callback, and another one started a moment ago (its worker has not built
    # its environment yet)
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    sfn, sqs = boto3.client("stepfunctions"), boto3.client("sqs")
    machine = sfn.create_state_machine(name="waits", definition=_callback_machine(queue_url), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="waiting", input="{}")["executionArn"]
    deadline = time.monotonic() + 5
    messages = []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    token = json.loads(messages[0]["Body"])["token"]
    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    waiting = next(each for each in backend.state_machines if each.arn == machine["stateMachineArn"])
    starting = copy.copy(waiting.executions[0])
    starting.exec_worker = copy.copy(waiting.executions[0].exec_worker)
    starting.exec_worker.env = None
    waiting.executions.insert(0, starting)
    # When the waiting task's participant answers
    with callbacks_skip_executions_still_starting() if with_workaround else nullcontext():
        try:
            sfn.send_task_success(taskToken=token, output="{}")
            answered = True
        except Exception:  # moto's AttributeError, raised through the stubbed client
            answered = False
    waiting.executions.remove(starting)
    # Then the answer reaches it (without the workaround the starting execution's missing environment fails it)
    assert answered is with_workaround
    if with_workaround:
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"


HMAC_KEY_TEMPLATE = {
    "Resources": {
        "MacKey": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeySpec": "HMAC_256",
                "KeyUsage": "GENERATE_VERIFY_MAC",
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                },
            },
        }
    },
    "Outputs": {"KeyArn": {"Value": {"Fn::GetAtt": ["MacKey", "Arn"]}}},
}


def _mac_with_a_cloudformation_key() -> bytes:
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="keys", TemplateBody=json.dumps(HMAC_KEY_TEMPLATE))
    (output,) = cloudformation.describe_stacks(StackName="keys")["Stacks"][0]["Outputs"]
    kms = boto3.client("kms")
    mac = kms.generate_mac(KeyId=output["OutputValue"], MacAlgorithm="HMAC_SHA_256", Message=b"page")["Mac"]
    assert kms.verify_mac(KeyId=output["OutputValue"], MacAlgorithm="HMAC_SHA_256", Message=b"page", Mac=mac)[
        "MacValid"
    ]
    return mac


def test_cfn_hmac_key_refuses_macs_without_workaround(aws_env):
    with mock_aws(), pytest.raises(boto3.client("kms").exceptions.InvalidKeyUsageException):
        _mac_with_a_cloudformation_key()


def test_cfn_hmac_key_makes_macs_with_workaround(aws_env):
    with mock_aws(), moto_workarounds.cfn_kms_key_keeps_its_spec():
        assert len(_mac_with_a_cloudformation_key()) == 32


def _bus_template() -> dict:
    """A bus, a queue and a rule on that bus whose target is the queue, with an input transformer (the saga bus)."""
    return {
        "Resources": {
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "sagas"}},
            "Commands": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "commands"}},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventBusName": {"Ref": "Bus"},
                    "EventPattern": {"source": ["sagas.Order"], "detail-type": ["reserve.Succeeded"]},
                    "Targets": [
                        {
                            "Id": "commands",
                            "Arn": {"Fn::GetAtt": ["Commands", "Arn"]},
                            "InputTransformer": {
                                "InputPathsMap": {"detail": "$.detail"},
                                "InputTemplate": '{"command":"Pay","event":<detail>}',
                            },
                        }
                    ],
                },
            },
        }
    }


@pytest.mark.parametrize("with_workaround", [False, True])
def test_a_rule_on_a_custom_bus_is_created_and_delivers(moto_sfn, with_workaround):
    # Given a template with a rule on its own bus
    cloudformation = boto3.client("cloudformation")
    with cfn_event_bus_ref_is_its_name() if with_workaround else nullcontext():
        if not with_workaround:
            # Then without the workaround the Ref is moto's bus object, and the stack cannot be created
            with pytest.raises(AttributeError, match="split"):
                cloudformation.create_stack(StackName="s", TemplateBody=json.dumps(_bus_template()))
            return
        cloudformation.create_stack(StackName="s", TemplateBody=json.dumps(_bus_template()))
    # When an event of the pattern is put on the bus
    boto3.client("events").put_events(
        Entries=[
            {"EventBusName": "sagas", "Source": "sagas.Order", "DetailType": "reserve.Succeeded", "Detail": '{"a": 1}'}
        ]
    )
    # Then the target queue gets the transformed input (moto's own delivery)
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName="commands")["QueueUrl"])["Messages"]
    assert json.loads(message["Body"]) == {"command": "Pay", "event": {"a": 1}}


@pytest.mark.parametrize("with_workaround", [False, True])
def test_every_copy_of_an_event_carries_the_time_the_bus_took_it(aws_env, monkeypatch, with_workaround):
    from moto.sqs.models import SQSBackend

    with mock_aws(), event_stamped_once_when_taken() if with_workaround else nullcontext():
        # Given a bus whose two rules each copy an event, with its ingestion time, to a queue; serving the first one
        # takes a while (a busy host)
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name="sagas")
        urls = {}
        for name in ("first", "second"):
            urls[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name=name, EventBusName="sagas", EventPattern=json.dumps({"source": ["sagas.Order"]}))
            template = '{"taken": "<aws.events.event.ingestion-time>", "event": <aws.events.event.json>}'
            target = {"Id": name, "Arn": arn, "InputTransformer": {"InputPathsMap": {}, "InputTemplate": template}}
            events.put_targets(Rule=name, EventBusName="sagas", Targets=[target])
        send_message = SQSBackend.send_message

        def slow_first(self, queue_name, *args, **kwargs):
            if queue_name == "first":
                time.sleep(0.05)
            return send_message(self, queue_name, *args, **kwargs)

        monkeypatch.setattr(SQSBackend, "send_message", slow_first)
        # When one event is put on the bus
        entry = {"EventBusName": "sagas", "Source": "sagas.Order", "DetailType": "pay.Succeeded", "Detail": "{}"}
        events.put_events(Entries=[entry])
        copies = {
            name: json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]) for name, url in urls.items()
        }
    stamps = {name: (float(copy["taken"]), copy["event"]["time"]) for name, copy in copies.items()}
    if not with_workaround:
        # Then without the workaround the second rule's copy is stamped when that rule was served, after the first
        assert stamps["second"][0] - stamps["first"][0] >= 0.05
        return
    # Then with it both copies carry the same ingestion time and event time: when the bus took the event
    assert stamps["second"] == stamps["first"]


def test_a_heartbeat_before_the_task_watches_for_one_is_taken_while_the_task_lives():
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackOutcomeSuccess

    # Given a task that sent its command but has not set up its heartbeat watch yet
    endpoint = CallbackEndpoint(callback_id="token")
    # When its participant beats on pick-up / Then moto refuses it, as if the task had ended
    assert endpoint.notify_heartbeat() is False
    # And with the workaround the beat is taken
    with moto_workarounds.heartbeat_before_the_watch_is_taken():
        assert endpoint.notify_heartbeat() is True
        # But not once the task has its outcome
        endpoint.notify(CallbackOutcomeSuccess(callback_id="token", output="{}"))
        assert endpoint.notify_heartbeat() is False
