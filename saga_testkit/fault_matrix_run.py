"""The fault matrix run on a local cloud: every cell of every saga given, at once, then each cell's evidence checked.

`run_fault_matrix(sagas)` plans each applicable cell's faults on a saga of its own (its kit's sample input), starts
them a few at a time (the slowest to account for first), waits until every saga finished and what follows has
happened (poison in its DLQ, crashed commands delivered again late), and gathers per cell the ground truth: the saga
record, the execution history, how often each participant's domain code ran and took effect, which of the saga's
commands sit in a DLQ, and its saga type's invariant check. `cell_problems(definition, cell, evidence)` compares one
cell's evidence with what the definition predicts (saga_testkit.fault_matrix); it is pure, so it is tested on its own.

Sagas of several types run together on one cloud: the poisoned commands' wait dominates the run's wall time, and it
is spent once for all of them.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3

from saga_testkit.fault_matrix import FaultCell, NotApplicable, fault_matrix
from saga_testkit.observe import FINISHED_STATUSES, SagaOutcome
from saga_testkit.sagas import LocalSagas
from statemachines import SagaDefinition

SETTLE_SECONDS = 300  # a deadline, not a timing: every cell finished, poison dead-lettered, late deliveries done
ENVIRONMENTS_PER_PARTICIPANT = 4
IN_FLIGHT = 3  # sagas of one type running at once (each type's cells run beside the other types')
KINDS = ("action", "compensation")
# Not a saga command at all (a poisoned one is truncated JSON): it cycles to its DLQ beside the matrix's sagas.
STRAY_MESSAGE = '{"not": "a saga command"}'


@dataclass(frozen=True)
class CellEvidence:
    """What one cell's saga left behind, read from the cloud once everything settled."""

    saga_id: str
    outcome: SagaOutcome
    attempts: dict[tuple[str, str], int]  # (step, kind) -> calls of the participant's domain code
    effects: dict[tuple[str, str], int]  # (step, kind) -> times that code returned (took effect, or found it taken)
    dead_letters: tuple[tuple[str, str], ...]  # (step, kind) of each command of this saga found in a DLQ
    parked: bool  # its type's invariant check hands it to an operator
    invariant_problems: tuple[str, ...]  # the problems of its type's invariant check that name it


@dataclass
class MatrixRun:
    evidence: dict[tuple[str, str], CellEvidence]  # (saga name, cell id) -> its evidence
    invariant_problems: dict[str, list[str]]  # saga name -> every problem of its type's invariant check
    stray_dead_letters: list[str] = field(default_factory=list)  # bodies of the stray message found in its DLQ
    finished_seconds: float = 0.0  # from the first start until every saga finished
    wall_seconds: float = 0.0  # ... until everything that follows had happened too

    def problems(self, saga: SagaDefinition, cell: FaultCell) -> list[str]:
        return cell_problems(saga, cell, self.evidence[(saga.name, cell.id)])


def applicable_cells(definition: SagaDefinition) -> list[FaultCell]:
    return [cell for cell in fault_matrix(definition) if isinstance(cell, FaultCell)]


def cell_saga_ids(definitions: list[SagaDefinition]) -> dict[tuple[str, str], str]:
    """(saga name, cell id) -> the saga id its cell runs as: distinct across every saga type and cell."""
    ids = {}
    for definition in definitions:
        for index, cell in enumerate(applicable_cells(definition)):
            ids[(definition.name, cell.id)] = f"matrix-{definition.name}-{index:03d}-{cell.id}"[:80]
    return ids


