"""Alarms, notifications, dashboard, stuck-saga detector and execution-status reconciler, checked on the template.

moto's CloudFormation skips AWS::CloudWatch::Alarm, so this is where the alarms are proven. Expectations derive from
the template's own queues, functions and state machines and from the saga definitions: a new DLQ, function or step
without its alarm or widget fails here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from infra import constants
from infra.constructs.notifications import requested_subscriptions
from saga_records import metric_names
from statemachines.deadline import saga_deadline_seconds

pytestmark = pytest.mark.infra


def alarms(synthesized) -> list[dict[str, Any]]:
    return [alarm["Properties"] for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()]


def topic_id(synthesized) -> str:
    (topic,) = synthesized.resources("AWS::SNS::Topic")
    return topic


def dead_letter_queue_ids(synthesized) -> set[str]:
    """Every queue something dead-letters into: queue redrive policies, Lambda async DLQs, EventBridge target DLQs."""
    found = set()
    for queue in synthesized.resources("AWS::SQS::Queue").values():
        if "RedrivePolicy" in queue["Properties"]:
            found.add(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
    for function in synthesized.resources("AWS::Lambda::Function").values():
        if "DeadLetterConfig" in function["Properties"]:
            found.add(function["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0])
    for rule in synthesized.resources("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            if "DeadLetterConfig" in target:
                found.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    return found


def simple_alarms(synthesized, namespace: str, metric: str) -> list[dict[str, Any]]:
    """Alarms on one plain metric (every alarm of the stack is one)."""
    return [a for a in alarms(synthesized) if a.get("Namespace") == namespace and a.get("MetricName") == metric]


def dimension(alarm: dict[str, Any], name: str) -> Any:
    (value,) = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == name]
    return value


def state_machine_ids(synthesized) -> set[str]:
    return set(synthesized.resources("AWS::StepFunctions::StateMachine"))


# --- alarms ---------------------------------------------------------------------------------------------------------

# Alarms whose threshold is not "above 0": how long a command may wait, the detector's own heartbeat, API latency.
NON_ZERO_THRESHOLD_METRICS = {"ApproximateAgeOfOldestMessage", "Invocations", "Latency"}


def test_every_alarm_is_named_for_the_stack_and_notifies_the_topic_when_firing_and_clearing(synthesized):
    found = alarms(synthesized)
    assert len(found) > 0
    for alarm in found:
        # The topic and key policies let CloudWatch publish for alarms named "<stack>/..." only.
        assert alarm["AlarmName"].startswith(f"{constants.STACK_NAME}/"), alarm
        assert alarm["AlarmActions"] == [{"Ref": topic_id(synthesized)}], alarm
        assert alarm["OKActions"] == [{"Ref": topic_id(synthesized)}], alarm
    assert len({alarm["AlarmName"] for alarm in found}) == len(found)


def test_count_alarms_fire_above_zero_and_ignore_missing_data(synthesized):
    counted = [alarm for alarm in alarms(synthesized) if alarm.get("MetricName") not in NON_ZERO_THRESHOLD_METRICS]
    assert len(counted) > len(alarms(synthesized)) // 2
    for alarm in counted:
        assert alarm["Threshold"] == 0, alarm
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", alarm
        assert alarm["TreatMissingData"] == "notBreaching", alarm


def test_no_alarm_reads_more_metrics_than_cloudwatch_allows(synthesized):
    # CloudWatch takes at most 10 metrics per alarm expression: nothing here may grow with the sagas or steps.
    for alarm in alarms(synthesized):
        assert "Metrics" not in alarm, alarm["AlarmName"]


def test_every_dead_letter_queue_has_a_depth_alarm(synthesized):
    dlqs = dead_letter_queue_ids(synthesized)
    # Each command's DLQ, the stuck-sagas DLQ and the reconciler's: the helper must not find fewer than the consumers.
    assert len(dlqs) >= len(synthesized.resources("AWS::Lambda::EventSourceMapping")) + 2
    alarmed = {
        dimension(alarm, "QueueName")["Fn::GetAtt"][0]
        for alarm in simple_alarms(synthesized, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if alarm["Statistic"] == "Maximum"
    }
    assert alarmed == dlqs


def test_every_participant_queue_alarms_when_a_command_waits_half_its_heartbeat_window(synthesized, definitions):
    # Given the heartbeat window of each command's step(s), from the definitions
    heartbeat = {}
    for definition in definitions:
        for step in definition.steps:
            for command in step.commands:
                heartbeat[command] = min(heartbeat.get(command, step.sla.heartbeat_seconds), step.sla.heartbeat_seconds)
    # Then each queue a participant consumes alarms on its oldest message at half its step's window
    resources = synthesized.template["Resources"]
    thresholds = {
        dimension(alarm, "QueueName")["Fn::GetAtt"][0]: alarm
        for alarm in simple_alarms(synthesized, "AWS/SQS", "ApproximateAgeOfOldestMessage")
    }
    mappings = [  # the participants' (the saga tracker's queue is no command's)
        mapping
        for mapping in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if resources[mapping["Properties"]["FunctionName"]["Ref"]]["Properties"]["Handler"] != constants.TRACKER_HANDLER
    ]
    assert len(thresholds) == len(mappings) == len(heartbeat)
    for mapping in mappings:
        queue_id = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        function = resources[mapping["Properties"]["FunctionName"]["Ref"]]["Properties"]
        command = next(name for name in heartbeat if f"/{name}/" in resources[queue_id]["Metadata"]["aws:cdk:path"])
        alarm = thresholds[queue_id]
        # (SQS reports the age in whole seconds: half an odd window rounds down, so the alarm fires no later)
        half_window = heartbeat[command] * constants.QUEUE_AGE_ALARM_SHARE_OF_HEARTBEAT
        assert alarm["Threshold"] == math.floor(half_window), command
        assert alarm["Threshold"] < heartbeat[command]
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert function["Handler"].endswith(command_handler_suffix(command))


def command_handler_suffix(command: str) -> str:
    """ReserveItems -> .reserve_items (the handler naming the definitions use)."""
    return "." + re.sub(r"(?<!^)(?=[A-Z])", "_", command).lower()


EXECUTION_ALARM_METRICS = ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "ExecutionThrottled"]


@pytest.mark.parametrize("metric", EXECUTION_ALARM_METRICS)
def test_every_state_machine_alarms_on_execution_failures(synthesized, metric):
    alarmed = [dimension(alarm, "StateMachineArn") for alarm in simple_alarms(synthesized, "AWS/States", metric)]
    assert sorted(ref["Ref"] for ref in alarmed) == sorted(state_machine_ids(synthesized))


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(synthesized, metric):
    alarmed = [dimension(alarm, "FunctionName")["Ref"] for alarm in simple_alarms(synthesized, "AWS/Lambda", metric)]
    assert sorted(alarmed) == sorted(synthesized.resources("AWS::Lambda::Function"))


def test_the_execution_status_reconciler_has_an_errors_alarm(synthesized):
    reconciler_id, _ = function_with_handler(synthesized, constants.RECONCILER_HANDLER)
    alarmed = [
        alarm
        for alarm in simple_alarms(synthesized, "AWS/Lambda", "Errors")
        if dimension(alarm, "FunctionName") == {"Ref": reconciler_id}
    ]
    assert len(alarmed) == 1


def test_a_silent_detector_is_an_alarm(synthesized):
    # Given the detector function / Then its invocations are alarmed when fewer than one, and no data is a breach
    detector_id, _ = function_with_handler(synthesized, constants.DETECTOR_HANDLER)
    (alarm,) = [
        alarm
        for alarm in simple_alarms(synthesized, "AWS/Lambda", "Invocations")
        if dimension(alarm, "FunctionName") == {"Ref": detector_id}
    ]
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["Statistic"] == "Sum"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Period"] == constants.DETECTOR_SILENCE_MINUTES * 60
    assert alarm["Period"] > 2 * constants.DETECTOR_SCHEDULE_MINUTES * 60  # one late run is not an alarm


def test_stuck_sagas_alarm_reads_the_detector_metric(synthesized):
    (alarm,) = simple_alarms(synthesized, constants.POWERTOOLS_METRICS_NAMESPACE, metric_names.STUCK_SAGAS)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": metric_names.OPERATIONS_SERVICE}]
    assert alarm["Statistic"] == "Maximum"


def test_compensation_failure_alarm_counts_sagas_parked_by_a_compensation_not_transient_step_failures(synthesized):
    # A compensation that fails transiently and heals on retry never parks its saga: the alarm reads the parked count
    # (one metric whatever the number of sagas and steps), not the toolkit's per-step StepFailed.
    assert simple_alarms(synthesized, constants.POWERTOOLS_METRICS_NAMESPACE, metric_names.STEP_FAILED) == []
    (alarm,) = [
        alarm
        for alarm in simple_alarms(synthesized, constants.POWERTOOLS_METRICS_NAMESPACE, metric_names.SAGAS_IN_STATUS)
    ]
    assert sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]) == [
        ("service", metric_names.OPERATIONS_SERVICE),
        ("status", "COMPENSATION_FAILED"),
    ]
    assert alarm["Statistic"] == "Maximum"


def test_every_participant_alarms_on_records_its_batches_handed_back(synthesized, definitions):
    alarmed = {
        dimension(alarm, "service")
        for alarm in simple_alarms(
            synthesized, constants.POWERTOOLS_METRICS_NAMESPACE, metric_names.BATCH_RECORDS_FAILED
        )
    }
    assert alarmed == {step.service for definition in definitions for step in definition.steps}


def test_every_api_alarms_on_server_errors_and_latency(synthesized):
    apis = {resource["Properties"]["Name"] for resource in synthesized.resources("AWS::ApiGateway::RestApi").values()}
    assert apis
    errors = [dimension(alarm, "ApiName") for alarm in simple_alarms(synthesized, "AWS/ApiGateway", "5XXError")]
    (latency,) = simple_alarms(synthesized, "AWS/ApiGateway", "Latency")
    assert set(errors) == apis
    assert dimension(latency, "ApiName") in apis
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == constants.API_LATENCY_ALARM_MS
    assert latency["EvaluationPeriods"] == constants.API_LATENCY_ALARM_PERIODS


# --- notifications ----------------------------------------------------------------------------------------------------


def from_alarms_of_this_stack(condition: dict[str, Any]) -> bool:
    """aws:SourceAccount is this account and aws:SourceArn matches only this stack's alarms in this region."""
    source_arn = condition.get("ArnLike", {}).get("aws:SourceArn")
    if condition.get("StringEquals", {}).get("aws:SourceAccount") != {"Ref": "AWS::AccountId"} or not source_arn:
        return False
    parts = source_arn["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "{" + part["Ref"] + "}" for part in parts)
    return (
        text == f"arn:{{AWS::Partition}}:cloudwatch:{{AWS::Region}}:{{AWS::AccountId}}:alarm:{constants.STACK_NAME}/*"
    )


def test_the_topic_lets_cloudwatch_publish_for_this_stacks_alarms_and_refuses_plain_http(synthesized):
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id(synthesized)}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in statements
    )
    (allow,) = [statement for statement in statements if statement["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert from_alarms_of_this_stack(allow["Condition"])


def test_the_topic_key_lets_cloudwatch_in_under_the_same_conditions(synthesized):
    topic = synthesized.template["Resources"][topic_id(synthesized)]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesized.template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        statement
        for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert from_alarms_of_this_stack(cloudwatch["Condition"])


def test_nobody_is_subscribed_unless_the_deploy_asks(synthesized):
    assert synthesized.resources("AWS::SNS::Subscription") == {}


def test_deploy_time_subscriptions_reach_the_alarm_topic(synthesized_with_options):
    # Given -c alarmEmail=ops@...,oncall@... -c alarmEndpoint=https:https://hooks.example.com/alarms
    subscriptions = sorted(
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"])
        for s in synthesized_with_options.resources("AWS::SNS::Subscription").values()
    )
    # Then each is a subscription of the one topic, whose ARN is an output
    assert subscriptions == [
        ("email", "oncall@example.com"),
        ("email", "ops@example.com"),
        ("https", "https://hooks.example.com/alarms"),
    ]
    topic = {"Ref": topic_id(synthesized_with_options)}
    for subscription in synthesized_with_options.resources("AWS::SNS::Subscription").values():
        assert subscription["Properties"]["TopicArn"] == topic
    assert synthesized_with_options.template["Outputs"][constants.ALARM_TOPIC_OUTPUT]["Value"] == topic


@pytest.mark.parametrize(
    ("emails", "endpoints", "problem"),
    [
        ("ops.example.com", None, r"context 'alarmEmail': 'ops.example.com' is not an e-mail address"),
        (None, "pager", r"context 'alarmEndpoint': 'pager' is not <protocol>:<endpoint>"),
        (None, "firehose:arn:aws:firehose:eu-west-1:1:deliverystream/x", r"'firehose:arn"),
    ],
)
def test_a_subscription_the_topic_cannot_take_is_an_error_naming_the_context_key(emails, endpoints, problem):
    with pytest.raises(ValueError, match=problem):
        requested_subscriptions(emails, endpoints)


def test_the_detector_sends_each_incident_to_the_alarm_topic_too(synthesized):
    _, detector = function_with_handler(synthesized, constants.DETECTOR_HANDLER)
    assert detector["Environment"]["Variables"]["INCIDENT_TOPIC_ARN"] == {"Ref": topic_id(synthesized)}


# --- dashboard --------------------------------------------------------------------------------------------------------


def dashboards(synthesized) -> dict[str, list[dict[str, Any]]]:
    """Each dashboard's widgets (by its name), with each reference in the body replaced by the logical id it names."""
    found = {}
    for dashboard in synthesized.resources("AWS::CloudWatch::Dashboard").values():
        separator, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
        text = separator.join(
            part if isinstance(part, str) else part.get("Ref") or part["Fn::GetAtt"][0] for part in parts
        )
        found[dashboard["Properties"]["DashboardName"]] = json.loads(text)["widgets"]
    return found


def dashboard_widgets(synthesized, name: str = f"{constants.STACK_NAME}-sagas") -> dict[str, dict[str, Any]]:
    """One dashboard's graphs by title (the stack's own by default)."""
    return {widget["properties"]["title"]: widget["properties"] for widget in dashboards(synthesized)[name]}


def plotted(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, metric, dimensions, options) of every plain metric in a graph widget."""
    found = []
    for line in widget.get("metrics", []):
        options = line[-1] if isinstance(line[-1], dict) else {}
        names = [item for item in line if not isinstance(item, dict)]
        if len(names) >= 2 and not options.get("expression"):
            found.append((names[0], names[1], dict(zip(names[2::2], names[3::2], strict=True)), options))
    return found


def step_dimensions(step, kind: str) -> dict[str, str]:
    return {"service": step.service, "step": step.name, "kind": kind}


def test_one_dashboard_for_the_stack_and_one_per_saga(synthesized, definitions):
    names = set(dashboards(synthesized))
    assert names == {f"{constants.STACK_NAME}-sagas"} | {f"{constants.STACK_NAME}-{d.name}" for d in definitions}
    output = synthesized.template["Outputs"][constants.DASHBOARD_OUTPUT]["Value"]
    assert synthesized.template["Resources"][output["Ref"]]["Properties"]["DashboardName"] == (
        f"{constants.STACK_NAME}-sagas"
    )


def test_dashboard_shows_executions_statuses_dlqs_and_stuck_sagas(synthesized, definitions):
    widgets = dashboard_widgets(synthesized)
    executions = {metric for _, metric, _, _ in plotted(widgets["Executions started, succeeded, failed, timed out"])}
    assert {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"} <= executions
    statuses = {dims["status"] for _, metric, dims, _ in plotted(widgets["Sagas by status (non-terminal)"])}
    assert {"STARTED", "PENDING", "COMPENSATING", "COMPENSATION_FAILED"} <= statuses
    stuck = {metric for _, metric, _, _ in plotted(widgets["Stuck sagas"])}
    assert metric_names.STUCK_SAGAS in stuck
    # Every DLQ is drawn: the operations' ones here, each command's on its saga's dashboard
    queues = {dims["QueueName"] for _, _, dims, _ in plotted(widgets["DLQ depths (operations)"])}
    for definition in definitions:
        saga = dashboard_widgets(synthesized, f"{constants.STACK_NAME}-{definition.name}")
        queues |= {dims["QueueName"] for _, _, dims, _ in plotted(saga[f"{definition.name}: DLQ depths"])}
    assert queues == dead_letter_queue_ids(synthesized)


def test_each_sagas_dashboard_shows_each_step_latency_failure_rate_and_compensations(synthesized, definitions):
    for definition in definitions:
        widgets = dashboard_widgets(synthesized, f"{constants.STACK_NAME}-{definition.name}")
        latency = plotted(widgets[f"{definition.name}: step latency p50 / p99 (ms)"])
        failure_rate = plotted(widgets[f"{definition.name}: step failure rate (%)"])
        compensations = plotted(widgets[f"{definition.name}: compensations run"])
        for step in definition.steps:
            action = step_dimensions(step, "action")
            stats = {options["stat"] for _, metric, dims, options in latency if dims == action}
            assert stats == {"p50", "p99"}, step.name
            assert {metric for _, metric, dims, _ in failure_rate if dims == action} == {
                metric_names.STEP_FAILED,
                metric_names.STEP_SUCCEEDED,
            }, step.name
            if step.compensation:
                compensation = step_dimensions(step, "compensation")
                assert (metric_names.STEP_SUCCEEDED, compensation) in [(m, d) for _, m, d, _ in compensations]


# Metrics published at every detector run, 0 included: a line of them has no gap while the detector runs (and a
# silent detector is alarmed). Latency percentiles have no value where nothing ran, which is right for them.
DENSE_METRICS = {metric_names.SAGAS_IN_STATUS, metric_names.STUCK_SAGAS, metric_names.STEP_DURATION, "Latency"}


def test_every_sparse_line_of_every_dashboard_shows_zero_not_a_gap(synthesized):
    every_widget = {
        f"{name}: {widget['properties']['title']}": widget["properties"]
        for name, widgets in dashboards(synthesized).items()
        for widget in widgets
    }
    assert len(every_widget) > len(dashboard_widgets(synthesized))
    for title, widget in every_widget.items():
        lines = widget.get("metrics", [])
        expressions = [line[0] for line in lines if isinstance(line[0], dict) and "expression" in line[0]]
        for namespace, metric, _, options in plotted(widget):
            if metric in DENSE_METRICS:
                continue
            # Then a sparse metric is never drawn itself, only through MAX([it, TIME_SERIES(0)])
            assert options.get("visible") is False, (title, namespace, metric)
            assert {"expression": f"MAX([{options['id']}, TIME_SERIES(0)])"}.items() <= next(
                e for e in expressions if options["id"] in e["expression"]
            ).items(), (title, metric)


def test_the_step_failure_rate_is_zero_percent_when_nothing_ran(synthesized, definitions):
    for definition in definitions:
        dashboard = f"{constants.STACK_NAME}-{definition.name}"
        widget = dashboard_widgets(synthesized, dashboard)[f"{definition.name}: step failure rate (%)"]
        lines = [line[0] for line in widget["metrics"] if isinstance(line[0], dict) and "expression" in line[0]]
        rates = [line for line in lines if line["label"].endswith("failure %")]
        assert len(rates) == len(definition.steps)
        by_id = {line["id"]: line["expression"] for line in lines if "id" in line}
        for rate in rates:
            failed, succeeded = re.fullmatch(
                r"IF\((\w+) \+ (\w+) > 0, 100 \* \1 / \(\1 \+ \2\), 0\)", rate["expression"]
            ).groups()
            assert by_id[failed].startswith("MAX(["), rate
            assert by_id[succeeded].startswith("MAX(["), rate


# --- detector and reconciler ------------------------------------------------------------------------------------------


def function_with_handler(synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, function["Properties"])
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    ]
    return found


def targets_of(synthesized, function_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (rule["Properties"], target)
        for rule in synthesized.resources("AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
        if target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]


def test_detector_runs_on_a_schedule_with_the_deadlines_of_the_definitions(synthesized, definitions):
    detector_id, detector = function_with_handler(synthesized, constants.DETECTOR_HANDLER)
    ((rule, _target),) = targets_of(synthesized, detector_id)
    assert rule["ScheduleExpression"] == f"rate({constants.DETECTOR_SCHEDULE_MINUTES} minute)"
    variables = detector["Environment"]["Variables"]
    assert json.loads(variables["SAGA_DEADLINES_JSON"]) == {d.name: saga_deadline_seconds(d) for d in definitions}
    queue_id = variables["STUCK_SAGAS_QUEUE_URL"]["Ref"]
    queue = synthesized.template["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert "RedrivePolicy" in queue


def test_detector_reads_the_status_index_and_never_scans(synthesized):
    _, detector = function_with_handler(synthesized, constants.DETECTOR_HANDLER)
    role = detector["Role"]["Fn::GetAtt"][0]
    actions = set()
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    assert {"dynamodb:Query", "dynamodb:UpdateItem", "sqs:SendMessage"} <= actions
    assert "dynamodb:Scan" not in actions


def test_status_change_rule_sends_uncaught_execution_endings_to_the_reconciler(synthesized):
    reconciler_id, reconciler = function_with_handler(synthesized, constants.RECONCILER_HANDLER)
    ((rule, target),) = targets_of(synthesized, reconciler_id)
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert sorted(ref["Ref"] for ref in pattern["detail"]["stateMachineArn"]) == sorted(state_machine_ids(synthesized))
    # Lost neither when EventBridge cannot invoke nor when the invocation fails: both land in the alarmed DLQ.
    assert target["DeadLetterConfig"]["Arn"] == reconciler["DeadLetterConfig"]["TargetArn"]
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] in dead_letter_queue_ids(synthesized)
