"""The orders API in the synthesized template: IAM on every method, the request validator and the model generated
from the handler's pydantic model, stage throttling and logging, least-privilege grants, the orphan reconciler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra import constants
from infra.constructs.saga_api import API_HANDLER, RECONCILER_HANDLER, AllowedCallers, json_schema
from saga_api.models import request_json_schema

pytestmark = pytest.mark.infra


def _function(synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, function)] = [
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    ]
    return logical_id, function


def _statements_of(synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_every_method_is_iam_authorised(synthesized):
    methods = synthesized.resources("AWS::ApiGateway::Method")
    assert {(m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"]) for m in methods.values()} == {
        ("POST", "AWS_IAM"),
        ("GET", "AWS_IAM"),
    }
    assert len(methods) == 3  # POST /orders, GET /orders, GET /orders/{id}: no unauthenticated path, no OPTIONS
    assert constants.API_AUTHORIZATION == "IAM"


def test_every_method_goes_through_the_request_validator(synthesized, template):
    [(validator_id, _)] = synthesized.resources("AWS::ApiGateway::RequestValidator").items()
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    for method in synthesized.resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["RequestValidatorId"] == {"Ref": validator_id}
    get_list = [
        m
        for m in synthesized.resources("AWS::ApiGateway::Method").values()
        if "method.request.querystring.status" in m["Properties"].get("RequestParameters", {})
    ]
    assert get_list[0]["Properties"]["RequestParameters"]["method.request.querystring.status"] is True


def test_the_body_model_is_the_handlers_pydantic_model(synthesized):
    [(model_id, model)] = synthesized.resources("AWS::ApiGateway::Model").items()
    assert model["Properties"]["ContentType"] == "application/json"
    assert model["Properties"]["Schema"] == request_json_schema()
    [post] = [
        m for m in synthesized.resources("AWS::ApiGateway::Method").values() if m["Properties"]["HttpMethod"] == "POST"
    ]
    assert post["Properties"]["RequestModels"] == {"application/json": {"Ref": model_id}}


def test_a_schema_keyword_the_gateway_model_cannot_hold_is_an_error_not_dropped():
    with pytest.raises(ValueError, match="anyOf"):
        json_schema({"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "null"}]}}})


def test_the_gateway_names_the_rule_a_refused_body_broke(template):
    template.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": "BAD_REQUEST_BODY",
            "StatusCode": "400",
            "ResponseTemplates": {"application/json": Match.string_like_regexp(r"validationErrorString")},
        },
    )


def test_the_stage_throttles_and_logs_access_and_execution(synthesized, template):
    [stage] = synthesized.resources("AWS::ApiGateway::Stage").values()
    properties = stage["Properties"]
    assert properties["StageName"] == constants.API_STAGE
    assert properties["TracingEnabled"] is True
    assert properties["MethodSettings"] == [
        {
            "DataTraceEnabled": False,  # bodies hold customers' details and card tokens
            "HttpMethod": "*",
            "LoggingLevel": "INFO",
            "MetricsEnabled": True,
            "ResourcePath": "/*",
            "ThrottlingBurstLimit": constants.API_THROTTLING_BURST_LIMIT,
            "ThrottlingRateLimit": constants.API_THROTTLING_RATE_LIMIT,
        }
    ]
    access_log_group = properties["AccessLogSetting"]["DestinationArn"]["Fn::Join"][1][-1]["Ref"]
    assert synthesized.template["Resources"][access_log_group]["Properties"]["RetentionInDays"] == 30
    # Execution logs need API Gateway's account-level CloudWatch role
    template.resource_count_is("AWS::ApiGateway::Account", 1)


def test_the_api_function_may_start_the_saga_and_use_the_saga_table_only(synthesized):
    _, function = _function(synthesized, API_HANDLER)
    statements = _statements_of(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert _actions(statements) == {
        "states:StartExecution",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    [start] = [s for s in statements if s["Action"] == "states:StartExecution"]
    output = synthesized.template["Outputs"][constants.state_machine_output(constants.API_SAGA)]
    assert start["Resource"] == output["Value"]
    environment = function["Properties"]["Environment"]["Variables"]
    assert environment["STATE_MACHINE_ARN"] == output["Value"]
    assert int(environment["MAX_REQUEST_BYTES"]) == constants.MAX_ORDER_REQUEST_BYTES
    assert constants.MAX_ORDER_REQUEST_BYTES < constants.STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES == 262_144


def test_the_reconciler_runs_on_a_schedule_with_only_what_it_needs(synthesized, template):
    reconciler_id, function = _function(synthesized, RECONCILER_HANDLER)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": f"rate({constants.RECONCILE_EVERY_MINUTES} minutes)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [reconciler_id, "Arn"]}})],
        },
    )
    statements = _statements_of(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert _actions(statements) - {"logs:CreateLogStream", "logs:PutLogEvents"} == {
        "states:StartExecution",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_the_api_url_is_an_output(synthesized):
    output = synthesized.template["Outputs"][constants.API_URL_OUTPUT]
    assert constants.API_STAGE in str(output["Value"])


def test_the_default_endpoint_refuses_tls_below_1_2(synthesized):
    [api] = synthesized.resources("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["SecurityPolicy"] == "TLS_1_2"


def test_the_handler_answers_within_the_gateways_integration_timeout(synthesized):
    _, function = _function(synthesized, API_HANDLER)
    assert function["Properties"]["Timeout"] < constants.API_INTEGRATION_TIMEOUT_LIMIT_SECONDS == 29
    for method in synthesized.resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["Integration"].get("TimeoutInMillis", 29_000) <= 29_000


def test_the_access_log_names_the_caller_status_error_and_latency(synthesized):
    [stage] = synthesized.resources("AWS::ApiGateway::Stage").values()
    fields = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])
    for variable in (
        "$context.requestId",
        "$context.identity.caller",
        "$context.identity.userArn",
        "$context.identity.sourceIp",
        "$context.status",
        "$context.error.message",
        "$context.integration.error",
        "$context.responseLatency",
        "$context.integration.latency",
    ):
        assert variable in fields.values(), variable


def test_without_allowed_principals_there_is_no_resource_policy(synthesized):
    [api] = synthesized.resources("AWS::ApiGateway::RestApi").values()
    assert "Policy" not in api["Properties"]


def test_allowed_principals_are_let_in_and_everyone_else_is_denied(synthesized_with_options):
    # Given -c apiAllowedPrincipals=arn:aws:iam::111122223333:role/shop-backend,444455556666
    [api] = synthesized_with_options.resources("AWS::ApiGateway::RestApi").values()
    allow, deny = api["Properties"]["Policy"]["Statement"]
    # Then the named role and account may invoke
    assert allow["Effect"] == "Allow"
    assert allow["Action"] == "execute-api:Invoke"
    principals = allow["Principal"]["AWS"]
    assert "arn:aws:iam::111122223333:role/shop-backend" in principals
    assert any("444455556666" in json.dumps(principal) for principal in principals)
    # And any other principal, of this account too, is denied
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": "*"}
    assert deny["Action"] == "execute-api:Invoke"
    assert deny["Condition"] == {
        "ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::111122223333:role/shop-backend"]},
        "StringNotEquals": {"aws:PrincipalAccount": ["444455556666"]},
    }


@pytest.mark.parametrize("value", ["shop-backend", "arn:aws:s3:::bucket", "12345"])
def test_an_allowed_principal_that_is_no_principal_is_an_error_naming_the_context_key(value):
    with pytest.raises(ValueError, match=r"context 'apiAllowedPrincipals'"):
        AllowedCallers.parse(value)
