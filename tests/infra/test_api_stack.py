"""The saga API in the synthesized template: every saga's routes, IAM on every method, the request validator and each
saga's model generated from its input model, stage throttling and logging, least-privilege grants on every saga's
state machine, the typed SAGAS setting, the orphan reconciler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra import constants
from infra.constructs.saga_api import API_HANDLER, RECONCILER_HANDLER, AllowedCallers, json_schema
from saga_api.admission import AdmissionLimits
from saga_api.models import request_json_schema
from saga_api.settings import ApiSettings
from statemachines.inputs import load_input_model

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


def _routes(synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> method resource, the path assembled from the API Gateway resources."""
    resources = synthesized.resources("AWS::ApiGateway::Resource")

    def path_of(reference: Any) -> str:
        if "Fn::GetAtt" in reference:
            return ""
        properties = resources[reference["Ref"]]["Properties"]
        return f"{path_of(properties['ParentId'])}/{properties['PathPart']}"

    return {
        (method["Properties"]["HttpMethod"], path_of(method["Properties"]["ResourceId"])): method
        for method in synthesized.resources("AWS::ApiGateway::Method").values()
    }


def test_every_saga_has_its_three_routes_and_nothing_else(synthesized, definitions):
    expected = {
        route
        for definition in definitions
        for route in (
            ("POST", f"/{definition.route_path}"),
            ("GET", f"/{definition.route_path}"),
            ("GET", f"/{definition.route_path}/{{id}}"),
        )
    }
    assert set(_routes(synthesized)) == expected  # no unauthenticated path, no OPTIONS


def test_every_method_is_iam_authorised(synthesized):
    methods = synthesized.resources("AWS::ApiGateway::Method")
    assert {(m["Properties"]["HttpMethod"], m["Properties"]["AuthorizationType"]) for m in methods.values()} == {
        ("POST", "AWS_IAM"),
        ("GET", "AWS_IAM"),
    }
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


def test_each_sagas_body_model_is_its_input_model(synthesized, definitions):
    models = synthesized.resources("AWS::ApiGateway::Model")
    assert len(models) == len(definitions)
    routes = _routes(synthesized)
    for definition in definitions:
        post = routes[("POST", f"/{definition.route_path}")]
        ((content_type, model_ref),) = post["Properties"]["RequestModels"].items()
        model = models[model_ref["Ref"]]["Properties"]
        assert (content_type, model["ContentType"]) == ("application/json", "application/json")
        expected = request_json_schema(
            load_input_model(constants.LAMBDAS_DIR, definition), title=f"{definition.name}Input"
        )
        assert model["Schema"] == expected, definition.name


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


def _resources_of(statements: list[dict[str, Any]], action: str) -> list[str]:
    """Every resource a statement allowing `action` names, as JSON text (references included)."""
    found = []
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found += [json.dumps(resource, sort_keys=True) for resource in resources]
    return sorted(found)


