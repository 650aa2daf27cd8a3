"""The API front door: API Gateway REST API (IAM auth, request model, throttling, logs) -> the saga API Lambda,
plus the scheduled reconciler that starts (or fails) sagas left STARTED when StartExecution failed."""

from __future__ import annotations

import sys
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants, nag
from infra.constructs.powertools_function import LOG_RETENTION, SharedResources, powertools_function
from statemachines import SagaDefinition

# The request model lives with the handler (one source of truth): read it from the Lambda code root.
if str(constants.LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(constants.LAMBDAS_DIR))
from saga_api.models import request_json_schema

API_HANDLER = "saga_api.handlers.handle_request"
RECONCILER_HANDLER = "saga_api.handlers.reconcile_orphans"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# API Gateway's own 400 for a body its validator refused: say which rule failed, not only "Invalid request body".
BAD_REQUEST_BODY_TEMPLATE = (
    '{"message": "$context.error.messageString", '
    '"errors": [{"field": "body", "problem": "$util.escapeJavaScript($context.error.validationErrorString)"}]}'
)
_SCHEMA_KEYS = {  # JSON Schema keyword -> aws_apigateway.JsonSchema argument
    "additionalProperties": "additional_properties",
    "maxItems": "max_items",
    "minItems": "min_items",
    "maxLength": "max_length",
    "minLength": "min_length",
    "maximum": "maximum",
    "minimum": "minimum",
    "pattern": "pattern",
    "required": "required",
    "title": "title",
    "description": "description",
    "enum": "enum",
}


def json_schema(node: dict[str, Any]) -> apigw.JsonSchema:
    """A JSON Schema (draft 4) dict as the CDK's typed JsonSchema; an unknown keyword is an error, not dropped."""
    arguments: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$schema":
            arguments["schema"] = apigw.JsonSchemaVersion.DRAFT4
        elif key == "type":
            arguments["type"] = apigw.JsonSchemaType[value.upper()]
        elif key == "properties":
            arguments["properties"] = {name: json_schema(child) for name, child in value.items()}
        elif key == "items":
            arguments["items"] = json_schema(value)
        elif key in _SCHEMA_KEYS:
            arguments[_SCHEMA_KEYS[key]] = json_schema(value) if isinstance(value, dict) else value
        else:
            raise ValueError(f"JSON Schema keyword {key!r} has no API Gateway model equivalent here")
    return apigw.JsonSchema(**arguments)


class SagaApi(Construct):
    """POST /orders, GET /orders/{id}, GET /orders?status=: every method IAM-authorised and validated."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: SagaDefinition,
        state_machine: sfn.IStateMachine,
        shared: SharedResources,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "SAGA_TABLE_NAME": shared.saga_table.table_name,
            "STATE_MACHINE_ARN": state_machine.state_machine_arn,
            "SAGA_TYPE": definition.name,
            "SAGA_STEPS": ",".join(step.name for step in definition.steps),
            "MAX_REQUEST_BYTES": str(constants.MAX_ORDER_REQUEST_BYTES),
            "START_GRACE_SECONDS": str(constants.START_GRACE_SECONDS),
            "START_GIVE_UP_SECONDS": str(constants.START_GIVE_UP_SECONDS),
            "POWERTOOLS_SERVICE_NAME": constants.API_FUNCTION_SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": constants.POWERTOOLS_METRICS_NAMESPACE,
        }
        self.function = _function(self, "Handler", API_HANDLER, environment, shared)
        self.reconciler = _function(self, "Reconciler", RECONCILER_HANDLER, environment, shared)
        for function in (self.function, self.reconciler):
            state_machine.grant_start_execution(function)
        # The API creates records, reads one, lists by status (Query on the index), and records the execution.
        shared.saga_table.grant(
            self.function, "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"
        )
        # The reconciler lists STARTED sagas (Query on the index) and records a start or a failure.
        shared.saga_table.grant(self.reconciler, "dynamodb:Query", "dynamodb:UpdateItem")
        events.Rule(
            self,
            "ReconcileSchedule",
            schedule=events.Schedule.rate(Duration.minutes(constants.RECONCILE_EVERY_MINUTES)),
            targets=[targets.LambdaFunction(self.reconciler, retry_attempts=2)],
        )

        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        self.api = apigw.RestApi(
            self,
            "Api",
            description=f"Start and watch {definition.name} sagas",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,  # the account-level role API Gateway needs to write execution logs
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType[constants.API_AUTHORIZATION]
            ),
            deploy_options=apigw.StageOptions(
                stage_name=constants.API_STAGE,
                throttling_rate_limit=constants.API_THROTTLING_RATE_LIMIT,
                throttling_burst_limit=constants.API_THROTTLING_BURST_LIMIT,
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # full request logging would write customers' details and card tokens
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        # The L2 adds an "Endpoint" output with a generated name; the stack outputs the URL under a constant name.
        self.api.node.try_remove_child("Endpoint")
        self.request_model = self.api.add_model(
            "OrderRequestModel",
            content_type="application/json",
            model_name=constants.API_REQUEST_MODEL,
            schema=json_schema(request_json_schema()),
        )
        validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={"application/json": BAD_REQUEST_BODY_TEMPLATE},
        )
        integration = apigw.LambdaIntegration(self.function)
        orders = self.api.root.add_resource("orders")
        orders.add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={"application/json": self.request_model},
            request_parameters={f"method.request.header.{IDEMPOTENCY_KEY_HEADER}": False},
        )
        orders.add_method(
            "GET",
            integration,
            request_validator=validator,
            request_parameters={
                "method.request.querystring.status": True,
                "method.request.querystring.limit": False,
                "method.request.querystring.next_token": False,
            },
        )
        orders.add_resource("{id}").add_method(
            "GET", integration, request_validator=validator, request_parameters={"method.request.path.id": True}
        )

        _acknowledge(self)


def _function(
    scope: Construct, construct_id: str, handler: str, environment: dict[str, str], shared: SharedResources
) -> lambda_.Function:
    function = powertools_function(scope, construct_id, handler=handler, shared=shared, environment=environment)
    nag.acknowledge(
        function.role,
        nag.table_index_wildcard(shared.saga_table),
        "Listing sagas by status is a Query on the saga table's by_status index, which needs the index ARN; "
        "the L2 grant scopes it to '<saga table ARN>/index/*', this table's own indexes only.",
    )
    return function


def _acknowledge(api: SagaApi) -> None:
    nag.acknowledge(
        api.api,
        "AwsSolutions-COG4",
        f"Every method uses {constants.API_AUTHORIZATION} authorisation (SigV4-signed requests, callers are IAM "
        "principals of the shop's backend), chosen in infra/constants.py; Cognito user pools are not used.",
    )
    nag.acknowledge(
        api.api,
        "AwsSolutions-APIG3",
        "No WAF web ACL: the API is IAM-authorised only, so anonymous traffic is refused at the gateway, and "
        "stage throttling caps what a (compromised) principal can send; add a regional web ACL if it goes public.",
    )
    nag.acknowledge(
        api.api,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        "API Gateway writes execution logs through one account-wide role; AWS documents this managed policy for "
        "it, and it only lets API Gateway create and write its own log groups.",
    )