def run_fault_matrix(
    sagas: list[LocalSagas],
    *,
    in_flight: int = IN_FLIGHT,
    environments: int = ENVIRONMENTS_PER_PARTICIPANT,
    settle_seconds: float = SETTLE_SECONDS,
    seed: int = 0,
) -> MatrixRun:
    """Run every applicable cell of every saga in `sagas` (one LocalSagas per type, one cloud) and gather the evidence.

    Whatever happens, nothing of these sagas is left for later tests on the cloud: faults cleared, every command
    handled or dead-lettered, and their dead letters taken."""
    saga_ids = cell_saga_ids([local.definition for local in sagas])
    by_name = {local.definition.name: local for local in sagas}
    cells = [(local, cell) for local in sagas for cell in applicable_cells(local.definition)]
    rng = random.Random(seed)
    inputs = {}
    for local in sagas:
        mine = [cell for owner, cell in cells if owner is local]
        local.kit.prepare(len(mine))
        for number, cell in enumerate(mine, start=1):
            inputs[saga_ids[(local.definition.name, cell.id)]] = local.kit.sample_input(number, rng)
    for local, cell in cells:
        for planned in cell.plans:
            local.faults.plan(saga_ids[(local.definition.name, cell.id)], planned.step, planned.kind, planned.fault)
    queues = command_queues(sagas)
    # And garbage on one command queue, which no saga waits for
    stray_queue, stray_dlq = next(iter(queues.values()))
    sagas[0].faults.send_unusable(boto3.client("sqs"), stray_queue, STRAY_MESSAGE)
    try:
        return _run(by_name, cells, saga_ids, inputs, queues, stray_dlq, in_flight, environments, settle_seconds)
    finally:
        for local, cell in cells:
            for planned in cell.plans:
                local.faults.clear(saga_ids[(local.definition.name, cell.id)], planned.step, planned.kind)
        _settle(queues, late=[], deadline=time.monotonic() + settle_seconds)
        _take_dead_letters(queues, saga_ids)