def test_the_api_function_may_start_and_admit_every_saga_and_nothing_else(synthesized, orchestrated, choreographed):
    _, function = _function(synthesized, API_HANDLER)
    statements = _statements_of(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert _actions(statements) == {
        "states:StartExecution",
        "events:PutEvents",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        # admission control: which queues each saga's state machine sends to (a choreographed saga's: its parameter),
        # and how many commands wait in them
        "states:DescribeStateMachine",
        "ssm:GetParameter",
        "sqs:GetQueueAttributes",
        # listing page tokens: made and checked with the stack's HMAC key in KMS
        "kms:GenerateMac",
        "kms:VerifyMac",
    }
    machines = [synthesized.template["Outputs"][constants.state_machine_output(d.name)]["Value"] for d in orchestrated]
    machine_refs = sorted(json.dumps(machine, sort_keys=True) for machine in machines)
    assert _resources_of(statements, "states:StartExecution") == machine_refs
    assert _resources_of(statements, "states:DescribeStateMachine") == machine_refs
    # Exactly the participant queues the sagas send commands to (no DLQ, no other queue)
    functions = synthesized.resources("AWS::Lambda::Function")
    command_queues = {
        json.dumps({"Fn::GetAtt": [mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0], "Arn"]}, sort_keys=True)
        for mapping in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if functions[mapping["Properties"]["FunctionName"]["Ref"]]["Properties"]["Handler"].startswith("services.")
    }
    assert set(_resources_of(statements, "sqs:GetQueueAttributes")) == command_queues
    # A choreographed saga's command queues, the ones its bus rules feed, listed in a parameter only the API reads
    parameters = synthesized.resources("AWS::SSM::Parameter")
    assert sorted(parameter["Properties"]["Name"] for parameter in parameters.values()) == sorted(
        f"/{constants.STACK_NAME}/admission/{d.name}/command-queues" for d in choreographed
    )
    grants = [json.loads(grant)["Fn::Join"][1] for grant in _resources_of(statements, "ssm:GetParameter")]
    assert len(grants) == len(parameters)
    for parameter_id, parameter in parameters.items():
        assert any({"Ref": parameter_id} in grant for grant in grants)
        listed = {json.dumps(part, sort_keys=True) for part in parameter["Properties"]["Value"]["Fn::Join"][1][1::2]}
        saga = parameter["Properties"]["Name"].split("/")[3]
        fed = {  # the queues of the saga's command rules (each reacts to some of its detail-types)
            json.dumps({"Ref": target["Arn"]["Fn::GetAtt"][0]}, sort_keys=True)
            for rule in synthesized.resources("AWS::Events::Rule").values()
            if rule["Properties"].get("EventPattern", {}).get("source") == [f"sagas.{saga}"]
            and "detail-type" in rule["Properties"]["EventPattern"]
            for target in rule["Properties"]["Targets"]
        }
        [definition] = [d for d in choreographed if d.name == saga]
        assert len(fed) == sum(len(step.commands) for step in definition.steps)
        assert listed == fed
    [(key_id, key)] = [
        (logical_id, key)
        for logical_id, key in synthesized.resources("AWS::KMS::Key").items()
        if key["Properties"].get("KeyUsage") == "GENERATE_VERIFY_MAC"
    ]
    assert key["Properties"]["KeySpec"] == "HMAC_256"
    key_arn = [json.dumps({"Fn::GetAtt": [key_id, "Arn"]}, sort_keys=True)]
    assert _resources_of(statements, "kms:GenerateMac") == _resources_of(statements, "kms:VerifyMac") == key_arn
    [(table_id, _)] = [
        (logical_id, table)
        for logical_id, table in synthesized.resources("AWS::DynamoDB::Table").items()
        if table["Properties"]["KeySchema"] == [{"AttributeName": "saga_type", "KeyType": "HASH"}]
    ]
    assert json.dumps({"Fn::GetAtt": [table_id, "Arn"]}, sort_keys=True) in _resources_of(
        statements, "dynamodb:UpdateItem"
    )
    # A choreographed saga starts with its Saga.Started on the bus, under its own source only
    puts = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert puts
    bus = {"Fn::GetAtt": [synthesized.logical_id("Choreography/Bus"), "Arn"]}
    assert all(put["Resource"] == bus for put in puts)
    sources = [put["Condition"]["StringEquals"]["events:source"] for put in puts]
    assert sorted(source for each in sources for source in ([each] if isinstance(each, str) else each)) == sorted(
        f"sagas.{d.name}" for d in choreographed
    )
    environment = function["Properties"]["Environment"]["Variables"]
    assert int(environment["MAX_REQUEST_BYTES"]) == constants.MAX_REQUEST_BYTES
    assert constants.MAX_REQUEST_BYTES < constants.STEP_FUNCTIONS_PAYLOAD_LIMIT_BYTES == 262_144
    assert constants.MAX_REQUEST_BYTES < constants.EVENTBRIDGE_ENTRY_LIMIT_BYTES == 262_144


def _resolved(value: Any, refs: dict[str, str]) -> str:
    """An Fn::Join of literal text and Refs, the Refs replaced as `refs` says."""
    separator, parts = value["Fn::Join"]
    return separator.join(part if isinstance(part, str) else refs[part["Ref"]] for part in parts)


def test_the_functions_sagas_setting_lists_every_saga_with_its_state_machine(synthesized, definitions):
    # Given the SAGAS variable as the deployed function reads it (each state machine's Ref standing for its ARN)
    machines = {
        synthesized.template["Outputs"][constants.state_machine_output(d.name)]["Value"]["Ref"]: d.name
        for d in definitions
        if d.pattern == "orchestration"
    }
    refs = {logical_id: f"arn:aws:states:us-east-1:1:stateMachine:{name}" for logical_id, name in machines.items()}
    refs[synthesized.logical_id("Choreography/Bus")] = "saga-bus"
    parameters = {
        logical_id: parameter["Properties"]["Name"]
        for logical_id, parameter in synthesized.resources("AWS::SSM::Parameter").items()
    }
    refs |= parameters
    for handler in (API_HANDLER, RECONCILER_HANDLER):
        _, function = _function(synthesized, handler)
        variables = function["Properties"]["Environment"]["Variables"]
        # (the other references, table names and key ARNs, stand as their variable's name)
        resolved = {name: value if isinstance(value, str) else name for name, value in variables.items()}
        settings = ApiSettings.model_validate({**resolved, "SAGAS": _resolved(variables["SAGAS"], refs)})
        # Then it is the typed setting the API reads, one entry per saga, from the definitions
        # (an orchestrated saga started by its state machine, a choreographed one by the bus)
        assert [
            (
                saga.saga_type,
                saga.path,
                saga.state_machine_arn.rsplit(":", 1)[1] if saga.state_machine_arn else saga.bus_name,
                saga.steps,
                saga.id_field,
            )
            for saga in settings.sagas
        ] == [
            (
                d.name,
                d.route_path,
                d.name if d.pattern == "orchestration" else "saga-bus",
                tuple(step.name for step in d.steps),
                d.id_field,
            )
            for d in definitions
        ]
        assert [saga.input_module for saga in settings.sagas] == [d.input_module for d in definitions]
        # And a choreographed saga names the parameter listing its command queues (its backlog check reads them)
        assert [saga.command_queues_parameter for saga in settings.sagas] == [
            f"/{constants.STACK_NAME}/admission/{d.name}/command-queues" if d.pattern == "choreography" else None
            for d in definitions
        ]
        # And each saga's admission limits, its definition's block with the defaults filled in
        assert [saga.admission.limits() for saga in settings.sagas] == [
            AdmissionLimits(**vars(d.admission_limits)) for d in definitions
        ]
        # And what is not SAGAS fits in the room the synth-time check leaves it (a reference at a table name's 255)
        others = sum(
            len(name) + (len(value) if isinstance(value, str) else 255)
            for name, value in variables.items()
            if name != "SAGAS"
        )
        assert others < constants.API_OTHER_VARIABLES_BYTES


