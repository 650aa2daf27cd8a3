"""The API front door of every saga: one API Gateway REST API (IAM auth, TLS 1.2+, a request model per saga,
throttling, logs, optionally a resource policy naming who may call) -> one saga API Lambda serving every saga's routes,
plus the scheduled reconciler that starts (or fails) sagas left STARTED when StartExecution failed.

Each saga gets `POST /<path>`, `GET /<path>` (by status) and `GET /<path>/{id}`, its path from its definition's
`api.path` (default: its name in kebab-case), its request model generated from its input model (`Input` in
lambdas/sagas/<saga in snake_case>.py). The functions' environment lists the sagas in one setting, `SAGAS`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants, nag
from infra.constructs.admission import AdmissionControl
from infra.constructs.choreography import grant_put_saga_events
from infra.constructs.powertools_function import LOG_RETENTION, SharedResources, powertools_function
from infra.constructs.saga_store import grant_saga_items, grant_status_query
from statemachines import SagaDefinition
from statemachines.inputs import load_input_model

# The request model lives with the handler (one source of truth): read it from the Lambda code root.
if str(constants.LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(constants.LAMBDAS_DIR))
from saga_api.models import request_json_schema
from saga_records.events import saga_source

API_HANDLER = "saga_api.handlers.handle_request"
RECONCILER_HANDLER = "saga_api.handlers.reconcile_orphans"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
LAMBDA_ENVIRONMENT_LIMIT_BYTES = constants.LAMBDA_ENVIRONMENT_LIMIT_BYTES
# In the SAGAS setting a reference counts at the longest value it can take on AWS: a state machine ARN of an
# 80-character name in the longest partition and region.
LONGEST_REFERENCE = len("arn:aws-iso-b:states:ap-southeast-5:123456789012:stateMachine:") + 80
# ... and a choreographed saga's command queues parameter, its name at its longest: a 128-character stack name and an
# 80-character saga name.
LONGEST_QUEUES_PARAMETER = len(constants.ADMISSION_QUEUES_PARAMETER.format(stack="x" * 128, saga="x" * 80))
# API Gateway's own 400 for a body its validator refused: say which rule failed, not only "Invalid request body".
BAD_REQUEST_BODY_TEMPLATE = (
    '{"message": "$context.error.messageString", '
    '"errors": [{"field": "body", "problem": "$util.escapeJavaScript($context.error.validationErrorString)"}]}'
)
# One JSON line per request: who called (IAM caller and principal ARN, source IP), what (method, path, status), how
# long (the whole request and the Lambda integration) and why it failed (the gateway's and the integration's error).
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "userArn": "$context.identity.userArn",
    "accountId": "$context.identity.accountId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integration.latency",
    "integrationStatus": "$context.integration.status",
    "errorMessage": "$context.error.message",
    "errorType": "$context.error.responseType",
    "integrationError": "$context.integration.error",
    "tlsVersion": "$context.tlsVersion",
}
_ACCOUNT = re.compile(r"^\d{12}$")
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(root|(role|user)/[\w+=,.@/-]+)$")


@dataclass(frozen=True)
class AllowedCallers:
    """Who the `apiAllowedPrincipals` context value lets call the API: IAM principal ARNs and account ids."""

    principal_arns: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, value: object) -> AllowedCallers | None:
        """None when the value is absent (no resource policy); an entry that is neither an error naming the key."""
        if value is None:
            return None
        callers = cls()
        for item in (part.strip() for part in str(value).split(",")):
            if _ACCOUNT.match(item):
                callers.accounts.append(item)
            elif _IAM_PRINCIPAL_ARN.match(item):
                callers.principal_arns.append(item)
            else:
                raise ValueError(
                    f"context '{constants.API_ALLOWED_PRINCIPALS_CONTEXT}': {item!r} is neither a 12-digit account id "
                    "nor an IAM role, user or root ARN"
                )
        return callers

    def policy(self) -> iam.PolicyDocument:
        """Allow the named callers; deny everyone else, same account included (with IAM authorisation a caller
        of the API's own account is let in by its identity policy alone unless a Deny says otherwise)."""
        invoke = {"actions": ["execute-api:Invoke"], "resources": ["execute-api:/*"]}
        principals: list[iam.IPrincipal] = [iam.ArnPrincipal(arn) for arn in self.principal_arns]
        principals += [iam.AccountPrincipal(account) for account in self.accounts]
        not_named: dict[str, Any] = {}
        if self.principal_arns:
            not_named["ArnNotLike"] = {"aws:PrincipalArn": self.principal_arns}
        if self.accounts:
            not_named["StringNotEquals"] = {"aws:PrincipalAccount": self.accounts}
        return iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(sid="NamedCallers", principals=principals, **invoke),
                iam.PolicyStatement(
                    sid="NobodyElse",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    conditions=not_named,
                    **invoke,
                ),
            ]
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


