"""The synthesized stack, running on this machine: moto in-process plus the participant handlers.

`LocalCloud` deploys the cloud assembly that `cdk synth` (or `synthesize()`) wrote into moto through
CloudFormation, the same template `cdk deploy` sends to AWS. It then takes the place of the Lambda
service: for every SQS event source mapping in the stack it disables moto's own poller (which would
invoke through Docker) and polls the queue itself, calling the handler the template names (checked to be in the
code asset the template points at; imported from lambdas/, its source) with the function's environment
and the real SQS event shape. Receive
counts, visibility timeouts and the DLQ redrive are moto's SQS, so a failing message dead-letters as on
AWS. The state machine runs on moto's Step Functions interpreter.

Each execution environment's import runs inside `host_hooks.watching()`, so the environment knows every object of the
platform its module built (`ExecutionEnvironment.built`: saga participants, saga starters), whatever the module calls
them; `LocalCloud.built(kind)` lists them across the stack, and `environment_hooks` are told of each new environment.
Hosted code is reached that way, never by a module attribute's name.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from moto import mock_aws

import host_hooks
from local_runtime.eventbridge import LocalEventBridge
from local_runtime.lambda_isolation import metrics_per_thread, router_event_per_thread
from local_runtime.lambda_output import LAMBDA_THREAD_PREFIX, ensure_routed, lambda_output_to
from local_runtime.moto_workarounds import all_workarounds

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
STACK_NAME = "SagaStack"
BOOTSTRAP_QUALIFIER = "hnb659fds"  # the CDK default synthesizer's qualifier
BOOTSTRAP_VERSION = "30"
DEFAULT_TIME_SCALE = 0.02  # local clock: 1 s of SLA lasts 20 ms
POWERTOOLS_LAYER_PREFIX = "/aws/service/powertools/"
# Process-wide settings for in-process handlers: no X-Ray daemon here, and EMF lines would flood the demo.
LOCAL_LAMBDA_ENV = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOGGER_LOG_EVENT": "false"}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class DeployedFunction:
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    code_dir: Path
    dead_letter_queue_url: str | None = None  # where a failed asynchronous invocation's event goes
    environments: list[ExecutionEnvironment] = field(default_factory=list)
    invoke_lock: threading.Lock = field(default_factory=threading.Lock)

    def new_context(self) -> LocalLambdaContext:
        """The context of one invocation. Its deadline is the function's timeout in real seconds, not on the scaled
        local clock: nothing here stops an invocation at its deadline, and Powertools lets another delivery take a
        command's idempotency lock once the deadline has passed, so a scaled one would let a duplicate run the
        command again while a busy host still runs the first delivery."""
        return LocalLambdaContext(
            function_name=self.name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            deadline=time.monotonic() + self.timeout_seconds,
        )


@dataclass
class ExecutionEnvironment:
    """One warm Lambda environment: its own import of the handler module, and what that import built."""

    module: Any
    entry_point: Callable[[dict[str, Any], Any], Any]
    built: list[object] = field(default_factory=list)  # the platform's objects announced during the import (host_hooks)


@dataclass
class EventSourceMapping:
    function: DeployedFunction
    queue_url: str
    queue_arn: str
    batch_size: int
    reports_batch_item_failures: bool
    visibility_timeout_seconds: int


ReceiveHook = Callable[[Any, EventSourceMapping, list[dict[str, Any]]], list[dict[str, Any]]]
EnvironmentHook = Callable[[DeployedFunction, ExecutionEnvironment], None]
Built = TypeVar("Built")


@dataclass
class LocalLambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class LocalCloud:
    def __init__(
        self,
        assembly_dir: Path,
        *,
        time_scale: float = DEFAULT_TIME_SCALE,
        consumers_per_queue: int = 4,
        stack_name: str = STACK_NAME,
        deploy: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """`deploy=False` attaches to the stack already deployed (e.g. by `cdk deploy` to a local endpoint,
        see deploy_local.py) where this process's AWS clients point, instead of starting moto and deploying.
        `progress` is told what the start is doing, phase by phase (a terminal shows it while it waits)."""
        self._progress = progress or (lambda _: None)
        self.assembly_dir = Path(assembly_dir)
        self.deploy = deploy
        self.time_scale = time_scale
        self.consumers_per_queue = consumers_per_queue
        self.stack_name = stack_name
        self.outputs: dict[str, str] = {}
        self.functions: dict[str, DeployedFunction] = {}
        self.mappings: list[EventSourceMapping] = []
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._pollers: list[threading.Thread] = []
        # Called with (sqs client, mapping, received messages) before the handler gets them; returns the messages
        # to deliver. Where fault injection plays SQS's part (duplicates, poison), see saga_testkit/faults.py.
        self.receive_hooks: list[ReceiveHook] = []
        # Called with (function, environment) once a new execution environment has imported its module, before it
        # handles anything: where fault injection reaches the participants an environment built.
        self.environment_hooks: list[EnvironmentHook] = []
        self.lambda_log_path = Path(tempfile.mkstemp(prefix="saga-lambda-", suffix=".log")[1])
        self.account_id = ACCOUNT_ID
        self.region = REGION
        self.events = LocalEventBridge(self)

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._stack.enter_context(environment_variables({**FAKE_CREDENTIALS, **LOCAL_LAMBDA_ENV}))
            self.lambda_output = self._stack.enter_context(lambda_output_to(self.lambda_log_path))
            self._stack.enter_context(metrics_per_thread())  # each environment's invocation publishes its own
            self._stack.enter_context(router_event_per_thread())  # and resolves its own API request
            self.skipped_resource_types = self._stack.enter_context(skipped_resource_types())
            self._stack.enter_context(_quiet_fail_states())
            if self.deploy:
                self._stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
                self._stack.enter_context(all_workarounds(self.time_scale))
                self._deploy()
            else:
                self._attach()
            self._take_over_event_sources()
            self._load_handlers()
            self._start_pollers()
            self._progress("starting the EventBridge rules and schedules")
            self.events.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stop.set()
        self.events.stop()
        for poller in self._pollers:
            poller.join(timeout=5)
        self._pollers.clear()
        self._stack.close()

    # -- deployment --------------------------------------------------------------------------------------
    def _deploy(self) -> None:
        self.template = read_template(self.assembly_dir, self.stack_name)
        self._progress("publishing the assets to the bootstrap bucket")
        self._publish_assets()
        boto3.client("ssm").put_parameter(
            Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value=BOOTSTRAP_VERSION, Type="String"
        )
        provide_public_parameters(str(p.get("Default", "")) for p in self.template.get("Parameters", {}).values())
        cloudformation = boto3.client("cloudformation")
        self._progress(
            f"creating {self.stack_name} in moto's CloudFormation ({len(self.template['Resources'])} resources)"
        )
        cloudformation.create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(self.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        self._read_outputs(expected_status="CREATE_COMPLETE")

    def _attach(self) -> None:
        self.template = read_template(self.assembly_dir, self.stack_name)
        self.asset_dirs = {key: source for key, source, _ in self._file_assets() if source.is_dir()}
        self._read_outputs(expected_status=None)

    def _read_outputs(self, expected_status: str | None) -> None:
        stack = boto3.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"][0]
        if expected_status and stack["StackStatus"] != expected_status:
            raise RuntimeError(
                f"stack {self.stack_name} ended {stack['StackStatus']}: {stack.get('StackStatusReason')}"
            )
        self.outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}

    def _file_assets(self) -> Iterator[tuple[str, Path, str]]:
        """(object key, source path, bucket) of every file asset of the assembly."""
        for assets_file in self.assembly_dir.glob("*.assets.json"):
            for asset in json.loads(assets_file.read_text()).get("files", {}).values():
                source = self.assembly_dir / asset["source"]["path"]
                for destination in asset["destinations"].values():
                    yield destination["objectKey"], source, _resolve_pseudo(destination["bucketName"])

    def _publish_assets(self) -> None:
        """Upload file assets where the template expects them, as `cdk deploy` does (zip for directories)."""
        s3 = boto3.client("s3")
        self.asset_dirs: dict[str, Path] = {}
        for key, source, bucket in self._file_assets():
            _ensure_bucket(s3, bucket)
            if source.is_dir():
                s3.put_object(Bucket=bucket, Key=key, Body=_zip_directory(source))
                self.asset_dirs[key] = source
            else:
                s3.put_object(Bucket=bucket, Key=key, Body=source.read_bytes())

    def _take_over_event_sources(self) -> None:
        self._progress("taking over the SQS event sources from moto's Lambda")
        cloudformation, lambda_client, sqs = boto3.client("cloudformation"), boto3.client("lambda"), boto3.client("sqs")
        resources = cloudformation.list_stack_resources(StackName=self.stack_name)["StackResourceSummaries"]
        physical_ids = {resource["LogicalResourceId"]: resource["PhysicalResourceId"] for resource in resources}
        for resource in resources:
            if resource["ResourceType"] != "AWS::Lambda::Function":
                continue
            config = lambda_client.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
            properties = self.template["Resources"][resource["LogicalResourceId"]]["Properties"]
            code_key = properties["Code"]["S3Key"]
            # moto keeps no DeadLetterConfig from CloudFormation: the template names the queue (a GetAtt of its Arn).
            dead_letter_target = properties.get("DeadLetterConfig", {}).get("TargetArn", {}).get("Fn::GetAtt", [None])
            self.functions[config["FunctionArn"]] = DeployedFunction(
                name=config["FunctionName"],
                arn=config["FunctionArn"],
                handler=config["Handler"],
                environment=config.get("Environment", {}).get("Variables", {}),
                timeout_seconds=config["Timeout"],
                memory_mb=config["MemorySize"],
                code_dir=self.asset_dirs[_resolve_pseudo(code_key)],
                dead_letter_queue_url=physical_ids.get(dead_letter_target[0]) if dead_letter_target[0] else None,
            )
        for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
            function = self.functions.get(mapping["FunctionArn"])
            if function is None:
                continue
            # moto's own poller invokes through Docker; this process is the Lambda service instead.
            lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
            queue_arn = mapping["EventSourceArn"]
            queue_url = sqs.get_queue_url(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
            self.mappings.append(
                EventSourceMapping(
                    function=function,
                    queue_url=queue_url,
                    queue_arn=queue_arn,
                    batch_size=mapping.get("BatchSize", 10),
                    reports_batch_item_failures="ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
                    visibility_timeout_seconds=int(attributes["Attributes"]["VisibilityTimeout"]),
                )
            )

    def _load_handlers(self) -> None:
        """Start `consumers_per_queue` warm execution environments per function.

        Lambda runs one event at a time per environment, and handler modules rely on it (a Powertools
        BatchProcessor or IdempotencyConfig at module level holds per-invocation state). So each poller
        thread gets its own copy of the handler module, as each Lambda environment imports its own.
        """
        for number, function in enumerate(self.functions.values(), start=1):
            self._progress(
                f"warming Lambda execution environments: {function.handler} ({number}/{len(self.functions)})"
            )
            module_name = function.handler.rpartition(".")[0]
            # The handler runs from lambdas/ (on the import path, see local_runtime/__init__.py); the asset
            # is a filtered copy of it, so check the asset excludes did not drop the handler.
            if not (function.code_dir / f"{module_name.replace('.', '/')}.py").is_file():
                raise RuntimeError(
                    f"{function.handler} of {function.name} is not in its code asset {function.code_dir}"
                )
            # Queue consumers run concurrently; a function only EventBridge invokes needs one environment here.
            fed_by_queue = any(mapping.function is function for mapping in self.mappings)
            self.scale_out(function, self.consumers_per_queue if fed_by_queue else 1)
        _share_lambda_observability(next(iter(self.functions.values())).environment, self.lambda_output)

    def scale_out(self, function: DeployedFunction, count: int) -> None:
        """Warm execution environments of `function` until it has `count`, each with its own module import."""
        module_name, _, attribute = function.handler.rpartition(".")
        environment = {
            **function.environment,
            "SAGA_TIME_SCALE": str(self.time_scale),
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
        }
        while len(function.environments) < count:
            with environment_variables(environment), host_hooks.watching() as built:
                module = _fresh_module(module_name)
            warm = ExecutionEnvironment(module, getattr(module, attribute), built)
            for hook in self.environment_hooks:
                hook(function, warm)
            function.environments.append(warm)
            if self._pollers:  # already serving its queue: the new environment polls it too, as Lambda scales out
                for mapping in self.mappings:
                    if mapping.function is function:
                        self._start_poller(mapping, len(function.environments) - 1)

    # -- the Lambda service's SQS poller ----------------------------------------------------------------
    def _start_pollers(self) -> None:
        for mapping in self.mappings:
            for index in range(len(mapping.function.environments)):
                self._start_poller(mapping, index)

    def _start_poller(self, mapping: EventSourceMapping, index: int) -> None:
        poller = threading.Thread(
            target=self._poll,
            args=(mapping, mapping.function.environments[index]),
            name=f"{LAMBDA_THREAD_PREFIX}{mapping.function.name}-{index}",
            daemon=True,
        )
        poller.start()
        self._pollers.append(poller)

    def _poll(self, mapping: EventSourceMapping, environment: ExecutionEnvironment) -> None:
        sqs = boto3.client("sqs")
        visibility = max(1, math.ceil(mapping.visibility_timeout_seconds * self.time_scale))
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=mapping.queue_url,
                    MaxNumberOfMessages=mapping.batch_size,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=visibility,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as error:
                # Lambda's poller retries a failed receive; one that died would take a consumer away for good.
                # Seen: moto 5.2.5 races two receivers moving the same message to the DLQ (list.remove ValueError).
                print(json.dumps({"level": "WARNING", "function": mapping.function.name, "receive_error": repr(error)}))
                continue
            for hook in self.receive_hooks:
                messages = hook(sqs, mapping, messages)
            if messages:
                self._deliver(sqs, mapping, environment, messages)

    def _deliver(
        self, sqs: Any, mapping: EventSourceMapping, environment: ExecutionEnvironment, messages: list[dict[str, Any]]
    ) -> None:
        function = mapping.function
        event = {"Records": [_sqs_record(message, mapping.queue_arn) for message in messages]}
        context = function.new_context()
        ensure_routed()  # a progress display may have replaced sys.stdout since the last invocation
        try:
            response = environment.entry_point(event, context) or {}
        except Exception as error:
            # Where Lambda would log it (this thread's output goes to the Lambda log), formatted now:
            # Powertools reuses the exception list of its processor on the next batch.
            print(json.dumps({"level": "ERROR", "function": function.name, "invocation_error": str(error)}))
            return
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        if failed and not mapping.reports_batch_item_failures:
            return  # without ReportBatchItemFailures a reported failure means the whole batch failed
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )

    # -- asynchronous invocation (EventBridge targets) ----------------------------------------------------
    def invoke_async(self, function_arn: str, event: dict[str, Any]) -> bool:
        """Run the function on one event as an asynchronous invocation would; a failed one goes to its DLQ."""
        function = self.functions[function_arn]
        environment = function.environments[0]
        context = function.new_context()
        ensure_routed()
        try:
            with function.invoke_lock:  # one event at a time per environment, as Lambda runs them
                environment.entry_point(event, context)
        except Exception as error:
            print(json.dumps({"level": "ERROR", "function": function.name, "invocation_error": str(error)}))
            if function.dead_letter_queue_url:
                boto3.client("sqs").send_message(
                    QueueUrl=function.dead_letter_queue_url, MessageBody=json.dumps(event, default=str)
                )
            return False
        return True

    def function_with_handler(self, handler: str) -> DeployedFunction:
        (function,) = [function for function in self.functions.values() if function.handler == handler]
        return function

    # -- conveniences for the demo and the tests ----------------------------------------------------------
    def output(self, suffix: str) -> str:
        matches = [value for key, value in self.outputs.items() if key.endswith(suffix)]
        if len(matches) != 1:
            raise KeyError(f"expected one stack output ending in {suffix}, found {sorted(self.outputs)}")
        return matches[0]

    def built(self, kind: type[Built]) -> list[Built]:
        """Every object of `kind` the execution environments' imports built, across the stack's functions (each
        environment has its own: a participant per warm environment of each participant function)."""
        return [
            built
            for function in self.functions.values()
            for environment in function.environments
            for built in environment.built
            if isinstance(built, kind)
        ]


def read_template(assembly_dir: Path, stack_name: str = STACK_NAME) -> dict[str, Any]:
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    template_file = manifest["artifacts"][stack_name]["properties"]["templateFile"]
    return json.loads((assembly_dir / template_file).read_text())


def provide_public_parameters(names: Iterable[str]) -> None:
    """What AWS's public parameters answer in every region: the Powertools layer ARN among `names`."""
    lambda_client = boto3.client("lambda")
    for path in names:
        if not path.startswith(POWERTOOLS_LAYER_PREFIX):
            continue
        # The handlers run in this process with Powertools from requirements-lambda.txt; the layer is a stand-in.
        runtime = path.split("/")[-2]
        layer = lambda_client.publish_layer_version(
            LayerName=f"AWSLambdaPowertoolsPythonV3-{runtime.replace('.', '')}-x86_64",
            Content={"ZipFile": _zip_bytes({"python/README": "local stand-in for the Powertools layer\n"})},
            CompatibleRuntimes=[runtime],
        )
        _publish_aws_public_parameter(path, layer["LayerVersionArn"])


