"""Which commands a saga sent and how each was answered, read from what coordinated it: the soak's ground truth for
"every command accounted for", one source per pattern behind one interface.

- orchestration (`ExecutionHistories`): the execution history. Each `TaskScheduled` is a command on a participant
  queue (its task token), and the task's end (`TaskSucceeded`, `TaskFailed`, `TaskTimedOut`) its answer.
- choreography (`SagaBusEvents`): the saga bus, the same record of the same facts. A rule of the bus sends a command
  to its queue each time an event it matches is put on the bus (`TaskScheduled`), and the command is answered by the
  event its step and kind publish (`<step>.Succeeded` or `.Failed` for an action, `.Compensated` or
  `.CompensationFailed` for a compensation), or timed out by the tracker's `<step>.TimedOut` (`TaskTimedOut`). The
  rules are read from the deployed bus, the events from the test kit's own rule (saga_testkit.bus_observer): what the
  bus delivered, not what anyone says they did. The saga record's per-step marks cannot serve: they keep one outcome
  per step, written by the very participants and tracker under test, so a command that was never delivered, or
  delivered twice, leaves no trace there; nor can the participants' tables, which hold effects, not deliveries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import boto3

from saga_ops.deployment import BusRoute, Deployment
from saga_records import IN_FLIGHT_STATUSES
from saga_testkit.observe import execution_arn, history_events
from saga_testkit.soak_checks import SentCommand

# The events that answer a choreographed command, by kind: outcome -> the answer as SentCommand records it.
BUS_ANSWERS = {
    "action": {"Succeeded": "succeeded", "Failed": "failed", "TimedOut": "timed_out"},
    "compensation": {"Compensated": "succeeded", "CompensationFailed": "failed"},
}


class CommandEvidence(Protocol):
    description: str  # where the commands are read from, for the soak's tables

    def running(self) -> int:
        """Sagas of this type in flight now (the soak's back-pressure)."""
        ...

    def commands(self, saga_ids: Iterable[str]) -> list[SentCommand]:
        """Every command these sagas sent to a participant queue, and how each was answered."""
        ...


class ExecutionHistories:
    description = "execution histories"

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn
        self._sfn = boto3.client("stepfunctions")

    def running(self) -> int:
        return sum(
            len(page["executions"])
            for page in self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
        )

    def commands(self, saga_ids: Iterable[str]) -> list[SentCommand]:
        return [
            command
            for saga_id in saga_ids
            for command in sent_commands(saga_id, execution_arn(self.state_machine_arn, saga_id))
        ]


class SagaBusEvents:
    description = "saga bus events"

    def __init__(self, observer: Any, records: Any, saga_type: str, stack_name: str) -> None:
        """`observer`: the kit's BusObserver of this saga type (its rule in place before the sagas started)."""
        self.observer, self.records, self.saga_type, self.stack_name = observer, records, saga_type, stack_name

    def running(self) -> int:
        return sum(
            1
            for status in IN_FLIGHT_STATUSES
            for record in self.records.in_status(status)
            if record.get("saga_type") == self.saga_type
        )

    def commands(self, saga_ids: Iterable[str]) -> list[SentCommand]:
        routes = Deployment.load(self.stack_name).bus_routes(self.saga_type)
        return [
            command
            for saga_id in saga_ids
            for command in bus_commands(
                saga_id, [event["detail-type"] for event in self.observer.events_of(saga_id)], routes
            )
        ]


def bus_commands(saga_id: str, detail_types: Sequence[str], routes: Sequence[BusRoute]) -> list[SentCommand]:
    """The commands the bus sent for one saga, given the detail-types of its events in order of arrival and the bus's
    rules, each answered by the first unanswered event of its step and kind (a command no event answered: "none")."""
    commands: list[dict[str, Any]] = [
        {"saga_id": saga_id, "step": route.step, "kind": route.kind, "queue_url": route.queue_url, "answer": "none"}
        for event in detail_types
        for route in routes
        if event in route.detail_types
    ]
    for event in detail_types:
        step, _, outcome = event.partition(".")
        for kind, answers in BUS_ANSWERS.items():
            if outcome not in answers:
                continue
            waiting = next(
                (c for c in commands if (c["step"], c["kind"], c["answer"]) == (step, kind, "none")),
                None,
            )
            if waiting is not None:
                waiting["answer"] = answers[outcome]
    return [SentCommand(**command, token_digest=None) for command in commands]


def sent_commands(saga_id: str, arn: str) -> list[SentCommand]:
    """Every command the execution sent to a participant queue, and how its task ended."""
    commands: list[dict[str, Any]] = []
    for event in history_events(arn):
        kind = event["type"]
        if kind == "TaskScheduled":
            parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
            body = parameters.get("MessageBody")
            body = json.loads(body) if isinstance(body, str) else body
            if not isinstance(body, dict) or "task_token" not in body:
                continue
            commands.append(
                {
                    "saga_id": saga_id,
                    "step": body["step"],
                    "kind": body["kind"],
                    "queue_url": parameters["QueueUrl"],
                    "token_digest": token_digest(body["task_token"]),
                    "answer": "none",
                }
            )
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut") and commands and commands[-1]["answer"] == "none":
            commands[-1]["answer"] = {"TaskSucceeded": "succeeded", "TaskFailed": "failed"}.get(kind, "timed_out")
    return [SentCommand(**command) for command in commands]


def token_digest(token: str | None) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def command_identity(body: Any) -> tuple[str, str, str, str | None] | None:
    """(saga id, step, kind, token digest) of a command message's parsed body; None for anything else. A rule's
    command carries its saga id in the event it put under `event`, and has no token."""
    if not isinstance(body, dict) or not {"step", "kind"} <= set(body):
        return None
    event = body.get("event")
    saga_id = event.get("saga_id") if isinstance(event, dict) else body.get("saga_id")
    if not isinstance(saga_id, str):
        return None
    return saga_id, body["step"], body["kind"], token_digest(body.get("task_token"))


def command_evidence(sagas: Any) -> CommandEvidence:
    """The evidence source of a LocalSagas' pattern."""
    if sagas.choreographed:
        if sagas.observer is None:
            raise ValueError(f"{sagas.definition.name}: the soak reads the bus, so it needs the kit's observer")
        return SagaBusEvents(sagas.observer, sagas.records, sagas.definition.name, sagas.cloud.stack_name)
    return ExecutionHistories(sagas.state_machine_arn)
