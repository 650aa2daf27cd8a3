"""A Lambda function the way every function of the stack is built: the shared code asset and Powertools layer,
active tracing, its own log group with retention, and its own role that may write only there."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants, nag

RUNTIME = next(runtime for runtime in lambda_.Runtime.ALL if runtime.name == constants.LAMBDA_RUNTIME)
ARCHITECTURE = lambda_.Architecture.X86_64 if constants.LAMBDA_ARCHITECTURE == "x86_64" else lambda_.Architecture.ARM_64
LOG_RETENTION = logs.RetentionDays[constants.LOG_RETENTION]
LATEST_RUNTIME_REASON = (
    f"Deploy what is tested: the functions run on {constants.LAMBDA_RUNTIME}, the Python the whole test suite runs "
    "on; no newer CPython installs on the development and CI machines (PyPI ships none, Debian ships 3.11), so a "
    "newer runtime would run code no test has run. infra/constants.py LAMBDA_RUNTIME."
)


@dataclass(frozen=True)
class SharedResources:
    """What every function uses: the shared tables, the code asset and the Powertools layer."""

    saga_table: dynamodb.Table
    idempotency_table: dynamodb.ITable
    code: lambda_.Code
    powertools_layer: lambda_.ILayerVersion


def function_log_level(requested: object) -> str:
    """LOG_LEVEL of every function: the `logLevel` context value if given (checked), else the default."""
    if requested is None:
        return constants.LOG_LEVEL
    level = str(requested).upper()
    if level not in constants.LOG_LEVELS:
        raise ValueError(
            f"context '{constants.LOG_LEVEL_CONTEXT}': {requested!r} is not one of {', '.join(constants.LOG_LEVELS)}"
        )
    return level


def powertools_function(
    scope: Construct,
    name: str,
    *,
    handler: str,
    shared: SharedResources,
    environment: dict[str, str],
    timeout_seconds: int = constants.FUNCTION_TIMEOUT_SECONDS,
    dead_letter_queue: sqs.IQueue | None = None,
) -> lambda_.Function:
    """`name` prefixes the ids of the function's log group and role in `scope` (the function's own id is
    `name`, or "Function" when `name` is empty, for a construct that holds one function)."""
    log_group = logs.LogGroup(scope, f"{name}LogGroup", retention=LOG_RETENTION)
    # Own role instead of the L2 default, which attaches the AWS managed AWSLambdaBasicExecutionRole
    # (logs on every log group); this one may write to its own log group only.
    role = iam.Role(scope, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        name or "Function",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=shared.code,
        layers=[shared.powertools_layer],
        role=role,
        timeout=Duration.seconds(timeout_seconds),
        memory_size=constants.FUNCTION_MEMORY_MB,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        dead_letter_queue=dead_letter_queue,
        environment={
            "LOG_LEVEL": function_log_level(scope.node.try_get_context(constants.LOG_LEVEL_CONTEXT)),
            **environment,
        },
    )
    nag.acknowledge(function, "AwsSolutions-L1", LATEST_RUNTIME_REASON)
    nag.acknowledge(
        role,
        nag.WILDCARD_RESOURCE,
        "Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords, which X-Ray only grants "
        "on Resource '*' (no resource-level permissions).",
    )
    return function