@dataclass(frozen=True)
class SagaRoute:
    """One saga behind the API: its definition, what starts it (its state machine, or under choreography the saga bus),
    the queues of its participant commands (what its admission control reads) and its input model's JSON schema
    (draft 4)."""

    definition: SagaDefinition
    state_machine: sfn.IStateMachine | None
    request_schema: dict[str, Any]
    command_queues: tuple[sqs.IQueue, ...] = ()
    bus: events.IEventBus | None = None

    @classmethod
    def of(
        cls,
        definition: SagaDefinition,
        state_machine: sfn.IStateMachine | None,
        *,
        code_root: Path,
        command_queues: Sequence[sqs.IQueue] = (),
        bus: events.IEventBus | None = None,
    ) -> SagaRoute:
        """The route of a saga whose input model is in `code_root` (lambdas/ of the stack's code asset)."""
        model = load_input_model(code_root, definition)
        schema = request_json_schema(model, title=f"{definition.name}Input")
        return cls(definition, state_machine, schema, tuple(command_queues), bus)

    @property
    def starter_reference(self) -> str:
        """The state machine's ARN, or the bus's name."""
        if self.state_machine is not None:
            return self.state_machine.state_machine_arn
        assert self.bus is not None, f"{self.definition.name}: a choreographed saga's route needs the saga bus"
        return self.bus.event_bus_name

    def grant_start(self, grantee: iam.IGrantable) -> None:
        if self.state_machine is not None:
            self.state_machine.grant_start_execution(grantee)
        else:
            assert self.bus is not None
            grant_put_saga_events(self.bus, grantee, [saga_source(self.definition.name)])

    @property
    def choreographed(self) -> bool:
        return self.definition.pattern == "choreography"

    def setting(self, reference: str, queues_parameter: str | None = None) -> dict[str, Any]:
        """Its entry in the functions' SAGAS setting (lambdas/saga_api/settings.py reads it); a choreographed saga's
        names the parameter that lists its command queues."""
        definition = self.definition
        if self.state_machine is not None:
            starts = {"state_machine_arn": reference}
        else:
            starts = {"bus_name": reference}
            if queues_parameter is not None:
                starts["command_queues_parameter"] = queues_parameter
        return {
            "saga_type": definition.name,
            "path": definition.route_path,
            **starts,
            "steps": [step.name for step in definition.steps],
            "id_field": definition.id_field,
            "input_module": definition.input_module,
            "admission": vars(definition.admission_limits),
        }


def sagas_setting_size(sagas: Sequence[SagaRoute]) -> int:
    """Bytes the SAGAS setting takes once deployed, each state machine ARN at its longest."""
    longest_parameter = "x" * LONGEST_QUEUES_PARAMETER
    return len("SAGAS") + len(
        json.dumps(
            [saga.setting("x" * LONGEST_REFERENCE, longest_parameter if saga.choreographed else None) for saga in sagas]
        )
    )


