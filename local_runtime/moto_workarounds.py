"""Workarounds for moto defects that the local runtime hits, each small and named after its defect.

Pinned to moto 5.2.5 (requirements.txt). Each one has a test in tests/unit/test_moto_workarounds.py that
shows the defect without it and the fix with it; when moto fixes a defect, its test says so and the
workaround goes. Plus `scaled_time`, which is not a defect fix: it runs Step Functions' clock faster so
that tests never sleep real SLAs.
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import moto
from moto.core import responses as moto_responses
from moto.core.base_backend import BackendDict
from moto.core.utils import unix_time
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler
from moto.events import models as events_models
from moto.kms.models import Key as KmsKey
from moto.sqs.models import SQSBackend
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.common.path import result_path as result_path_module
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.heartbeat import Heartbeat
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import Timeout
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint
from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module
from moto.stepfunctions.parser.asl.utils import json_path as json_path_module
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

PINNED_MOTO = "5.2.5"


_INHERITED = object()


@contextmanager
def patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """`owner.name` is `replacement` inside the block (how every workaround here, and in cfn_server_workarounds.py,
    replaces a piece of moto), and what it was after."""
    # Classes: take the raw attribute (classmethod objects stay classmethods; inherited ones are deleted after).
    original = owner.__dict__.get(name, _INHERITED) if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


# --- Defect: a state machine created by CloudFormation lands in the backend that never executes, and
# its DefinitionSubstitutions are ignored, so `${Key}` placeholders reach the interpreter verbatim.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _substitute(properties: dict[str, Any]) -> None:
    substitutions = properties.get("DefinitionSubstitutions") or {}
    definition = properties.get("DefinitionString")
    if not definition:
        return

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in substitutions:
            raise ValueError(f"DefinitionSubstitutions has no value for ${{{key}}}")
        return str(substitutions[key])

    properties["DefinitionString"] = _PLACEHOLDER.sub(replace, definition)


@contextmanager
def cfn_state_machine_in_executing_backend() -> Iterator[None]:
    state_machine = sfn_models.StateMachine
    create = state_machine.create_from_cloudformation_json.__func__
    update = state_machine.update_from_cloudformation_json.__func__

    def create_substituted(cls: type, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
        _substitute(cloudformation_json.get("Properties", {}))
        return create(cls, resource_name, cloudformation_json, *args, **kwargs)

    def update_substituted(cls: type, original: Any, new_name: str, cloudformation_json: Any, *args: Any) -> Any:
        _substitute(cloudformation_json.get("Properties", {}))
        return update(cls, original, new_name, cloudformation_json, *args)

    with ExitStack() as stack:
        # The CloudFormation hooks look the backend up by this module-level name.
        stack.enter_context(patched(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends))
        stack.enter_context(patched(state_machine, "create_from_cloudformation_json", classmethod(create_substituted)))
        stack.enter_context(patched(state_machine, "update_from_cloudformation_json", classmethod(update_substituted)))
        yield


# --- Defect: a KMS key created by CloudFormation is always a symmetric encryption key: its KeySpec and KeyUsage are
# ignored, so an HMAC key (HMAC_256, GENERATE_VERIFY_MAC) refuses GenerateMac with InvalidKeyUsage.
@contextmanager
def cfn_kms_key_keeps_its_spec() -> Iterator[None]:
    create = KmsKey.create_from_cloudformation_json.__func__

    def create_with_spec(cls: type, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
        key = create(cls, resource_name, cloudformation_json, *args, **kwargs)
        properties = cloudformation_json.get("Properties", {})
        key.key_usage = properties.get("KeyUsage", key.key_usage)
        key.key_spec = properties.get("KeySpec", key.key_spec)
        return key

    with patched(KmsKey, "create_from_cloudformation_json", classmethod(create_with_spec)):
        yield


# --- Defect: `Ref` of an AWS::Events::EventBus resolves to moto's EventBus object instead of the bus's name (the model
# has no physical_resource_id), so a rule on a custom bus (`EventBusName: {Ref: Bus}`) fails to create, and so does
# every resource after it.
@contextmanager
def cfn_event_bus_ref_is_its_name() -> Iterator[None]:
    with patched(events_models.EventBus, "physical_resource_id", property(lambda bus: bus.name)):
        yield


# --- Defect: PutEvents stamps an event's `time` and `ingestion-time` anew for each rule of the bus, when it serves that
# rule (rules are served one after another), instead of once when the bus took the event. So the copies of one event
# disagree, and a later rule's copy can be stamped after a target of an earlier rule reacted to the event and put the
# next one on the bus: the stamps no longer say in which order the bus took events.
_events_stamped = threading.local()  # event id -> (time, ingestion-time), per PutEvents call of this thread


@contextmanager
def event_stamped_once_when_taken() -> Iterator[None]:
    put_events = events_models.EventsBackend.put_events
    send_to_targets = events_models.Rule.send_to_targets

    def put_events_stamped_once(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        outer = getattr(_events_stamped, "stamps", None)  # a rule whose target is a bus puts events from within
        _events_stamped.stamps = {}
        try:
            return put_events(self, events)
        finally:
            _events_stamped.stamps = outer

    def send_with_first_stamps(self: Any, original_event: Any, transform_input: bool = True) -> None:
        stamps = getattr(_events_stamped, "stamps", None)
        if stamps is not None:
            # The bus's first rule is served right after it took the event: its stamps are the event's.
            taken = stamps.setdefault(original_event["id"], (original_event["time"], original_event["ingestion-time"]))
            original_event["time"], original_event["ingestion-time"] = taken
        send_to_targets(self, original_event, transform_input)

    with (
        patched(events_models.EventsBackend, "put_events", put_events_stamped_once),
        patched(events_models.Rule, "send_to_targets", send_with_first_stamps),
    ):
        yield


# --- Defect: a Retry on a `.waitForTaskToken` task reuses the first attempt's token, whose outcome is
# already set, so the retried attempt "fails" again at once without any participant answering. AWS issues
# a new token per attempt.
@contextmanager
def fresh_task_token_per_retry() -> Iterator[None]:
    original: Callable[..., Any] = StateTaskServiceCallback._eval_execution

    def eval_execution(self: StateTaskServiceCallback, env: Any) -> None:
        retrying = env.states.context_object.context_object_data.get("State", {}).get("RetryCount", 0) > 0
        if (
            retrying
            and self._is_integration_pattern()
            and self.resource.condition == ResourceCondition.WaitForTaskToken
        ):
            env.callback_pool_manager.add(env.states.context_object.update_task_token())
        original(self, env)

    with patched(StateTaskServiceCallback, "_eval_execution", eval_execution):
        yield


# --- Defect: a callback that arrives before the task sets up its heartbeat watch (a fast participant
# answering while the task's thread is descheduled) is ignored: the task waits out HeartbeatSeconds and
# then fails with States.Timeout although its participant succeeded.
@contextmanager
def early_callback_seen_at_once() -> Iterator[None]:
    wait_with_heartbeat = StateTaskServiceCallback._wait_for_task_token_heartbeat

    def wait(self: StateTaskServiceCallback, env: Any, callback_endpoint: Any, heartbeat_endpoint: Any) -> Any:
        outcome = callback_endpoint.get_outcome()
        if outcome is not None:
            return outcome
        return wait_with_heartbeat(self, env, callback_endpoint, heartbeat_endpoint)

    with patched(StateTaskServiceCallback, "_wait_for_task_token_heartbeat", wait):
        yield


# --- Defect: a heartbeat that arrives after the task sent its command but before it set up its heartbeat watch finds
# no watch and is answered InvalidToken, as if the task had ended (a participant that beats on pick-up, as the toolkit
# does at a scaled clock, then sheds a live command and the task times out). AWS takes a heartbeat on any live token;
# the task's window starts moments later anyway, so the beat is taken and changes nothing.
@contextmanager
def heartbeat_before_the_watch_is_taken() -> Iterator[None]:
    notify_heartbeat = CallbackEndpoint.notify_heartbeat

    def notify(self: CallbackEndpoint) -> bool:
        return notify_heartbeat(self) or (self.get_outcome() is None and self.consumer_error is None)

    with patched(CallbackEndpoint, "notify_heartbeat", notify):
        yield


# --- Defect: `SendTaskFailure` drops `cause`, so a Catch sees an empty Cause and the saga record loses why.
@contextmanager
def send_task_failure_keeps_cause() -> Iterator[None]:
    def send_task_failure(self: sfn_responses.StepFunctionResponse) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return sfn_responses.EmptyResult()

    with patched(sfn_responses.StepFunctionResponse, "send_task_failure", send_task_failure):
        yield


# --- Defect: moto's DynamoDB is not thread-safe: TransactWriteItems deep-copies the tables (for rollback)
# while other threads write them ("dictionary changed size during iteration"). Serve one DynamoDB request
# at a time, as one table's partition would; other services keep running concurrently.
@contextmanager
def dynamodb_one_request_at_a_time() -> Iterator[None]:
    call_action = DynamoHandler.call_action
    lock = threading.RLock()

    def serialized(self: DynamoHandler) -> Any:
        with lock:
            return call_action(self)

    with patched(DynamoHandler, "call_action", serialized):
        yield


# --- Defect (performance): every backend lookup (`backends[account][region]`, several per API call) takes
# a global lock and scans the list of all ~150 BackendDicts with a Python-level __eq__; under the
# threads of many running executions that lookup was the largest single cost. Skip it once registered.
@contextmanager
def backend_lookup_without_global_lock() -> Iterator[None]:
    create = BackendDict._create_account_specific_backend

    def create_once(self: BackendDict, account_id: str) -> None:
        if self.__dict__.get("_registered") and dict.__contains__(self, account_id):
            return
        create(self, account_id)
        self.__dict__["_registered"] = True

    with patched(BackendDict, "_create_account_specific_backend", create_once):
        yield


# --- Defect (performance): every execution re-parses its definition with the ANTLR grammar (about a
# quarter of all CPU with many short executions). Parsed programs keep per-execution state in the
# environment, not in the components, so one parse per definition can serve every execution.
@contextmanager
def parse_each_definition_once() -> Iterator[None]:
    parse = ExecutionWorker._get_evaluation_entrypoint
    programs: dict[str, Any] = {}
    lock = threading.Lock()

    def cached_entrypoint(self: ExecutionWorker) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            if definition not in programs:
                programs[definition] = parse(self)
            return programs[definition]

    with patched(ExecutionWorker, "_get_evaluation_entrypoint", cached_entrypoint):
        yield


# --- Defect (performance): JSONPath expressions are compiled on every evaluation, and jsonpath_ng builds
# a new yacc parser each time. Compiled paths are immutable: compile each expression once.
@contextmanager
def compile_each_json_path_once() -> Iterator[None]:
    with ExitStack() as stack:
        for module in (json_path_module, result_path_module):
            stack.enter_context(patched(module, "parse", functools.lru_cache(maxsize=4096)(module.parse)))
        yield


# --- Defect: StartExecution is not atomic: it looks for an execution of that name, then (after deep-copying
# the state machine) adds the new one, so concurrent calls with one name can each create an execution. AWS
# creates one (names are unique). Check and add under one lock.
@contextmanager
def start_execution_once_per_name() -> Iterator[None]:
    start_execution = StepFunctionsParserBackend.start_execution
    lock = threading.Lock()

    def atomic(self: StepFunctionsParserBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return start_execution(self, *args, **kwargs)

    with patched(StepFunctionsParserBackend, "start_execution", atomic):
        yield


# --- Defect (performance): ReceiveMessage checks each message's retention by asking for the queue's attributes,
# and moto computes every attribute for that, counting all the queue's messages (each count calls the clock per
# message): one receive costs O(messages in the queue) per message returned. Read the one attribute it needs.
@contextmanager
def retention_check_reads_one_attribute() -> Iterator[None]:
    def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    with patched(SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period):
        yield


# --- Defect (performance): each state that calls a service (sqs:sendMessage, dynamodb:updateItem, ...) builds a new
# boto3 client for the call, loading the service model each time. A client serves any thread: build one per
# region, service and endpoint, and reuse it while the workarounds are on.
@contextmanager
def service_clients_built_once() -> Iterator[None]:
    import sys

    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: F401 - users of it
        state_task_service_dynamodb,
        state_task_service_events,
        state_task_service_sqs,
    )

    build = boto_client_module.boto_client_for
    clients: dict[tuple[str, str, bool, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, botocore_stubber.enabled, str(moto_server_port()))
        with lock:
            if key not in clients:
                clients[key] = build(region, service, state_credentials)
            return clients[key]

    # Each user imported the function by name: patch it where it is used.
    users = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is build
    ]
    with ExitStack() as stack:
        for module in users:
            stack.enter_context(patched(module, "boto_client_for", boto_client_for))
        yield


# --- Defect (performance): every request lists its response class's methods with `inspect.getmembers` to find the
# action's handler, and every UpdateItem parses its UpdateExpression twice (request check, then update). A class's
# method names do not change while it serves; a parsed expression is only read (the validator works on a deep copy).
# List each class once, parse each expression once.
@contextmanager
def request_dispatch_work_done_once() -> Iterator[None]:
    method_names = functools.lru_cache(maxsize=256)(moto_responses.method_names_from_class)
    parse_expression = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__)

    with ExitStack() as stack:
        stack.enter_context(patched(moto_responses, "method_names_from_class", method_names))
        stack.enter_context(patched(UpdateExpressionParser, "make", classmethod(parse_expression)))
        yield


# --- Defect (performance): TransactWriteItems deep-copies every table it writes (once per operation) to roll back
# on failure: each transaction costs O(items in the table), so a run's transactions cost O(n^2). An operation only
# changes the item under its key (an update mutates that item in place; a put or delete replaces or removes it):
# the rollback copy needs the table's item index and deep copies of those items only.
_transaction_keys = threading.local()


def _rollback_copy(table: Table, keys: list[tuple[Any, Any]]) -> Table:
    snapshot = copy.copy(table)
    snapshot.items = defaultdict(dict)
    for hash_value, stored in table.items.items():
        snapshot.items[hash_value] = dict(stored) if table.range_key_attr is not None else stored
    for hash_value, range_value in keys:
        if hash_value not in table.items:
            continue
        if range_value is None:
            snapshot.items[hash_value] = copy.deepcopy(table.items[hash_value])
        elif range_value in table.items[hash_value]:
            snapshot.items[hash_value][range_value] = copy.deepcopy(table.items[hash_value][range_value])
    return snapshot


class _CopyForRollback:
    """Stands in for the `copy` module in moto's DynamoDB backend: a table copied during a transaction is copied
    by `_rollback_copy`; everything else as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        keys = getattr(_transaction_keys, "by_table", None)
        if keys is not None and isinstance(value, Table):
            # moto copies a table once per operation on it, before any write: one copy serves them all.
            copies = _transaction_keys.copies
            if value.name not in copies:
                copies[value.name] = _rollback_copy(value, keys.get(value.name, []))
            return copies[value.name]
        return copy.deepcopy(value, memo)


