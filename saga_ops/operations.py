"""What an operator can do to sagas, independent of how it is shown (saga_ops.cli renders it).

Every change is conditional on the status the operator saw, so two operators (or an operator and the state machine)
never both act on one saga, and each resume or resolve is appended to the saga's `operator_actions` with who, when and
why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3

from saga_operations.detector import StuckSaga, StuckSagaDetector
from saga_operations.records import OperationsRecords
from saga_ops.deployment import DeadLetterQueue, Deployment
from saga_records import PARKED_STATUSES, SagaStatus, StepStatus, utc_now
from saga_records.starter import CHOREOGRAPHY_EXECUTION_PREFIX
from statemachines import SagaDefinition, Step, load_definition, saga_files
from statemachines.deadline import saga_deadline_seconds

# Parked sagas whose compensations `resume --retry` re-runs, and the one whose forward steps it re-runs.
COMPENSATION_RESUMABLE = (SagaStatus.COMPENSATION_FAILED, SagaStatus.EXECUTION_FAILED)
FORWARD_RESUMABLE = SagaStatus.FORWARD_RECOVERY_FAILED
RESUMABLE_STATUSES = (*COMPENSATION_RESUMABLE, FORWARD_RESUMABLE)
Progress = Callable[[str, int, int], None]  # (what, done, total)
DeadLetters = tuple[DeadLetterQueue, int, list[dict[str, Any]]]  # queue, depth, first messages described


class OperatorError(Exception):
    """A request the operator must change; the message says what (the CLI prints it and exits 2)."""


class SagaNotFound(OperatorError):
    pass


class NotResumable(OperatorError):
    pass


@dataclass(frozen=True)
class ResumeOutcome:
    saga_id: str
    status: str
    done: list[str]  # the steps compensated, or (forward recovery) run, in order
    failed_step: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """The saga reached its end: every completed step compensated (FAILED) or every step done (COMPLETED)."""
        return self.status in (SagaStatus.FAILED, SagaStatus.COMPLETED)


@dataclass
class RedriveOutcome:
    queue: str
    moved: int = 0
    skipped: list[str] = field(default_factory=list)


def _no_progress(_what: str, _done: int, _total: int) -> None:
    return None


class SagaOperator:
    def __init__(
        self,
        deployment: Deployment,
        *,
        definitions: list[SagaDefinition] | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        self.deployment = deployment
        self.records = OperationsRecords(deployment.saga_table)
        if definitions is None:  # an empty list means no saga is known, not the project's sagas
            definitions = [load_definition(path) for path in saga_files()]
        self.definitions = {d.name: d for d in definitions}
        self.poll_seconds = poll_seconds

    @cached_property
    def _sqs(self) -> Any:
        return boto3.client("sqs")

    @cached_property
    def _sfn(self) -> Any:
        return boto3.client("stepfunctions")

    # --- reading ---

    def list_sagas(self, status: SagaStatus, *, limit: int = 50) -> list[dict[str, Any]]:
        return self.records.list_by_status(status, limit=limit)

    def show(self, saga_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The saga record and its execution's history events (empty when it never started)."""
        record = self.records.get(saga_id)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id}")
        history: list[dict[str, Any]] = []
        # A choreographed saga has no execution: its record is the whole story (the tracker keeps it)
        if record.get("execution_arn") and not record["execution_arn"].startswith(CHOREOGRAPHY_EXECUTION_PREFIX):
            paginator = self._sfn.get_paginator("get_execution_history")
            for page in paginator.paginate(executionArn=record["execution_arn"]):
                history += page["events"]
        return record, history

    def pending(self, record: dict[str, Any]) -> list[dict[str, str]]:
        """What `resume --retry` would run for a parked saga, in order: its record's `pending` list (the park states
        write it), or, for a saga parked where none ran (EXECUTION_FAILED), what its definition says is left."""
        if record.get("status") not in RESUMABLE_STATUSES:
            return []
        if "pending" in record:
            return record["pending"]
        plan = Plan.of(self._definition(record), record)
        return pending_entries(plan.steps, plan.kind)

    def stuck(self, *, time_scale: float = 1.0) -> list[StuckSaga]:
        """What the detector would report now (without reporting it)."""
        deadlines = {name: saga_deadline_seconds(definition) for name, definition in self.definitions.items()}
        return StuckSagaDetector(self.records, None, deadlines=deadlines, time_scale=time_scale).find()

    def take_stuck_reports(self, *, max_messages: int = 10) -> list[dict[str, Any]]:
        """Take the reports waiting in the stuck-sagas queue: read, then deleted (the operator has them now)."""
        queue_url = self.deployment.stuck_sagas_queue_url
        messages = self._sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(max_messages, 10), WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]

    def dead_letters(self, *, max_messages: int = 10) -> list[DeadLetters]:
        """Every DLQ with its depth and a peek at its first messages (identifiers only, never task tokens)."""
        found = []
        for queue in self.deployment.dead_letter_queues:
            depth = self.depth(queue.url)
            peeked = [_describe_message(message) for message in self._peek(queue.url, max_messages)] if depth else []
            found.append((queue, depth, peeked))
        return found

    # --- DLQ redrive ---

    def redrive(self, queue: DeadLetterQueue, *, progress: Progress = _no_progress) -> RedriveOutcome:
        """Move every message back to the queue it dead-lettered from.

        A command whose task token expired meanwhile does no harm: the saga was compensated around it, so the
        participant's tombstone refuses a late action (or its idempotency record answers it), and the callback the
        participant then sends is refused as late and swallowed.
        """
        if queue.source_url is None:
            raise OperatorError(f"{queue.label} is not an SQS dead-letter queue: inspect its events, it has no source")
        outcome = RedriveOutcome(queue=queue.label)
        total = self.depth(queue.url)
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return outcome
            for message in messages:
                self._sqs.send_message(
                    QueueUrl=queue.source_url,
                    MessageBody=message["Body"],
                    **({"MessageAttributes": message["MessageAttributes"]} if message.get("MessageAttributes") else {}),
                )
                self._sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
                outcome.moved += 1
                progress(queue.label, outcome.moved, max(total, outcome.moved))

    # --- parked sagas ---

    def resume(
        self,
        saga_id: str,
        *,
        reason: str,
        by: str,
        wait_seconds: float = 300,
        progress: Progress = _no_progress,
    ) -> ResumeOutcome:
        """Re-run what the parked saga has pending, one command at a time, through the participants.

        COMPENSATION_FAILED, or EXECUTION_FAILED before the pivot: the failed compensation, then the remaining ones in
        reverse order; the saga ends FAILED (every completed step compensated). FORWARD_RECOVERY_FAILED, or
        EXECUTION_FAILED at or past the pivot: the stalled step (the pivot or a retriable one), then every step after
        it; the saga ends COMPLETED. Should the pivot refuse (an error its retries do not cover), the steps before it
        are compensated, as the state machine would have, and the saga ends FAILED. Each command is sent without a
        task token (no execution waits any more): the participant runs it under a fresh idempotency key and writes the
        outcome on the saga record, which is awaited before the next one is sent. A step that fails again parks the
        saga again there, with what is still pending.
        """
        record = self._record(saga_id)
        require_reason(reason)
        if record["status"] not in RESUMABLE_STATUSES:
            raise NotResumable(
                f"saga {saga_id} is {record['status']}; only {', '.join(RESUMABLE_STATUSES)} sagas can be resumed"
            )
        definition = self._definition(record)
        plan = Plan.of(definition, record)
        entry = _audit("retry", reason=reason, by=by, from_status=record["status"])
        entry["steps"] = [step.name for step in plan.steps]
        if not self.records.record_operator_action(
            saga_id, expected=[record["status"]], new_status=plan.running, entry=entry
        ):
            raise NotResumable(f"saga {saga_id} changed while resuming it; look again with `show`")
        run = _Run(saga_id, definition, len(record.get("operator_actions", [])) + 1, reason, by, wait_seconds, progress)
        return self._run(run, plan)

    def _run(self, run: _Run, plan: Plan) -> ResumeOutcome:
        """Run `plan`'s steps in order, each awaited on the saga record; park again where one fails."""
        saga_id, forward = run.saga_id, plan.kind == "action"
        done: list[str] = []
        for index, step in enumerate(plan.steps):
            run.progress(step.name, index, len(plan.steps))
            self.records.mark_step(saga_id, step.name, plan.step_running, saga_status=plan.running, current=forward)
            self._send(run.definition, self._record(saga_id), step, plan.kind, run.attempt)
            step_state = self._await_step(saga_id, step.name, plan, run.wait_seconds)
            if step_state.get("status") != plan.step_done:
                error = step_state.get("error") or plan.timed_out_error
                cause = step_state.get("cause") or ""
                if forward and step.pivot and error not in (*step.action_retry.errors, plan.timed_out_error):
                    return self._compensate_refused_pivot(run, plan, step, error, cause)
                left = plan.steps[index:]
                sets: dict[str, Any] = {"failed_step": step.name, "pending": pending_entries(left, plan.kind)}
                if forward:
                    sets |= {"error": error, "cause": cause}
                else:
                    sets |= {"compensation_error": error, "compensation_cause": cause}
                self.records.record_operator_action(
                    saga_id,
                    expected=[plan.running],
                    new_status=plan.parked,
                    entry=_audit("retry-failed", reason=run.reason, by=run.by, step=step.name, error=error),
                    sets=sets,
                )
                return ResumeOutcome(saga_id, plan.parked, done, step.name, error)
            done.append(step.name)
        run.progress("done", len(plan.steps), len(plan.steps))
        self.records.record_operator_action(
            saga_id,
            expected=[plan.running],
            new_status=plan.finished,
            entry=_audit("retry-succeeded", reason=run.reason, by=run.by, steps=done),
            sets={"pending": []},
        )
        return ResumeOutcome(saga_id, plan.finished, done)

    def _compensate_refused_pivot(self, run: _Run, plan: Plan, pivot: Step, error: str, cause: str) -> ResumeOutcome:
        """The pivot said no this time (its fare expired meanwhile, say): nothing past it ever ran, so the saga goes
        back as the state machine takes a refusal of its pivot, compensating every step before it, last first."""
        compensations = Plan.compensations(run.definition, {"saga_id": run.saga_id, "failed_step": pivot.name})
        if not self.records.record_operator_action(
            run.saga_id,
            expected=[plan.running],
            new_status=compensations.running,
            entry=_audit("pivot-refused", reason=run.reason, by=run.by, step=pivot.name, error=error),
            sets={"failed_step": pivot.name, "error": error, "cause": cause},
        ):
            raise NotResumable(f"saga {run.saga_id} changed while resuming it; look again with `show`")
        return self._run(run, compensations)

    def resolve(self, saga_id: str, *, reason: str, by: str) -> dict[str, Any]:
        """Close a parked saga by hand (the operator fixed its effects outside the system): nothing is pending any
        more; the steps keep the statuses they had, the audit trail says who closed it and why."""
        record = self._record(saga_id)
        require_reason(reason)
        if record["status"] not in PARKED_STATUSES:
            raise NotResumable(f"saga {saga_id} is {record['status']}; only parked sagas can be resolved by hand")
        entry = _audit("resolve", reason=reason, by=by, from_status=record["status"])
        entry["pending"] = [f"{item['step']} ({item['kind']})" for item in record.get("pending", [])]
        if not self.records.record_operator_action(
            saga_id, expected=[record["status"]], new_status=SagaStatus.RESOLVED, entry=entry, sets={"pending": []}
        ):
            raise NotResumable(f"saga {saga_id} changed while resolving it; look again with `show`")
        return self._record(saga_id)

    # --- helpers ---

    def _record(self, saga_id: str) -> dict[str, Any]:
        record = self.records.get(saga_id)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id}")
        return record

    def _definition(self, record: dict[str, Any]) -> SagaDefinition:
        """The definition of the record's saga type: every type the stack runs is resumable."""
        saga_type = record.get("saga_type", "")
        if saga_type not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none"
            raise OperatorError(
                f"saga {record['saga_id']} is a {saga_type!r} saga, and no saga definition of that name is known "
                f"here (known: {known}): run the CLI from the checkout the stack was deployed from"
            )
        return self.definitions[saga_type]

    def _send(self, definition: SagaDefinition, record: dict[str, Any], step: Step, kind: str, attempt: int) -> None:
        """The command the state machine would send for `step`'s `kind`, without a task token."""
        saga_id = record["saga_id"]
        results = {
            name: state["result"]
            for name, state in record.get("steps", {}).items()
            if "result" in state and state.get("status") == StepStatus.SUCCEEDED
        }
        command: dict[str, Any] = {
            "saga_id": saga_id,
            "saga_type": definition.name,
            "step": step.name,
            "kind": kind,
            "command": step.action if kind == "action" else step.compensation,
            # A fresh key: the failed attempt's outcome is remembered under the state machine's key.
            "idempotency_key": f"{saga_id}#{step.name}#{kind}#operator-{attempt}",
            "heartbeat_seconds": step.sla.heartbeat_seconds,
            "input": record["input"],
            "results": results,
        }
        if kind == "compensation":
            command["error"] = {"Error": record.get("error") or "", "Cause": record.get("cause") or ""}
        else:
            # As the compiler places an action: its neighbours, and (only the pivot and retriable steps are re-run)
            # recovered forward
            names = [each.name for each in definition.steps]
            index = names.index(step.name)
            command |= {"retriable": True}
            if index > 0:
                command["previous_step"] = names[index - 1]
            if index + 1 < len(names):
                command["next_step"] = names[index + 1]
        queue_url = self.deployment.command_queue_url(definition.name, command["command"])
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(command, separators=(",", ":")))

    def _await_step(self, saga_id: str, step: str, plan: Plan, wait_seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait_seconds
        while True:
            state = (self._record(saga_id).get("steps") or {}).get(step, {})
            if state.get("status") in (plan.step_done, plan.step_failed):
                return state
            if time.monotonic() > deadline:
                return state
            time.sleep(self.poll_seconds)

    def depth(self, queue_url: str) -> int:
        """Messages in a queue, visible or in flight."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def _peek(self, queue_url: str, max_messages: int) -> list[dict[str, Any]]:
        """Read without consuming: the messages become visible again at once."""
        messages = self._sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(max_messages, 10),
            VisibilityTimeout=0,
            AttributeNames=["All"],
        ).get("Messages", [])
        return messages


def compensations_left(definition: SagaDefinition, record: dict[str, Any]) -> list[Step]:
    """The failed step's compensation, then every earlier step's, in reverse order (as the state machine would)."""
    names = [step.name for step in definition.steps]
    failed = record.get("failed_step") or record.get("current_step")
    start = names.index(failed) if failed in names else len(names) - 1
    return [step for step in reversed(definition.steps[: start + 1]) if step.compensation is not None]


def forward_steps_left(definition: SagaDefinition, record: dict[str, Any]) -> list[Step]:
    """The stalled step (the pivot or a retriable one), then every step after it, in order (as the state machine would
    have run them)."""
    names = [step.name for step in definition.steps]
    stalled = record.get("failed_step") or record.get("current_step")
    if stalled not in names:
        raise NotResumable(f"saga {record['saga_id']} names no step of {definition.name} to resume from: {stalled!r}")
    return definition.steps[names.index(stalled) :]


def pending_entries(steps: list[Step], kind: str) -> list[dict[str, str]]:
    """The saga record's `pending` list (as the park states write it): what is still to run, in order."""
    return [{"step": step.name, "kind": kind} for step in steps]


@dataclass(frozen=True)
class _Run:
    """One operator's resume: whose saga, under which definition, and how to report and wait."""

    saga_id: str
    definition: SagaDefinition
    attempt: int  # numbers the fresh idempotency keys of this resume's commands
    reason: str
    by: str
    wait_seconds: float
    progress: Progress


@dataclass(frozen=True)
class Plan:
    """What a resume runs, and the statuses it moves the saga and each step through."""

    kind: str  # action | compensation
    steps: list[Step]
    running: SagaStatus  # the saga while the operator runs it
    finished: SagaStatus
    parked: SagaStatus  # where a step failing again parks it
    step_running: StepStatus
    step_done: StepStatus
    step_failed: StepStatus
    timed_out_error: str

    @classmethod
    def of(cls, definition: SagaDefinition, record: dict[str, Any]) -> Plan:
        """Forward for a saga stalled at or past its pivot (parked FORWARD_RECOVERY_FAILED, or an execution that ended
        there: the pivot may have acted, and is never compensated); back, compensating, for any other."""
        if record["status"] == FORWARD_RESUMABLE:
            return cls.forward(definition, record)
        step = record.get("failed_step") or record.get("current_step")
        names = [each.name for each in definition.steps]
        if step in names and definition.steps[names.index(step)].forward_recovery:
            return cls.forward(definition, record)
        return cls.compensations(definition, record)

    @classmethod
    def compensations(cls, definition: SagaDefinition, record: dict[str, Any]) -> Plan:
        return cls(
            "compensation",
            compensations_left(definition, record),
            SagaStatus.COMPENSATING,
            SagaStatus.FAILED,
            SagaStatus.COMPENSATION_FAILED,
            StepStatus.COMPENSATING,
            StepStatus.COMPENSATED,
            StepStatus.COMPENSATION_FAILED,
            "Operator.CompensationTimedOut",
        )

    @classmethod
    def forward(cls, definition: SagaDefinition, record: dict[str, Any]) -> Plan:
        steps = forward_steps_left(definition, record)
        not_retriable = [step.name for step in steps if not step.forward_recovery]
        if not_retriable:
            raise NotResumable(
                f"saga {record['saga_id']}: {', '.join(not_retriable)} is neither the pivot nor retriable; only those "
                "run forward again (resolve it by hand)"
            )
        return cls(
            "action",
            steps,
            SagaStatus.PENDING,
            SagaStatus.COMPLETED,
            SagaStatus.FORWARD_RECOVERY_FAILED,
            StepStatus.RUNNING,
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            "Operator.StepTimedOut",
        )


def require_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise OperatorError("--reason is required: say why, it is kept on the saga record")


def _audit(action: str, *, reason: str, by: str, **details: Any) -> dict[str, Any]:
    return {"action": action, "reason": reason.strip(), "by": by, "at": utc_now(), **details}


def _describe_message(message: dict[str, Any]) -> dict[str, Any]:
    """Identifiers of a dead-lettered message; the body's task token and payload are never shown."""
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    keys = ("saga_id", "step", "kind", "command")
    described = {key: str(body.get(key, "?")) for key in keys}
    described["receives"] = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
    described["message_id"] = message["MessageId"]
    return described