# Modules whose Powertools Logger and Metrics every function importing them shares here (one import per process).
SHARED_OBSERVABILITY_MODULES = ("participant_toolkit.observability", "saga_api.observability")


def _share_lambda_observability(environment: dict[str, str], stream: Any) -> None:
    """Powertools' Logger and Metrics in a shared module are process-wide objects created at its first import,
    possibly before any function's environment was set (a test importing it first: a Metrics without a namespace
    fails every flush with "Must contain a metric namespace"): give them the stack's namespace and the Lambda
    output stream."""
    importlib.import_module(SHARED_OBSERVABILITY_MODULES[0])
    namespace = environment.get("POWERTOOLS_METRICS_NAMESPACE", "Sagas")
    for name in SHARED_OBSERVABILITY_MODULES:
        module = sys.modules.get(name)
        if module is None:  # not imported by any function of this stack
            continue
        module.metrics.namespace = namespace
        for handler in module.logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)


def _fresh_module(name: str) -> Any:
    """Execute a module anew, outside sys.modules: what a new Lambda environment's import does."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"handler module {name} not found in the code asset")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _publish_aws_public_parameter(name: str, value: str) -> None:
    """AWS owns /aws/service/... parameters (PutParameter refuses them, on AWS and on moto): seed moto's store."""
    from moto.ssm.models import Parameter, ssm_backends

    ssm_backends[ACCOUNT_ID][REGION]._parameters[name].append(
        Parameter(
            account_id=ACCOUNT_ID,
            name=name,
            value=value,
            parameter_type="String",
            description="local stand-in for an AWS public parameter",
            allowed_pattern=None,
            keyid=None,
            last_modified_date=time.time(),
            version=1,
            data_type="text",
        )
    )


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _resolve_pseudo(text: str) -> str:
    return (
        text.replace("${AWS::AccountId}", ACCOUNT_ID)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::Partition}", "aws")
    )


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)