def _keys_written(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    """(hash, range) of each operation's item, by table; what moto itself takes as the key of each operation."""
    keys: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for entry in transact_items:
        for operation, request in entry.items():
            table = backend.tables.get(request.get("TableName"))
            if table is None:
                continue
            attributes = request.get("Item", {}) if operation == "Put" else request.get("Key", {})
            if table.hash_key_attr not in attributes:
                continue
            range_attribute = table.range_key_attr
            range_value = DynamoType(attributes[range_attribute]) if range_attribute in attributes else None
            keys[table.name].append((DynamoType(attributes[table.hash_key_attr]), range_value))
    return keys


@contextmanager
def transaction_rollback_copies_written_items() -> Iterator[None]:
    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        _transaction_keys.by_table, _transaction_keys.copies = _keys_written(self, transact_items), {}
        try:
            return transact(self, transact_items)
        finally:
            _transaction_keys.by_table, _transaction_keys.copies = None, {}

    with ExitStack() as stack:
        stack.enter_context(patched(dynamodb_models, "copy", _CopyForRollback()))
        stack.enter_context(patched(DynamoDBBackend, "transact_write_items", transact_write_items))
        yield


# A scaled task window is never shorter than these (local seconds). On a busy 2-core host a command can wait over
# 6 s between its task's send and a participant's answer or first beat (the fault matrix's sagas beside the suite's
# other processes, on a slow CI runner), so a 20 s heartbeat or a 60 s timeout at a 0.1 clock would time healthy
# steps out. The timeout's floor is the longer: a task whose heartbeat window closes first still times out then.
SHORTEST_SCALED_HEARTBEAT_SECONDS = 8.0
SHORTEST_SCALED_TIMEOUT_SECONDS = 10.0


# --- Not a defect: run Step Functions' clock `factor` times real time (TimeoutSeconds, HeartbeatSeconds,
# Retry intervals). 0.02 turns a 90 s task timeout into 1.8 s; a window stays at least its floor, or its own unscaled
# length if that is shorter (a task whose timeout comes first still times out then).
@contextmanager
def scaled_time(
    factor: float,
    *,
    shortest_heartbeat_seconds: float = SHORTEST_SCALED_HEARTBEAT_SECONDS,
    shortest_timeout_seconds: float = SHORTEST_SCALED_TIMEOUT_SECONDS,
) -> Iterator[None]:
    if not 0 < factor <= 1:
        raise ValueError(f"time scale must be in (0, 1], got {factor}")
    timeout_body, heartbeat_body = Timeout._eval_body, Heartbeat._eval_body
    real_time = retrier_decl.time

    def scale_pushed_seconds(original: Callable[..., None], *, at_least: float = 0.0) -> Callable[..., None]:
        def eval_body(self: Any, env: Any) -> None:
            original(self, env)
            seconds = env.stack.pop()
            env.stack.append(max(seconds * factor, min(seconds, at_least)))

        return eval_body

    class ScaledSleep:
        @staticmethod
        def sleep(seconds: float) -> None:
            real_time.sleep(seconds * factor)

    with ExitStack() as stack:
        stack.enter_context(
            patched(Timeout, "_eval_body", scale_pushed_seconds(timeout_body, at_least=shortest_timeout_seconds))
        )
        stack.enter_context(
            patched(Heartbeat, "_eval_body", scale_pushed_seconds(heartbeat_body, at_least=shortest_heartbeat_seconds))
        )
        stack.enter_context(patched(retrier_decl, "time", ScaledSleep))
        yield


# --- Defect: SendTaskSuccess/Failure/Heartbeat look for the token in every RUNNING execution, including one whose
# worker thread has not built its environment yet (an execution started a moment ago): `env` is None there, and the
# callback fails with AttributeError (a 500) whatever execution it was for. A participant's answer at the moment
# another saga starts then fails, and is redelivered as if it had never been given.
@contextmanager
def callbacks_skip_executions_still_starting() -> Iterator[None]:
    original = StepFunctionsParserBackend._get_executions

    def get_executions(self: StepFunctionsParserBackend, execution_status: Any = None) -> list[Any]:
        executions = original(self, execution_status)
        if execution_status != ExecutionStatus.RUNNING:
            return executions
        # (only the callbacks ask for RUNNING ones; a starting execution cannot hold the token yet)
        return [each for each in executions if each.exec_worker is not None and each.exec_worker.env is not None]

    with patched(StepFunctionsParserBackend, "_get_executions", get_executions):
        yield


@contextmanager
def all_workarounds(time_scale: float = 1.0) -> Iterator[None]:
    if moto.__version__ != PINNED_MOTO:
        raise RuntimeError(f"moto {moto.__version__} installed; these workarounds are for {PINNED_MOTO}: re-check them")
    with ExitStack() as stack:
        stack.enter_context(cfn_state_machine_in_executing_backend())
        stack.enter_context(cfn_kms_key_keeps_its_spec())
        stack.enter_context(cfn_event_bus_ref_is_its_name())
        stack.enter_context(event_stamped_once_when_taken())
        stack.enter_context(fresh_task_token_per_retry())
        stack.enter_context(send_task_failure_keeps_cause())
        stack.enter_context(early_callback_seen_at_once())
        stack.enter_context(heartbeat_before_the_watch_is_taken())
        stack.enter_context(dynamodb_one_request_at_a_time())
        stack.enter_context(backend_lookup_without_global_lock())
        stack.enter_context(parse_each_definition_once())
        stack.enter_context(compile_each_json_path_once())
        stack.enter_context(start_execution_once_per_name())
        stack.enter_context(retention_check_reads_one_attribute())
        stack.enter_context(service_clients_built_once())
        stack.enter_context(request_dispatch_work_done_once())
        stack.enter_context(transaction_rollback_copies_written_items())
        stack.enter_context(callbacks_skip_executions_still_starting())
        if time_scale != 1.0:
            stack.enter_context(scaled_time(time_scale))
        yield
