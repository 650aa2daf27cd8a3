"""What the synthesized SagaStack must guarantee; expectations derive from the saga definitions, so adding a step
or a saga needs no edit here."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match

from infra import constants
from infra.constructs.powertools_function import LATEST_RUNTIME_REASON
from infra.constructs.saga_store import deletion_protection_requested
from statemachines import SagaDefinition, compile_saga
from statemachines.compiler import placeholders, substitution_keys

pytestmark = pytest.mark.infra

TASK_RESPONSE_ACTIONS = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}


def commands_with_steps(definitions: list[SagaDefinition]) -> dict[str, Any]:
    """Every command of every saga -> the step that declares it."""
    return {command: step for definition in definitions for step in definition.steps for command in step.commands}


def participant_resources(synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    """Resources of the participants: saga operations and the API have functions and queues of their own, tested in
    test_monitoring and test_api_stack."""
    others = tuple(f"{constants.STACK_NAME}/{part}/" for part in ("SagaOperations", "SagaApi", "Choreography"))
    return {
        logical_id: resource
        for logical_id, resource in synthesized.resources(resource_type).items()
        if not resource.get("Metadata", {}).get("aws:cdk:path", "").startswith(others)
    }


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def state_machine(synthesized, definition: SagaDefinition) -> dict[str, Any]:
    output = synthesized.template["Outputs"][constants.state_machine_output(definition.name)]
    return synthesized.template["Resources"][output["Value"]["Ref"]]


def all_policy_statements(synthesized) -> list[dict[str, Any]]:
    statements = []
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in synthesized.resources("AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
    return statements


# --- state machines -------------------------------------------------------------------------------------------


def test_one_standard_state_machine_per_orchestrated_saga(synthesized, template, orchestrated, choreographed):
    template.resource_count_is("AWS::StepFunctions::StateMachine", len(orchestrated))
    assert choreographed, "the project ships a choreographed saga: it runs on the bus, not on a state machine"
    for definition in orchestrated:
        assert state_machine(synthesized, definition)["Properties"]["StateMachineType"] == "STANDARD"


def test_definition_is_the_compiled_saga_with_every_placeholder_substituted(synthesized, orchestrated):
    for definition in orchestrated:
        properties = state_machine(synthesized, definition)["Properties"]
        definition_string = properties["DefinitionString"]
        assert json.loads(definition_string) == compile_saga(definition)
        substitutions = properties["DefinitionSubstitutions"]
        assert set(substitutions) == set(substitution_keys(definition))
        assert placeholders(definition_string) == set(substitution_keys(definition))
        assert substitutions["SagaTableName"] == {"Ref": synthesized.logical_id("SagaStore/Table")}
        for step in definition.steps:
            for command in step.commands:
                queue = synthesized.logical_id(f"{step.service}/{command}/Queue")
                assert substitutions[f"{command}QueueUrl"] == {"Ref": queue}, command


def test_state_machine_logs_everything_but_execution_data_and_traces(template):
    template.all_resources_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like(
                {
                    "Level": "ALL",
                    "IncludeExecutionData": False,  # task tokens are bearer credentials
                    "Destinations": Match.any_value(),
                }
            ),
            "TracingConfiguration": {"Enabled": True},
        },
    )


# --- queues -----------------------------------------------------------------------------------------------------


def test_one_queue_and_one_dlq_per_command(synthesized, definitions):
    assert len(participant_resources(synthesized, "AWS::SQS::Queue")) == 2 * len(commands_with_steps(definitions))


def test_every_command_queue_has_an_encrypted_dlq_after_enough_receives(synthesized, definitions):
    queues = synthesized.template["Resources"]
    for command, step in commands_with_steps(definitions).items():
        queue = queues[synthesized.logical_id(f"{step.service}/{command}/Queue")]["Properties"]
        dead_letter_id = synthesized.logical_id(f"{step.service}/{command}/DeadLetterQueue")
        dead_letter = queues[dead_letter_id]["Properties"]
        assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter_id, "Arn"]}
        assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
        assert dead_letter["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert queue["SqsManagedSseEnabled"] is True
        assert dead_letter["SqsManagedSseEnabled"] is True


def test_every_queue_denies_requests_without_tls(synthesized):
    tls_only_queues = set()
    for policy in synthesized.resources("AWS::SQS::QueuePolicy").values():
        denies_plain_http = any(
            statement["Effect"] == "Deny"
            and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        )
        if denies_plain_http:
            tls_only_queues |= {queue["Ref"] for queue in policy["Properties"]["Queues"]}
    assert tls_only_queues == set(synthesized.resources("AWS::SQS::Queue"))


def test_visibility_timeout_covers_six_consumer_timeouts(synthesized):
    resources = synthesized.template["Resources"]
    mappings = synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    assert mappings
    for mapping in mappings:
        queue = resources[mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]
        function = resources[mapping["Properties"]["FunctionName"]["Ref"]]
        assert queue["Properties"]["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"]


# --- functions ----------------------------------------------------------------------------------------------------


def test_one_function_per_command_with_its_handler(synthesized, definitions):
    functions = participant_resources(synthesized, "AWS::Lambda::Function").values()
    handlers = sorted(f["Properties"]["Handler"] for f in functions)
    expected = sorted(step.handler(command) for command, step in commands_with_steps(definitions).items())
    assert handlers == expected


def test_every_function_is_wired_to_its_queue_tables_and_layer(synthesized, definitions):
    resources = synthesized.template["Resources"]
    layer_parameters = [
        name
        for name, parameter in synthesized.template["Parameters"].items()
        if parameter["Default"] == constants.POWERTOOLS_LAYER_PARAMETER
    ]
    assert len(layer_parameters) == 1
    assert synthesized.template["Parameters"][layer_parameters[0]]["Type"] == "AWS::SSM::Parameter::Value<String>"
    mappings = list(synthesized.resources("AWS::Lambda::EventSourceMapping").values())
    on_the_bus = {
        command for d in definitions if d.pattern == "choreography" for s in d.steps for command in s.commands
    }
    bus = {"Ref": synthesized.logical_id("Choreography/Bus")}

    for command, step in commands_with_steps(definitions).items():
        function_id = synthesized.logical_id(f"{step.service}/{command}/Function")
        function = resources[function_id]["Properties"]
        assert function["Handler"] == step.handler(command)
        assert function["Runtime"] == constants.LAMBDA_RUNTIME
        assert function["Timeout"] == constants.FUNCTION_TIMEOUT_SECONDS
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert function["Layers"] == [{"Ref": layer_parameters[0]}]
        assert function["Environment"]["Variables"] == {
            "SERVICE_TABLE_NAME": {"Ref": synthesized.logical_id(f"{step.service}/Table")},
            "SAGA_TABLE_NAME": {"Ref": synthesized.logical_id("SagaStore/Table")},
            "IDEMPOTENCY_TABLE_NAME": {"Ref": synthesized.logical_id("IdempotencyStore/Table")},
            "POWERTOOLS_SERVICE_NAME": step.service,
            "POWERTOOLS_METRICS_NAMESPACE": "Sagas",
            "LOG_LEVEL": "INFO",
            **({"SAGA_BUS_NAME": bus} if command in on_the_bus else {}),
        }
        own_mappings = [m["Properties"] for m in mappings if m["Properties"]["FunctionName"] == {"Ref": function_id}]
        queue_id = synthesized.logical_id(f"{step.service}/{command}/Queue")
        assert own_mappings == [
            {
                "FunctionName": {"Ref": function_id},
                "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
                "BatchSize": constants.BATCH_SIZE,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            }
        ], command


def test_each_participant_may_bring_its_own_queue_s_deliveries_back_early_and_no_other_s(synthesized, definitions):
    # A delivery that meets another's idempotency lock asks SQS to deliver it again within its heartbeat window
    # (ChangeMessageVisibility on the receipt it holds): its function must be allowed that on its own queue only.
    for command, step in commands_with_steps(definitions).items():
        function = synthesized.template["Resources"][synthesized.logical_id(f"{step.service}/{command}/Function")]
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        queues = [
            resource
            for policy in synthesized.resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Allow" and "sqs:ChangeMessageVisibility" in as_list(statement["Action"])
            for resource in as_list(statement["Resource"])
        ]
        assert queues == [{"Fn::GetAtt": [synthesized.logical_id(f"{step.service}/{command}/Queue"), "Arn"]}], command


def test_functions_run_on_the_python_the_tests_run_on(synthesized):
    # Deploy what is tested: every function's runtime is the interpreter running this suite.
    running = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert running == constants.LAMBDA_RUNTIME
    runtimes = {f["Properties"]["Runtime"] for f in synthesized.resources("AWS::Lambda::Function").values()}
    assert runtimes == {running}


def test_an_older_runtime_than_the_cdk_knows_is_acknowledged_with_that_reason():
    def version(name: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", name))

    newest = max((r.name for r in lambda_.Runtime.ALL if r.name.startswith("python")), key=version)
    if newest != constants.LAMBDA_RUNTIME:
        assert constants.LAMBDA_RUNTIME in LATEST_RUNTIME_REASON
        assert "test suite" in LATEST_RUNTIME_REASON


def test_powertools_version_matches_the_lambda_requirements():
    requirements = (constants.REPO_ROOT / "requirements-lambda.txt").read_text(encoding="utf-8")
    assert f"aws-lambda-powertools[tracer]=={constants.POWERTOOLS_VERSION}" in requirements
    assert constants.POWERTOOLS_LAYER_PARAMETER.endswith(f"/{constants.LAMBDA_RUNTIME}/{constants.POWERTOOLS_VERSION}")


# --- tables -------------------------------------------------------------------------------------------------------


def test_every_table_is_on_demand_encrypted_and_recoverable(template):
    template.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def business_tables(synthesized) -> dict[str, dict[str, Any]]:
    """The saga table and every participant's table (the idempotency table holds only expiring records, the admission
    table a few start-rate numbers per saga type that refill within seconds)."""
    kept_nothing = {synthesized.logical_id("IdempotencyStore/Table"), synthesized.logical_id("SagaApi/Admission/Table")}
    tables = {k: v for k, v in synthesized.resources("AWS::DynamoDB::Table").items() if k not in kept_nothing}
    assert synthesized.logical_id("SagaStore/Table") in tables
    return tables


def test_business_tables_are_deletion_protected_and_retained(synthesized, definitions):
    tables = business_tables(synthesized)
    assert len(tables) == 1 + len({step.service for definition in definitions for step in definition.steps})
    for logical_id, table in tables.items():
        assert table["Properties"]["DeletionProtectionEnabled"] is True, logical_id
        assert table["DeletionPolicy"] == "Retain", logical_id


def test_a_throwaway_stack_drops_deletion_protection_and_retention(synthesized_with_options):
    # Given -c deletionProtection=false / Then cdk destroy deletes every table with the stack
    for logical_id, table in business_tables(synthesized_with_options).items():
        assert table["Properties"].get("DeletionProtectionEnabled", False) is False, logical_id
        assert table["DeletionPolicy"] == "Delete", logical_id


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("False", False), (False, False)])
def test_the_deletion_protection_switch_reads_true_and_false(value, expected):
    assert deletion_protection_requested(value) is expected


def test_a_deletion_protection_switch_neither_true_nor_false_is_an_error():
    with pytest.raises(ValueError, match=r"context 'deletionProtection': 'off' is neither true nor false"):
        deletion_protection_requested("off")


def test_saga_table_keys_and_status_index(synthesized):
    table = synthesized.template["Resources"][synthesized.logical_id("SagaStore/Table")]
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "saga_id", "KeyType": "HASH"}]
    (index,) = table["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_status"
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}


def test_idempotency_table_matches_powertools_defaults(synthesized):
    table = synthesized.template["Resources"][synthesized.logical_id("IdempotencyStore/Table")]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# --- IAM ------------------------------------------------------------------------------------------------------------


def test_task_responses_are_scoped_to_the_state_machine(synthesized, orchestrated):
    resources = synthesized.template["Resources"]
    state_machines = [
        {"Ref": synthesized.template["Outputs"][constants.state_machine_output(d.name)]["Value"]["Ref"]}
        for d in orchestrated
    ]
    roles_allowed = set()
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if TASK_RESPONSE_ACTIONS & set(as_list(statement["Action"])):
                assert set(as_list(statement["Action"])) == TASK_RESPONSE_ACTIONS
                assert all(resource in state_machines for resource in as_list(statement["Resource"])), statement
                roles_allowed |= {role["Ref"] for role in policy["Properties"]["Roles"]}
    function_roles = {
        f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in participant_resources(synthesized, "AWS::Lambda::Function").values()
    }
    assert roles_allowed == function_roles
    assert all(resources[role]["Type"] == "AWS::IAM::Role" for role in roles_allowed)


def test_no_allow_statement_has_a_wildcard_action(synthesized):
    # Deny statements may be broad on purpose (the TLS-only queue policies deny sqs:* without TLS).
    statements = all_policy_statements(synthesized)
    for policy in synthesized.resources("AWS::SQS::QueuePolicy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements
    for statement in statements:
        if statement["Effect"] == "Allow":
            assert not [action for action in as_list(statement["Action"]) if "*" in action], statement


def test_no_aws_managed_policies(synthesized):
    # Except API Gateway's account-wide logging role, acknowledged in infra/constructs/saga_api.py.
    managed = {
        logical_id: role["Properties"]["ManagedPolicyArns"]
        for logical_id, role in synthesized.resources("AWS::IAM::Role").items()
        if "ManagedPolicyArns" in role["Properties"]
    }
    assert list(managed) == [synthesized.logical_id("SagaApi/Api/CloudWatchRole")]


# --- outputs --------------------------------------------------------------------------------------------------------


def test_outputs_name_the_tables_and_state_machines(synthesized, definitions):
    expected = {"SagaTableName", "IdempotencyTableName", constants.API_URL_OUTPUT}
    expected |= {constants.STUCK_SAGAS_OUTPUT, constants.ALARM_TOPIC_OUTPUT, constants.DASHBOARD_OUTPUT}
    expected |= {f"{d.name}StateMachineArn" for d in definitions if d.pattern == "orchestration"}
    expected |= {constants.SAGA_BUS_OUTPUT} if any(d.pattern == "choreography" for d in definitions) else set()
    assert set(synthesized.template["Outputs"]) == expected
