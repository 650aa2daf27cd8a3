"""The local runtime's EventBridge: schedule expressions on the local clock, delivered to any Lambda service."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws

from local_runtime.eventbridge import LocalEventBridge, rate_seconds

pytestmark = pytest.mark.unit

HOSTED = "arn:aws:lambda:us-east-1:123456789012:function:detector"
ELSEWHERE = "arn:aws:lambda:us-east-1:123456789012:function:not-here"


class FakeLambdaService:
    """Runs nothing: records what the bus asked it to invoke."""

    account_id = "123456789012"
    region = "us-east-1"
    time_scale = 0.001  # a minute's schedule every 60 ms

    def __init__(self, functions: dict[str, object]) -> None:
        self.functions = functions
        self.invoked: list[tuple[str, dict]] = []

    def invoke_async(self, function_arn: str, event: dict) -> bool:
        self.invoked.append((function_arn, event))
        return True


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_in_seconds(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_a_cron_schedule_is_refused_by_name():
    with pytest.raises(ValueError, match="ScheduleExpression"):
        rate_seconds("cron(0 12 * * ? *)")


def test_a_schedule_runs_its_target_on_the_lambda_service_that_hosts_it(aws_env):
    with mock_aws():
        # Given a rule every minute targeting a function the Lambda service hosts, and one targeting another
        events = boto3.client("events")
        for rule, target in (("detect", HOSTED), ("elsewhere", ELSEWHERE)):
            events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")
            events.put_targets(Rule=rule, Targets=[{"Id": "1", "Arn": target}])
        service = FakeLambdaService({HOSTED: object()})
        bus = LocalEventBridge(service)
        # When the bus runs for a few of the scaled minutes
        bus.start()
        try:
            deadline = time.monotonic() + 5
            while len(service.invoked) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            bus.stop()
    # Then only the hosted function was invoked, every period, with a scheduled event
    assert [schedule.name for schedule in bus.schedules] == ["detect"]
    assert len(service.invoked) >= 2
    assert {arn for arn, _ in service.invoked} == {HOSTED}
    assert service.invoked[0][1]["detail-type"] == "Scheduled Event"
    assert service.invoked[0][1]["resources"] == ["detect"]


def test_a_one_time_schedule_puts_its_event_on_its_bus_once_due_then_is_deleted(aws_env):
    import json

    from local_runtime.eventbridge import one_time_schedule_at

    with mock_aws():
        # Given a bus whose rule sends deadlines to a queue, and two one-time schedules targeting the bus
        events, sqs, scheduler = boto3.client("events"), boto3.client("sqs"), boto3.client("scheduler")
        bus_arn = events.create_event_bus(Name="sagas")["EventBusArn"]
        queue = sqs.create_queue(QueueName="deadlines")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="deadlines", EventBusName="sagas", EventPattern=json.dumps({"source": ["sagas.X.deadlines"]})
        )
        events.put_targets(Rule="deadlines", EventBusName="sagas", Targets=[{"Id": "q", "Arn": queue_arn}])
        for name, at in (("due", "2030-01-01T00:00:00"), ("later", "2030-01-01T00:00:10")):
            scheduler.create_schedule(
                Name=name,
                ScheduleExpression=f"at({at})",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": bus_arn,
                    "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                    "Input": json.dumps({"step": name}),
                    "EventBridgeParameters": {"DetailType": f"{name}.TimedOut", "Source": "sagas.X.deadlines"},
                },
            )
        local = LocalEventBridge(FakeLambdaService({}))
        # When the local clock is past the first one's time only
        fired = local.fire_due_schedules(now=one_time_schedule_at("at(2030-01-01T00:00:05)"))
        # Then it alone was put on the bus (and reached the rule's queue), and deleted; the other waits
        assert fired == ["due"]
        (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        event = json.loads(message["Body"])
        assert (event["detail-type"], event["detail"]) == ("due.TimedOut", {"step": "due"})
        assert [s["Name"] for s in scheduler.list_schedules()["Schedules"]] == ["later"]
        assert local.fire_due_schedules(now=one_time_schedule_at("at(2030-01-01T00:00:05)")) == []


def test_a_schedule_that_is_not_one_time_is_refused_by_name():
    from local_runtime.eventbridge import one_time_schedule_at

    with pytest.raises(ValueError, match=r"only at\(\.\.\.\)"):
        one_time_schedule_at("rate(5 minutes)")