class SagaApi(Construct):
    """Per saga POST /<path>, GET /<path>/{id}, GET /<path>?status=: every method IAM-authorised and validated."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sagas: Sequence[SagaRoute],
        shared: SharedResources,
    ) -> None:
        super().__init__(scope, construct_id)
        # Everything but SAGAS is short and fixed; SAGAS grows with the sagas and their steps.
        if sagas_setting_size(sagas) + constants.API_OTHER_VARIABLES_BYTES > LAMBDA_ENVIRONMENT_LIMIT_BYTES:
            raise ValueError(
                f"the API's SAGAS setting needs up to {sagas_setting_size(sagas)} bytes for sagas "
                f"{', '.join(saga.definition.name for saga in sagas)}: Lambda allows "
                f"{LAMBDA_ENVIRONMENT_LIMIT_BYTES} bytes of environment in all (shorter step names, or fewer sagas "
                "per stack)"
            )
        # The API function's own: the start-rate buckets, and (for its backlog check) each choreographed saga's
        # command queues.
        self.admission = AdmissionControl(self, "Admission")
        queue_parameters = {
            saga.definition.name: self.admission.publish_command_queues(saga.definition.name, saga.command_queues)
            for saga in sagas
            if saga.choreographed
        }
        environment = {
            "SAGA_TABLE_NAME": shared.saga_table.table_name,
            "SAGAS": Stack.of(self).to_json_string(
                [
                    saga.setting(
                        saga.starter_reference,
                        queue_parameters[saga.definition.name].parameter_name if saga.choreographed else None,
                    )
                    for saga in sagas
                ]
            ),
            "MAX_REQUEST_BYTES": str(constants.MAX_REQUEST_BYTES),
            "START_GRACE_SECONDS": str(constants.START_GRACE_SECONDS),
            "START_GIVE_UP_SECONDS": str(constants.START_GIVE_UP_SECONDS),
            "POWERTOOLS_SERVICE_NAME": constants.API_FUNCTION_SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": constants.POWERTOOLS_METRICS_NAMESPACE,
        }
        # ... and the key of its listing page tokens.
        self.page_token_key = kms.Key(
            self,
            "PageTokenKey",
            description="Makes and checks the saga API's listing page tokens (HMAC); the key never leaves KMS",
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            # Outstanding page tokens are all this key protects: a listing just starts over without them.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The handler answers within API Gateway's integration timeout; the reconciler runs on a schedule.
        self.function = powertools_function(
            self,
            "Handler",
            handler=API_HANDLER,
            shared=shared,
            environment={
                **environment,
                "ADMISSION_TABLE_NAME": self.admission.table.table_name,
                "PAGE_TOKEN_KEY_ID": self.page_token_key.key_arn,
            },
            timeout_seconds=constants.API_FUNCTION_TIMEOUT_SECONDS,
        )
        self.admission.grant_admitting(
            self.function,
            [saga.state_machine for saga in sagas if saga.state_machine is not None],
            [queue for saga in sagas for queue in saga.command_queues],
            list(queue_parameters.values()),
        )
        self.page_token_key.grant(self.function, "kms:GenerateMac", "kms:VerifyMac")
        self.reconciler = powertools_function(
            self,
            "Reconciler",
            handler=RECONCILER_HANDLER,
            shared=shared,
            environment=environment,
            timeout_seconds=constants.OPERATIONS_FUNCTION_TIMEOUT_SECONDS,
        )
        for function in (self.function, self.reconciler):
            for saga in sagas:  # the API starts every saga; the reconciler starts every saga left unstarted
                saga.grant_start(function)
            grant_status_query(shared.saga_table, function)  # lists sagas by status
        # The API creates records, reads one, and records the execution.
        grant_saga_items(
            shared.saga_table, self.function, "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"
        )
        # The reconciler records a start or a failure.
        grant_saga_items(shared.saga_table, self.reconciler, "dynamodb:UpdateItem")
        events.Rule(
            self,
            "ReconcileSchedule",
            schedule=events.Schedule.rate(Duration.minutes(constants.RECONCILE_EVERY_MINUTES)),
            targets=[targets.LambdaFunction(self.reconciler, retry_attempts=2)],
        )

        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        self.allowed_callers = AllowedCallers.parse(self.node.try_get_context(constants.API_ALLOWED_PRINCIPALS_CONTEXT))
        self.api = apigw.RestApi(
            self,
            "Api",
            description=f"Start and watch sagas: {', '.join(saga.definition.name for saga in sagas)}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            policy=self.allowed_callers.policy() if self.allowed_callers else None,
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
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # The L2 has no property for it: on the CloudFormation resource, the default endpoint's minimum TLS.
        rest_api = self.api.node.default_child
        assert isinstance(rest_api, apigw.CfnRestApi)
        rest_api.security_policy = constants.API_SECURITY_POLICY
        # The L2 adds an "Endpoint" output with a generated name; the stack outputs the URL under a constant name.
        self.api.node.try_remove_child("Endpoint")
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
        self.request_models: dict[str, apigw.Model] = {}
        for saga in sagas:
            self._add_routes(saga, integration, validator)

        _acknowledge(self)

    def _add_routes(self, saga: SagaRoute, integration: apigw.Integration, validator: apigw.IRequestValidator) -> None:
        name = saga.definition.name
        model = self.api.add_model(
            f"{name}InputModel",
            content_type="application/json",
            model_name=f"{name}Input",
            schema=json_schema(saga.request_schema),
        )
        self.request_models[name] = model
        resource = self.api.root.add_resource(saga.definition.route_path)
        resource.add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={"application/json": model},
            request_parameters={f"method.request.header.{IDEMPOTENCY_KEY_HEADER}": False},
        )
        resource.add_method(
            "GET",
            integration,
            request_validator=validator,
            request_parameters={
                "method.request.querystring.status": True,
                "method.request.querystring.limit": False,
                "method.request.querystring.next_token": False,
            },
        )
        resource.add_resource("{id}").add_method(
            "GET", integration, request_validator=validator, request_parameters={"method.request.path.id": True}
        )


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
