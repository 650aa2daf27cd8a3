"""EventBridge rules of the stack, delivered to their Lambda targets in-process (moto cannot target Lambda).

Two kinds of rule, read from moto's EventBridge (deployed by the same CloudFormation template):
- a schedule (`rate(...)`): the target runs every period, on the local clock (the time scale shortens it);
- "Step Functions Execution Status Change" for some statuses and state machines: moto's Step Functions emits no
  events, so executions of those state machines are watched, and each one that ends in a matching status is
  delivered once to the target, in the event shape EventBridge uses.
An invocation that fails goes to the function's dead-letter queue when it has one, as asynchronous invocations do.

Rules of other buses whose targets are SQS queues (the saga bus) are moto's own: its PutEvents delivers to them,
input transformer included. EventBridge Scheduler's one-time schedules (`at(...)`, the choreographed sagas' step
deadlines) are fired here: moto keeps schedules but never runs them. A schedule whose target is an event bus is put on
that bus once its time has come (times are written on the scaled clock by their creators), then deleted when its
ActionAfterCompletion says so.
The bus asks the Lambda service (the local cloud) only for what `LambdaService` lists.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import boto3

from saga_operations.execution_status import DETAIL_TYPE, SOURCE, status_change_event

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
WATCH_SECONDS = 1.0  # how often executions are listed for status changes, wall-clock seconds (it costs moto CPU)
SCHEDULE_POLL_SECONDS = 0.25  # how often one-time schedules are looked at, wall-clock seconds
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


class LambdaService(Protocol):
    """What the bus needs of the Lambda service that runs its targets."""

    account_id: str
    region: str
    time_scale: float  # local seconds per second of the stack's clock

    @property
    def functions(self) -> Mapping[str, Any]:
        """The deployed functions by ARN: the targets the bus can deliver to."""
        ...

    def invoke_async(self, function_arn: str, event: dict[str, Any]) -> bool:
        """Run the function on one event as an asynchronous invocation; False if it failed."""
        ...


@dataclass(frozen=True)
class ScheduleRule:
    name: str
    period_seconds: float  # on the local clock
    targets: list[str]  # function ARNs


@dataclass(frozen=True)
class StatusChangeRule:
    name: str
    statuses: list[str]
    state_machine_arns: list[str]
    targets: list[str]


def rate_seconds(expression: str) -> int:
    match = _RATE.match(expression)
    if match is None:
        raise ValueError(f"ScheduleExpression {expression!r}: only rate(N minute|hour|day) is run locally")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class LocalEventBridge:
    def __init__(self, lambda_service: LambdaService) -> None:
        self.lambda_service = lambda_service
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.schedules: list[ScheduleRule] = []
        self.status_rules: list[StatusChangeRule] = []
        self.delivered: list[tuple[str, str]] = []  # (rule, execution ARN) of every status change delivered
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()
        self._schedule_times: dict[tuple[str, str], float] = {}  # (group, name) -> when it fires, epoch seconds
        self.fired: list[str] = []  # names of the one-time schedules fired, in order

    @cached_property
    def _sfn(self) -> Any:
        # One client for the watcher's life: creating one per poll and per delivery cost more CPU than the polls.
        return boto3.client("stepfunctions")

    def start(self) -> None:
        events = boto3.client("events")
        for rule in events.list_rules()["Rules"]:
            targets = [
                target["Arn"]
                for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                if target["Arn"] in self.lambda_service.functions
            ]
            if not targets or rule.get("State") != "ENABLED":
                continue
            if "ScheduleExpression" in rule:
                period = rate_seconds(rule["ScheduleExpression"]) * self.lambda_service.time_scale
                self.schedules.append(ScheduleRule(rule["Name"], period, targets))
            elif rule.get("EventPattern"):
                pattern = json.loads(rule["EventPattern"])
                if pattern.get("source") == [SOURCE] and pattern.get("detail-type") == [DETAIL_TYPE]:
                    detail = pattern.get("detail", {})
                    self.status_rules.append(
                        StatusChangeRule(rule["Name"], detail["status"], detail["stateMachineArn"], targets)
                    )
        for schedule in self.schedules:
            self._spawn(f"schedule-{schedule.name}", self._run_schedule, schedule)
        if self.status_rules:
            self._spawn("execution-status-watch", self._watch_executions)
        self._spawn("one-time-schedules", self._fire_schedules)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        # The "lambda-" prefix routes the output of what runs there to the Lambda log, as on AWS.
        thread = threading.Thread(target=target, args=args, name=f"lambda-events-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_schedule(self, schedule: ScheduleRule) -> None:
        while not self._stop.wait(schedule.period_seconds):
            for function_arn in schedule.targets:
                self.lambda_service.invoke_async(function_arn, _scheduled_event(schedule.name))

    def _fire_schedules(self) -> None:
        while not self._stop.wait(SCHEDULE_POLL_SECONDS):
            self.fire_due_schedules()

    def fire_due_schedules(self, now: float | None = None) -> list[str]:
        """Put every one-time schedule whose time has come on its target bus (and delete it, as asked); their names."""
        scheduler = self._scheduler
        now = time.time() if now is None else now
        fired = []
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page.get("Schedules", []):
                key = (summary.get("GroupName") or "default", summary["Name"])
                if key not in self._schedule_times:
                    schedule = scheduler.get_schedule(GroupName=key[0], Name=key[1])
                    self._schedule_times[key] = one_time_schedule_at(schedule["ScheduleExpression"])
                if self._schedule_times[key] > now:
                    continue
                schedule = scheduler.get_schedule(GroupName=key[0], Name=key[1])
                target = schedule["Target"]
                parameters = target.get("EventBridgeParameters")
                if parameters is None or ":event-bus/" not in target["Arn"]:
                    raise ValueError(f"schedule {key[1]}: only one-time schedules that target an event bus run locally")
                self._events.put_events(
                    Entries=[
                        {
                            "EventBusName": target["Arn"],
                            "Source": parameters["Source"],
                            "DetailType": parameters["DetailType"],
                            "Detail": target.get("Input") or "{}",
                        }
                    ]
                )
                if schedule.get("ActionAfterCompletion") == "DELETE":
                    scheduler.delete_schedule(GroupName=key[0], Name=key[1])
                    del self._schedule_times[key]
                fired.append(key[1])
        self.fired += fired
        return fired

    @cached_property
    def _scheduler(self) -> Any:
        return boto3.client("scheduler")

    @cached_property
    def _events(self) -> Any:
        return boto3.client("events")

    def _watch_executions(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.deliver_status_changes(self.status_rules)

    def deliver_status_changes(self, rules: list[StatusChangeRule]) -> int:
        """Deliver, once each, the executions of the rules' state machines that ended in one of their statuses."""
        delivered = 0
        for rule in rules:
            for state_machine_arn in rule.state_machine_arns:
                for status in rule.statuses:
                    for page in self._sfn.get_paginator("list_executions").paginate(
                        stateMachineArn=state_machine_arn, statusFilter=status
                    ):
                        for execution in page["executions"]:
                            with self._seen_lock:
                                if execution["executionArn"] in self._seen:
                                    continue
                                self._seen.add(execution["executionArn"])
                            self.deliver_status_change(rule, execution["executionArn"])
                            delivered += 1
        return delivered

    def deliver_status_change(self, rule: StatusChangeRule, execution_arn: str) -> None:
        execution = self._sfn.describe_execution(executionArn=execution_arn)
        service = self.lambda_service
        event = status_change_event(execution, region=service.region, account=service.account_id)
        for function_arn in rule.targets:
            service.invoke_async(function_arn, event)
        self.delivered.append((rule.name, execution_arn))


def one_time_schedule_at(expression: str) -> float:
    """Epoch seconds of a one-time schedule's `at(yyyy-mm-ddThh:mm:ss)` (UTC)."""
    match = _AT.match(expression)
    if match is None:
        raise ValueError(f"ScheduleExpression {expression!r}: only at(...) one-time schedules are fired locally")
    return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def _scheduled_event(rule_name: str) -> dict[str, Any]:
    return {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "resources": [rule_name]}
