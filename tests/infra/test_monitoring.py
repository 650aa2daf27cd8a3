"""Alarms, notifications, dashboard, stuck-saga detector and execution-status reconciler, checked on the template.

moto's CloudFormation skips AWS::CloudWatch::Alarm, so this is where the alarms are proven. Expectations derive from
the template's own queues, functions and state machines and from the saga definitions: a new DLQ, function or step
without its alarm or widget fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import constants
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
    return [a for a in alarms(synthesized) if a.get("Namespace") == namespace and a.get("MetricName") == metric]


def dimension(alarm: dict[str, Any], name: str) -> Any:
    (value,) = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == name]
    return value


def state_machine_ids(synthesized) -> set[str]:
    return set(synthesized.resources("AWS::StepFunctions::StateMachine"))


# --- alarms ---------------------------------------------------------------------------------------------------------


def test_every_alarm_fires_above_zero_and_notifies_the_one_topic(synthesized):
    found = alarms(synthesized)
    assert len(found) > 0
    for alarm in found:
        assert alarm["AlarmActions"] == [{"Ref": topic_id(synthesized)}], alarm
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"


def test_every_dead_letter_queue_has_a_depth_alarm(synthesized):
    dlqs = dead_letter_queue_ids(synthesized)
    # 8 command DLQs, the stuck-sagas DLQ and the reconciler's: the helper must not find fewer than the consumers.
    assert len(dlqs) >= len(synthesized.resources("AWS::Lambda::EventSourceMapping")) + 2
    alarmed = {
        dimension(alarm, "QueueName")["Fn::GetAtt"][0]
        for alarm in simple_alarms(synthesized, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if alarm["Statistic"] == "Maximum"
    }
    assert alarmed == dlqs


EXECUTION_ALARM_METRICS = ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "ExecutionThrottled"]


@pytest.mark.parametrize("metric", EXECUTION_ALARM_METRICS)
def test_every_state_machine_alarms_on_execution_failures(synthesized, metric):
    alarmed = [dimension(alarm, "StateMachineArn") for alarm in simple_alarms(synthesized, "AWS/States", metric)]
    assert sorted(ref["Ref"] for ref in alarmed) == sorted(state_machine_ids(synthesized))


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(synthesized, metric):
    alarmed = [dimension(alarm, "FunctionName")["Ref"] for alarm in simple_alarms(synthesized, "AWS/Lambda", metric)]
    assert sorted(alarmed) == sorted(synthesized.resources("AWS::Lambda::Function"))


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    return [query["MetricStat"] for query in alarm.get("Metrics", []) if "MetricStat" in query]


def test_stuck_sagas_alarm_reads_the_detector_metric(synthesized):
    matching = [
        alarm
        for alarm in alarms(synthesized)
        if any(stat["Metric"]["MetricName"] == metric_names.STUCK_SAGAS for stat in metric_stats(alarm))
    ]
    assert len(matching) == 1
    (stat,) = metric_stats(matching[0])
    assert stat["Metric"]["Namespace"] == constants.POWERTOOLS_METRICS_NAMESPACE
    assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": metric_names.OPERATIONS_SERVICE}]
    assert stat["Stat"] == "Maximum"


def test_compensation_failure_alarm_sums_every_compensation_step(synthesized, definitions):
    matching = [
        alarm
        for alarm in alarms(synthesized)
        if any(stat["Metric"]["MetricName"] == metric_names.STEP_FAILED for stat in metric_stats(alarm))
    ]
    assert len(matching) == 1
    alarm = matching[0]
    watched = {
        tuple(sorted((d["Name"], d["Value"]) for d in stat["Metric"]["Dimensions"])) for stat in metric_stats(alarm)
    }
    expected = {
        tuple(sorted({"service": step.service, "step": step.name, "kind": "compensation"}.items()))
        for definition in definitions
        for step in definition.compensatable_steps
    }
    assert watched == expected
    (expression,) = [query for query in alarm["Metrics"] if "Expression" in query]
    assert expression["ReturnData"] is True
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            assert query["Id"] in expression["Expression"]
            assert query["MetricStat"]["Stat"] == "Sum"


# --- notifications ----------------------------------------------------------------------------------------------------


def test_alarm_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(synthesized):
    topic = synthesized.template["Resources"][topic_id(synthesized)]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesized.template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch_statements = [
        statement
        for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch_statements
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= {a for s in cloudwatch_statements for a in s["Action"]}


def test_alarm_topic_refuses_publishing_without_tls(synthesized):
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id(synthesized)}]
    assert any(
        statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    )


# --- dashboard --------------------------------------------------------------------------------------------------------


def dashboard_widgets(synthesized) -> dict[str, dict[str, Any]]:
    """Widgets by title, with each reference in the body replaced by the logical id it points at."""
    (dashboard,) = synthesized.resources("AWS::CloudWatch::Dashboard").values()
    separator, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    text = separator.join(part if isinstance(part, str) else part.get("Ref") or part["Fn::GetAtt"][0] for part in parts)
    return {widget["properties"]["title"]: widget["properties"] for widget in json.loads(text)["widgets"]}


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


def test_dashboard_shows_executions_statuses_dlqs_and_stuck_sagas(synthesized):
    widgets = dashboard_widgets(synthesized)
    executions = {metric for _, metric, _, _ in plotted(widgets["Executions started, succeeded, failed, timed out"])}
    assert {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"} <= executions
    statuses = {dims["status"] for _, metric, dims, _ in plotted(widgets["Sagas by status (non-terminal)"])}
    assert {"STARTED", "PENDING", "COMPENSATING", "COMPENSATION_FAILED"} <= statuses
    queues = {dims["QueueName"] for _, _, dims, _ in plotted(widgets["DLQ depths"])}
    assert queues == dead_letter_queue_ids(synthesized)
    stuck = {metric for _, metric, _, _ in plotted(widgets["Stuck sagas"])}
    assert metric_names.STUCK_SAGAS in stuck


def test_dashboard_shows_each_step_latency_failure_rate_and_compensations(synthesized, definitions):
    widgets = dashboard_widgets(synthesized)
    latency = plotted(widgets["Step latency p50 / p99 (ms)"])
    failure_rate = plotted(widgets["Step failure rate (%)"])
    compensations = plotted(widgets["Compensations run"])
    for definition in definitions:
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