def test_the_reconciler_runs_on_a_schedule_with_only_what_it_needs(synthesized, template):
    reconciler_id, function = _function(synthesized, RECONCILER_HANDLER)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": f"rate({constants.RECONCILE_EVERY_MINUTES} minutes)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [reconciler_id, "Arn"]}})],
        },
    )
    # It admits nothing and lists nothing: no admission table, no page token key
    assert {"ADMISSION_TABLE_NAME", "PAGE_TOKEN_KEY_ID"}.isdisjoint(function["Properties"]["Environment"]["Variables"])
    statements = _statements_of(synthesized, function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert _actions(statements) - {"logs:CreateLogStream", "logs:PutLogEvents"} == {
        "states:StartExecution",
        "events:PutEvents",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_the_api_url_is_an_output_named_for_every_saga(synthesized):
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


def test_sagas_that_would_outgrow_lambdas_environment_stop_the_synth_naming_them(definitions):
    # Given sagas whose SAGAS setting would pass Lambda's 4 KB of environment (long step names)
    from aws_cdk import App, Stack
    from aws_cdk import aws_stepfunctions as sfn

    from infra.constructs.saga_api import LAMBDA_ENVIRONMENT_LIMIT_BYTES, SagaApi, SagaRoute, sagas_setting_size
    from statemachines import parse_definition

    def saga(name: str):
        step = {"service": "LongService", "sla": {"timeout_seconds": 60, "heartbeat_seconds": 20}, "retriable": True}
        steps = [
            {**step, "name": f"a_rather_long_step_name_number_{k:02d}", "action": f"Act{name}{k:02d}"}
            for k in range(40)
        ]
        return parse_definition({"name": name, "description": "long", "steps": steps})

    stack = Stack(App(), "Probe")
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:{}"
    routes = [
        SagaRoute(definition, sfn.StateMachine.from_state_machine_arn(stack, name, arn.format(name)), {})
        for name, definition in ((name, saga(name)) for name in ("LongOne", "LongTwo", "LongThree"))
    ]
    assert sagas_setting_size(routes) > LAMBDA_ENVIRONMENT_LIMIT_BYTES
    # When the API is built / Then it refuses, naming the sagas and the limit, before anything is deployed
    with pytest.raises(ValueError, match=r"LongOne, LongTwo, LongThree: Lambda allows 4096 bytes of environment"):
        SagaApi(stack, "Api", sagas=routes, shared=None)
    # And the project's own sagas fit, beside the function's other variables, at their longest ARNs and names
    project = sagas_setting_size([SagaRoute(d, None, {}) for d in definitions])
    assert project + constants.API_OTHER_VARIABLES_BYTES < LAMBDA_ENVIRONMENT_LIMIT_BYTES


def test_a_choreographed_sagas_command_queues_go_in_the_smallest_parameter_that_holds_them_or_stop_the_synth():
    # Given the admission control of a stack, and many command queues
    from aws_cdk import App, Stack
    from aws_cdk import aws_sqs as sqs
    from aws_cdk.assertions import Template

    from infra.constructs.admission import AdmissionControl

    stack = Stack(App(), "Probe")
    admission = AdmissionControl(stack, "Admission")
    queues = [sqs.Queue(stack, f"Queue{n}") for n in range(60)]
    # When a choreographed saga's queues are published: 8 fit a standard parameter, 40 an advanced one
    admission.publish_command_queues("Small", queues[:8])
    admission.publish_command_queues("Wide", queues[:40])
    tiers = {
        parameter["Properties"]["Name"].split("/")[3]: parameter["Properties"]["Tier"]
        for parameter in Template.from_stack(stack).find_resources("AWS::SSM::Parameter").values()
    }
    assert tiers == {"Small": "Standard", "Wide": "Advanced"}
    # And 60, whose URLs could outgrow any parameter at their longest, stop the synth naming the saga
    with pytest.raises(ValueError, match=r"Widest: its 60 command queues' URLs may outgrow the 8192 bytes"):
        admission.publish_command_queues("Widest", queues)