def _zip_directory(directory: Path) -> bytes:
    files = {
        str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()
    }
    return _zip_bytes(files)


def _zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@contextmanager
def _quiet_fail_states() -> Iterator[None]:
    """moto's ASL interpreter logs every Fail state as an error; a parked saga ends in one by design, and its
    execution history (what the tests, the demo and the operator CLI read) already records it."""
    interpreter = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")
    level = interpreter.level
    interpreter.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        interpreter.setLevel(level)


@contextmanager
def skipped_resource_types() -> Iterator[set[str]]:
    """Collect the resource types moto's CloudFormation skips (it warns for each resource, on every stack
    read) instead of flooding the console: queue policies and alarms are checked on the template instead."""
    skipped: set[str] = set()

    class Collect(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("No Moto CloudFormation support for "):
                skipped.add(str(record.args[0]) if record.args else record.getMessage().rsplit(" ", 1)[-1])
                return False
            return True

    moto_logger = logging.getLogger("moto")  # moto.cloudformation.parsing logs on it
    collect = Collect()
    moto_logger.addFilter(collect)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tried to parse .* but it's not supported by moto")
            # Powertools warns on every invocation that records no metric (e.g. a batch of only bad messages).
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            yield skipped
    finally:
        moto_logger.removeFilter(collect)


@contextmanager
def environment_variables(values: dict[str, str]) -> Iterator[None]:
    """These environment variables set inside the block (a function's environment while its module is imported, the
    local credentials), and what they were after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