def command_queues(sagas: list[LocalSagas]) -> dict[str, tuple[str, str]]:
    """Handler -> (queue URL, DLQ URL) of every participant queue the given sagas send commands to."""
    handlers = {
        step.handler(command) for local in sagas for step in local.definition.steps for command in step.commands
    }
    sqs = boto3.client("sqs")
    queues = {}
    for mapping in sagas[0].cloud.mappings:
        if mapping.function.handler not in handlers:
            continue
        policy = sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["RedrivePolicy"])
        dlq_arn = json.loads(policy["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
        queues[mapping.function.handler] = (
            mapping.queue_url,
            sqs.get_queue_url(QueueName=dlq_arn.split(":")[-1])["QueueUrl"],
        )
    return queues


def _step_of(definition: SagaDefinition, handler: str) -> tuple[str, str] | None:
    """(step, kind) of `definition` whose command `handler` serves; None when none of its steps uses it."""
    for step in definition.steps:
        for command in step.commands:
            if step.handler(command) == handler:
                return step.name, "action" if command == step.action else "compensation"
    return None


def _run(
    by_name: dict[str, LocalSagas],
    cells: list[tuple[LocalSagas, FaultCell]],
    saga_ids: dict[tuple[str, str], str],
    inputs: dict[str, dict[str, Any]],
    queues: dict[str, tuple[str, str]],
    stray_dlq: str,
    in_flight: int,
    environments: int,
    settle_seconds: float,
) -> MatrixRun:
    # More consumers per queue: a command waiting behind others in a batch sends no heartbeat (HeartbeatSeconds at
    # this time scale is under a second), so the backlog of many sagas at once would time tasks out.
    for local in by_name.values():
        local.scale_out(environments)
    # Cells whose ending takes longest (a poisoned command needs maxReceiveCount receives, a crashed one comes back
    # after its visibility timeout) go first, so that wait overlaps the other cells' runs.
    waiting = sorted(cells, key=lambda pair: not (pair[1].expected.dead_lettered or pair[1].expected.late_redelivery))
    started = time.monotonic()
    deadline = started + settle_seconds
    running: dict[str, LocalSagas] = {}
    while (waiting or running) and time.monotonic() < deadline:
        busy = Counter(local.definition.name for local in running.values())
        for local, cell in [pair for pair in waiting]:
            if busy[local.definition.name] >= in_flight:
                continue
            waiting.remove((local, cell))
            busy[local.definition.name] += 1
            saga_id = saga_ids[(local.definition.name, cell.id)]
            local.start(saga_id, inputs[saga_id])
            running[saga_id] = local
        time.sleep(0.05)
        running = {
            saga_id: local
            for saga_id, local in running.items()
            if (local.records.get(saga_id) or {}).get("status") not in FINISHED_STATUSES
        }
    unfinished = []
    for local in by_name.values():
        ids = [saga_ids[(local.definition.name, cell.id)] for owner, cell in cells if owner is local]
        unfinished += local.wait(ids, timeout_seconds=max(1.0, deadline - time.monotonic()))
    if unfinished:
        raise AssertionError(f"fault matrix: did not finish: {unfinished}")
    finished = time.monotonic() - started
    # ... and what happens after a saga ends has happened: poison reaches its DLQ, crashed commands come back late
    late = [
        (by_name[local.definition.name], saga_ids[(local.definition.name, cell.id)], *cell.expected.late_redelivery)
        for local, cell in cells
        if cell.expected.late_redelivery
    ]
    _settle(queues, late=late, deadline=deadline)
    wall = time.monotonic() - started
    names = ", ".join(by_name)
    print(f"\nfault matrix: {len(cells)} cells of {names} settled in {wall:.1f} s (finished after {finished:.1f} s)")
    checks = {name: local.check() for name, local in by_name.items()}
    dead_letters = _take_dead_letters(queues, saga_ids, by_name)
    evidence = {}
    for local, cell in cells:
        name = local.definition.name
        saga_id = saga_ids[(name, cell.id)]
        keys = [(step.name, kind) for step in local.definition.steps for kind in KINDS]
        evidence[(name, cell.id)] = CellEvidence(
            saga_id=saga_id,
            outcome=local.outcome(saga_id),
            attempts={key: local.faults.attempts(saga_id, *key) for key in keys},
            effects={key: local.faults.effects(saga_id, *key) for key in keys},
            dead_letters=tuple(sorted(dead_letters.get(saga_id, []))),
            parked=saga_id in checks[name].parked,
            invariant_problems=tuple(problem for problem in checks[name].problems if saga_id in problem),
        )
    return MatrixRun(
        evidence=evidence,
        invariant_problems={name: check.problems for name, check in checks.items()},
        stray_dead_letters=[body for body, _ in _take(stray_dlq, lambda body: [body] if body == STRAY_MESSAGE else [])],
        finished_seconds=finished,
        wall_seconds=wall,
    )


def _settle(queues: dict[str, tuple[str, str]], *, late: list[Any], deadline: float) -> None:
    """Until every late delivery happened and every participant queue is empty (poison in its DLQ by then)."""
    sqs = boto3.client("sqs")
    while time.monotonic() < deadline:
        redelivered = all(owner.faults.attempts(saga_id, step, kind) >= 2 for owner, saga_id, step, kind in late)
        if redelivered and all(_depth(sqs, url) == 0 for url, _ in queues.values()):
            return
        time.sleep(0.25)


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _take(dlq_url: str, owners_of: Any) -> list[tuple[str, list[str]]]:
    """Read a DLQ through: each message `owners_of(body)` names is removed and returned as (body, owners); the others
    are made visible again once it has been read through (at once, they would be received again and again)."""
    sqs = boto3.client("sqs")
    taken, others = [], []
    while messages := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    ):
        for message in messages:
            if owners := owners_of(message["Body"]):
                taken.append((message["Body"], owners))
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                others.append(message["ReceiptHandle"])
    for receipt in others:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return taken


def _take_dead_letters(
    queues: dict[str, tuple[str, str]],
    saga_ids: dict[tuple[str, str], str],
    by_name: dict[str, LocalSagas] | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """Every DLQ message naming one of the cells' sagas (a poisoned body is truncated JSON, so match the text), removed
    once attributed: accounted for here, and not left for later tests' redrives. Saga id -> (step, kind) of each."""
    type_of = {saga_id: name for (name, _), saga_id in saga_ids.items()}
    found: dict[str, list[tuple[str, str]]] = {}

    def naming(body: str) -> list[str]:
        return [saga_id for saga_id in type_of if f'"{saga_id}"' in body]

    for handler, (_, dlq_url) in queues.items():
        for _, owners in _take(dlq_url, naming):
            for saga_id in owners:
                local = (by_name or {}).get(type_of[saga_id])
                step = _step_of(local.definition, handler) if local else None
                found.setdefault(saga_id, []).append(step or ("?", handler))
    return found


def cell_problems(definition: SagaDefinition, cell: FaultCell, evidence: CellEvidence) -> list[str]:
    """Where the cell's saga differs from what the definition predicts; [] when it ended exactly as expected."""
    expected, outcome, record = cell.expected, evidence.outcome, evidence.outcome.record
    problems = []

    def differs(what: str, found: object, wanted: object) -> None:
        if found != wanted:
            problems.append(f"{what}: expected {wanted!r}, found {found!r}")

    # The saga ended as the definition says
    differs("status", outcome.status, str(expected.status))
    differs("error", record.get("error"), expected.error)
    differs("parked step", record.get("failed_step"), expected.parked_step)
    differs("compensation error", record.get("compensation_error"), expected.compensation_error)
    # (a parked saga is flagged: handed to an operator, not checked as if it had ended)
    differs("handed to an operator", evidence.parked, expected.parked_step is not None)
    # The history shows exactly these actions and compensations, in this order (so each one once)
    differs("actions succeeded", outcome.actions_succeeded, expected.actions_succeeded)
    differs("compensations succeeded", outcome.compensations_succeeded, expected.compensations_succeeded)
    # Each took effect once in its participant, whatever was delivered (its domain code may find it taken once more)
    late = expected.late_redelivery
    for step in definition.steps:
        if late and late[0] == step.name:
            # The crashed command came back after the saga had moved on: delivered again, refused or undone (more than
            # once when a delivery finds the saga record not yet showing whether it kept the step: the toolkit hands
            # it back to SQS to decide later)
            attempts = evidence.attempts.get((step.name, "action"), 0)
            if attempts < 2:
                problems.append(f"{step.name} action attempts: expected at least 2, found {attempts}")
            continue
        acted = 1 if step.name in expected.actions_succeeded + expected.acted_unanswered else 0
        differs(f"{step.name} action effects", evidence.effects.get((step.name, "action"), 0), acted)
        undone = 1 if step.name in expected.compensations_succeeded else 0
        differs(f"{step.name} compensation effects", evidence.effects.get((step.name, "compensation"), 0), undone)
    # Exactly the poisoned command sits in a DLQ, once; no other command of this saga does
    differs("dead letters", tuple(sorted(evidence.dead_letters)), tuple(sorted(expected.dead_lettered)))
    # Its saga type's invariants hold for it
    differs("invariant problems", list(evidence.invariant_problems), [])
    return problems


def pattern_pairs(definitions: list[SagaDefinition]) -> list[tuple[SagaDefinition, SagaDefinition]]:
    """(orchestrated, choreographed): the sagas of the project defined twice, with the same steps in both patterns."""
    return [
        (orchestrated, choreographed)
        for orchestrated in definitions
        if orchestrated.pattern == "orchestration"
        for choreographed in definitions
        if choreographed.pattern == "choreography" and choreographed.steps == orchestrated.steps
    ]


def parity_problems(orchestrated: CellEvidence, choreographed: CellEvidence) -> list[str]:
    """Where one cell's saga ended otherwise under choreography than under orchestration: its final status and error,
    the park, the actions and the compensations that succeeded (in order), each participant's effects, the dead
    letters, and its reconciliation. Compares what both clouds showed, not what the definition predicts."""
    problems = []

    def same(what: str, orchestration: object, choreography: object) -> None:
        if orchestration != choreography:
            problems.append(f"{what}: orchestration {orchestration!r}, choreography {choreography!r}")

    first, second = orchestrated.outcome, choreographed.outcome
    same("status", first.status, second.status)
    for field_name in ("error", "failed_step", "compensation_error"):
        same(field_name, first.record.get(field_name), second.record.get(field_name))
    same("actions succeeded", first.actions_succeeded, second.actions_succeeded)
    same("compensations succeeded", first.compensations_succeeded, second.compensations_succeeded)
    same("effects", orchestrated.effects, choreographed.effects)
    same("dead letters", orchestrated.dead_letters, choreographed.dead_letters)
    same("handed to an operator", orchestrated.parked, choreographed.parked)
    same("reconciliation problems", list(orchestrated.invariant_problems), list(choreographed.invariant_problems))
    return problems


def matrix_entries(definitions: list[SagaDefinition]) -> list[tuple[SagaDefinition, FaultCell | NotApplicable]]:
    """Every (saga, cell) of every definition, not applicable ones included (a test reports those as skipped)."""
    return [(definition, cell) for definition in definitions for cell in fault_matrix(definition)]
