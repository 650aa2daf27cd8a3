"""What must hold after a random-fault soak, checked on evidence read from the cloud itself (pure, no AWS calls).

The evidence is ground truth, not the soak runner's bookkeeping: saga records, the commands the saga sent (from its
execution history, or for a choreographed saga from the saga bus: saga_testkit.command_evidence), what is left on the
participant queues and in the dead-letter queues, the template's DLQ alarms evaluated on those depths, the stuck-saga
detector's reports, and the saga's invariant check.

- every saga the API accepted has a record, and that record is terminal, or parked and flagged by the detector;
- the saga's invariant check holds (its kit's: for the order example, stock and money reconcile exactly);
- every command sent is accounted for: answered by its participant, consumed after its task (or its choreographed
  step's deadline) timed out (nothing is left on its queue), in a DLQ whose alarm is in ALARM, or belongs to a saga
  reported in the stuck-sagas queue.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from saga_records import PARKED_STATUSES, TERMINAL_STATUSES

ANSWERED = frozenset({"succeeded", "failed"})  # the participant's callback reached the task
# CloudFormation's ComparisonOperator values, as CloudWatch evaluates them against the threshold.
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass(frozen=True)
class SentCommand:
    """One command sent to a participant queue: by the state machine (a TaskScheduled event of its execution), or by a
    rule of the saga bus (saga_testkit.command_evidence)."""

    saga_id: str
    step: str
    kind: str  # action | compensation
    queue_url: str
    token_digest: str | None  # None for a choreographed command: no task token
    answer: str  # succeeded | failed | timed_out | none (no answer: the task still waits, or no event answered it)


@dataclass(frozen=True)
class DeadLetter:
    queue_label: str
    source_url: str | None
    saga_id: str | None  # None when the body is not a saga command (a poison message)
    step: str | None = None
    kind: str | None = None
    token_digest: str | None = None


@dataclass(frozen=True)
class DlqAlarm:
    """A DLQ's depth and the state its alarm (from the template) evaluates to on that depth."""

    queue_label: str
    depth: int
    alarm: str | None  # the alarm's logical id; None when no alarm watches this queue
    state: str  # ALARM | OK | MISSING


@dataclass(frozen=True)
class SoakEvidence:
    accepted: list[str]  # saga ids the API answered 202 for
    statuses: dict[str, str]  # saga id -> status, from the saga records
    commands: list[SentCommand]
    left_on_queues: dict[str, int]  # participant queue URL -> messages visible or in flight at the end
    dead_letters: list[DeadLetter]
    dlq_alarms: list[DlqAlarm]
    stuck_reports: dict[str, set[str]]  # saga id -> statuses it was reported in
    invariant_problems: list[str]


@dataclass
class SoakVerdict:
    violations: list[str] = field(default_factory=list)
    accounting: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue URL, how) -> commands


def evaluate_alarm(properties: dict[str, Any], value: float) -> str:
    """ALARM or OK for a single-period threshold alarm (the template's DLQ depth alarms) given the metric's value."""
    compare = COMPARISONS[properties["ComparisonOperator"]]
    return "ALARM" if compare(value, float(properties["Threshold"])) else "OK"


def check(evidence: SoakEvidence) -> SoakVerdict:
    verdict = SoakVerdict()
    violations = verdict.violations
    finished = {status.value for status in TERMINAL_STATUSES}
    parked = {status.value for status in PARKED_STATUSES}
    flagged = {saga_id for saga_id, statuses in evidence.stuck_reports.items() if statuses}

    for saga_id in sorted(set(evidence.accepted) - set(evidence.statuses)):
        violations.append(f"saga {saga_id}: accepted by the API (202) but has no saga record")
    for saga_id, status in sorted(evidence.statuses.items()):
        if status in parked:
            if status not in evidence.stuck_reports.get(saga_id, set()):
                violations.append(f"saga {saga_id}: parked in {status} but not flagged in the stuck-sagas queue")
        elif status not in finished:
            violations.append(f"saga {saga_id}: not terminal ({status})")
    violations += [f"invariant check: {problem}" for problem in evidence.invariant_problems]

    for queue_url, left in sorted(evidence.left_on_queues.items()):
        if left:
            violations.append(f"queue {queue_url}: {left} message(s) never consumed")
    alarmed = {alarm.queue_label for alarm in evidence.dlq_alarms if alarm.state == "ALARM"}
    for alarm in evidence.dlq_alarms:
        if alarm.depth and alarm.state != "ALARM":
            violations.append(
                f"DLQ {alarm.queue_label}: {alarm.depth} message(s) but its alarm is {alarm.state} ({alarm.alarm})"
            )

    dead_lettered = Counter((d.saga_id, d.step, d.kind, d.token_digest) for d in evidence.dead_letters if d.saga_id)
    for command in evidence.commands:
        key = (command.saga_id, command.step, command.kind, command.token_digest)
        if dead_lettered[key]:
            how = "in an alarmed DLQ"
        elif command.answer in ANSWERED:
            how = "answered by its participant"
        elif command.answer == "timed_out" and not evidence.left_on_queues.get(command.queue_url):
            how = "consumed after its task timed out"
        elif command.saga_id in flagged:
            how = "its saga is in the stuck-sagas queue"
        else:
            how = "unaccounted"
            violations.append(
                f"command {command.saga_id}/{command.step}/{command.kind}: {command.answer}, not consumed, "
                "not in a DLQ and its saga not flagged"
            )
        verdict.accounting[(command.queue_url, how)] += 1
    for letter in evidence.dead_letters:
        if letter.saga_id is None:
            verdict.accounting[(letter.source_url or letter.queue_label, "not a command, in an alarmed DLQ")] += 1
    for label in sorted({letter.queue_label for letter in evidence.dead_letters} - alarmed):
        if not any(alarm.queue_label == label for alarm in evidence.dlq_alarms):
            violations.append(f"DLQ {label}: holds messages but no alarm watches it")
    return verdict
