"""What happened to a saga, read back from its record and its execution history."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3

from saga_records import PARKED_STATUSES, TERMINAL_STATUSES
from statemachines import SagaDefinition

FINISHED_STATUSES = {status.value for status in TERMINAL_STATUSES | PARKED_STATUSES}


@dataclass(frozen=True)
class SagaOutcome:
    saga_id: str
    status: str  # the saga record's status
    execution_status: str
    actions_succeeded: tuple[str, ...]  # step names whose action succeeded, in order
    compensations_succeeded: tuple[str, ...]  # step names whose compensation succeeded, in order
    transitions: int  # billed state transitions: states entered plus retry attempts
    duration_seconds: float
    record: dict[str, Any]


def execution_arn(state_machine_arn: str, saga_id: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{saga_id}"


def history_events(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    events, kwargs = [], {}
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def outcome_of(definition: SagaDefinition, state_machine_arn: str, record: dict[str, Any]) -> SagaOutcome:
    arn = execution_arn(state_machine_arn, record["saga_id"])
    execution = boto3.client("stepfunctions").describe_execution(executionArn=arn)
    actions = {step.action: step.name for step in definition.steps}
    compensations = {step.compensation: step.name for step in definition.steps if step.compensation}
    succeeded_actions, succeeded_compensations, transitions = [], [], 0
    current_state, attempts_in_state = None, 0
    for event in history_events(arn):
        if event["type"].endswith("StateEntered"):
            transitions += 1
            current_state, attempts_in_state = event["stateEnteredEventDetails"]["name"], 0
        elif event["type"] == "TaskScheduled":
            attempts_in_state += 1
            if attempts_in_state > 1:
                transitions += 1  # each retry attempt is billed as a transition too
        elif event["type"] == "TaskSucceeded":
            if current_state in actions:
                succeeded_actions.append(actions[current_state])
            elif current_state in compensations:
                succeeded_compensations.append(compensations[current_state])
    stop = execution.get("stopDate")
    duration = (stop - execution["startDate"]).total_seconds() if stop else float("nan")
    return SagaOutcome(
        saga_id=record["saga_id"],
        status=record["status"],
        execution_status=execution["status"],
        actions_succeeded=tuple(succeeded_actions),
        compensations_succeeded=tuple(succeeded_compensations),
        transitions=transitions,
        duration_seconds=duration,
        record=record,
    )


def choreographed_outcome_of(observer: Any, record: dict[str, Any]) -> SagaOutcome:
    """A choreographed saga's outcome: its record, and from the bus the steps whose action and compensation succeeded
    (no execution: no transitions, and its status is the record's)."""
    saga_id = record["saga_id"]
    started, ended = record.get("created_at"), record.get("updated_at")
    duration = float("nan")
    if started and ended:
        duration = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return SagaOutcome(
        saga_id=saga_id,
        status=record["status"],
        execution_status="CHOREOGRAPHED",
        actions_succeeded=observer.steps_with(saga_id, "Succeeded"),
        compensations_succeeded=observer.steps_with(saga_id, "Compensated"),
        transitions=0,
        duration_seconds=duration,
        record=record,
    )


def wait_until_finished(
    read_record: Callable[[str], dict[str, Any] | None],
    state_machine_arn: str | None,
    saga_ids: Iterable[str],
    *,
    timeout_seconds: float,
    on_finished: Callable[[str], None] | None = None,
    poll_seconds: float = 0.2,
) -> list[str]:
    """Wait until every saga's execution stopped and its record is terminal or parked; return the unfinished. A
    choreographed saga (`state_machine_arn` None) has no execution: its record alone says."""
    sfn = boto3.client("stepfunctions")
    waiting = set(saga_ids)
    deadline = time.monotonic() + timeout_seconds
    while waiting:
        # One call tells which are still running; only the others need their record read.
        running = set()
        if state_machine_arn is not None:
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=state_machine_arn, statusFilter="RUNNING"
            ):
                running |= {execution["name"] for execution in page["executions"]}
        for saga_id in sorted(waiting - running):
            if (read_record(saga_id) or {}).get("status") in FINISHED_STATUSES:
                waiting.discard(saga_id)
                if on_finished:
                    on_finished(saga_id)
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(poll_seconds)
    return sorted(waiting)
