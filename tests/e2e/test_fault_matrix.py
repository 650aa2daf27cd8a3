"""The fault matrix: every step of the saga definition x every fault, run at once on a local cloud of its own.

Cells and their expected outcomes come from `saga_testkit.fault_matrix` (derived from the definition, never from a
run), so a step added to the definition is covered here without editing this module. All cells start together
(distinct saga ids) in one module-scoped run; each test then checks one cell against the ground truth: the saga
record, the execution history, the participants' domain calls, the DLQs and the reconciliation of stock and money.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import boto3
import pytest

from saga_testkit.fault_matrix import FaultCell, NotApplicable, fault_matrix
from statemachines import load_definition
from tests.e2e.orders import make_order
from tests.sagas.order_fulfillment.kit import SAGA_FILE

# The long runs' group (the matrix, then the soak), on the worker the shared cloud's tests are not on: the
# package's cloud fixture deploys a cloud for the matrix there, so its 75 s (mostly poisoned commands cycling to
# their DLQs) run beside the shared cloud's tests instead of after them.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]

MATRIX = fault_matrix(load_definition(SAGA_FILE))
SETTLE_SECONDS = 300  # a deadline, not a timing: every cell finished, poison dead-lettered, late deliveries done
ENVIRONMENTS_PER_PARTICIPANT = 4
IN_FLIGHT = 3  # sagas running at once
# Not a saga command at all (a poisoned one is truncated JSON): it cycles to its DLQ beside the matrix's sagas.
STRAY_MESSAGE = '{"not": "a saga command"}'
FINISHED = {"COMPLETED", "FAILED", "COMPENSATION_FAILED", "FORWARD_RECOVERY_FAILED"}


@dataclass
class MatrixRun:
    saga_ids: dict[str, str]  # cell id -> saga id
    outcomes: dict[str, object]  # saga id -> SagaOutcome
    dead_letters: dict[str, list[tuple[str, str]]]  # saga id -> (step, kind) of each DLQ message naming it
    problems: list[str]  # the reconciliation's, after everything settled
    stray_dead_letters: list[str]  # bodies of the stray message found in its queue's DLQ
    parked: list[str]  # sagas the reconciliation hands to an operator
    wall_seconds: float


def _command_queues(local_sagas):
    """(step, kind) -> (queue url, DLQ url) of every participant queue the definition sends commands to."""
    sqs = boto3.client("sqs")
    handlers = {
        step.handler(command): (step.name, "action" if command == step.action else "compensation")
        for step in local_sagas.definition.steps
        for command in step.commands
    }
    queues = {}
    for mapping in local_sagas.cloud.mappings:
        if mapping.function.handler not in handlers:
            continue
        policy = sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["RedrivePolicy"])
        dlq_arn = json.loads(policy["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
        dlq_url = sqs.get_queue_url(QueueName=dlq_arn.split(":")[-1])["QueueUrl"]
        queues[handlers[mapping.function.handler]] = (mapping.queue_url, dlq_url)
    return queues


def _take(sqs, dlq_url, owners_of):
    """Read a DLQ through: each message `owners_of(body)` names is removed and returned as (body, owners); the others
    are made visible again once it has been read through (at once, they would be received again and again)."""
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


def _take_dead_letters(sqs, queues, saga_ids):
    """Every DLQ message naming one of `saga_ids` (a poisoned body is truncated JSON, so match the text), removed
    once attributed: accounted for here, and not left for later tests' redrives."""
    found: dict[str, list[tuple[str, str]]] = {saga_id: [] for saga_id in saga_ids}

    def naming(body):
        return [saga_id for saga_id in saga_ids if f'"{saga_id}"' in body]

    for (step, kind), (_, dlq_url) in queues.items():
        for _, owners in _take(sqs, dlq_url, naming):
            for saga_id in owners:
                found[saga_id].append((step, kind))
    return found


def _take_stray(sqs, dlq_url):
    """Every copy of the stray message in its DLQ, removed; the others are made visible again for their owners."""
    return [body for body, _ in _take(sqs, dlq_url, lambda body: body == STRAY_MESSAGE)]


@pytest.fixture(scope="module")
def matrix_run(local_sagas, operator):
    # Given every applicable cell's faults planned for its own saga
    cells = [cell for cell in MATRIX if isinstance(cell, FaultCell)]
    saga_ids = {cell.id: f"matrix-{index:03d}-{cell.id}"[:80] for index, cell in enumerate(cells)}
    for cell in cells:
        for planned in cell.plans:
            local_sagas.faults.plan(saga_ids[cell.id], planned.step, planned.kind, planned.fault)
    queues = _command_queues(local_sagas)
    # And garbage on the first command queue, which no saga waits for
    stray_queue, stray_dlq = next(iter(queues.values()))
    boto3.client("sqs").send_message(QueueUrl=stray_queue, MessageBody=STRAY_MESSAGE)
    try:
        yield _run_cells(local_sagas, operator, cells, saga_ids, queues, stray_dlq)
    finally:
        # Whatever happened, leave nothing of these sagas for the package's later tests: faults off, every command
        # handled or dead-lettered, and their dead letters taken.
        for cell in cells:
            for planned in cell.plans:
                local_sagas.faults.clear(saga_ids[cell.id], planned.step, planned.kind)
        _settle(local_sagas, operator, queues, late=[], deadline=time.monotonic() + SETTLE_SECONDS)
        _take_dead_letters(boto3.client("sqs"), queues, list(saga_ids.values()))


def _settle(local_sagas, operator, queues, *, late, deadline):
    """Until every late delivery happened and every participant queue is empty (poison in its DLQ by then)."""
    while time.monotonic() < deadline:
        redelivered = all(local_sagas.faults.attempts(*key) >= 2 for key in late)
        if redelivered and all(operator.depth(url) == 0 for url, _ in queues.values()):
            return
        time.sleep(0.25)


def _run_cells(local_sagas, operator, cells, saga_ids, queues, stray_dlq):
    # More consumers per queue: a command waiting behind others in a batch sends no heartbeat (HeartbeatSeconds at
    # this time scale is under a second), so the backlog of many sagas at once would time tasks out.
    local_sagas.scale_out(ENVIRONMENTS_PER_PARTICIPANT)
    # Cells whose ending takes longest (a poisoned command needs maxReceiveCount visibility timeouts) go first.
    waiting = sorted(cells, key=lambda cell: not (cell.expected.dead_lettered or cell.expected.late_redelivery))
    started = time.monotonic()
    # When they run together, at most IN_FLIGHT at a time: more would only queue commands behind each other
    in_flight: set[str] = set()
    deadline = started + SETTLE_SECONDS
    while (waiting or in_flight) and time.monotonic() < deadline:
        while waiting and len(in_flight) < IN_FLIGHT:
            saga_id = saga_ids[waiting.pop(0).id]
            local_sagas.start(saga_id, make_order())
            in_flight.add(saga_id)
        time.sleep(0.05)
        in_flight = {saga_id for saga_id in in_flight if local_sagas.records.get(saga_id)["status"] not in FINISHED}
    unfinished = local_sagas.wait(list(saga_ids.values()), timeout_seconds=max(1.0, deadline - time.monotonic()))
    assert unfinished == [], f"did not finish: {unfinished}"
    finished = time.monotonic() - started
    # ... and what happens after a saga ends has happened: poison reaches its DLQ, crashed commands come back late
    late = [(saga_ids[cell.id], *cell.expected.late_redelivery) for cell in cells if cell.expected.late_redelivery]
    _settle(local_sagas, operator, queues, late=late, deadline=deadline)
    wall = time.monotonic() - started
    print(f"\nfault matrix: {len(cells)} cells settled in {wall:.1f} s (finished after {finished:.1f} s)")
    reconciliation = local_sagas.check()
    return MatrixRun(
        saga_ids=saga_ids,
        outcomes={saga_id: local_sagas.outcome(saga_id) for saga_id in saga_ids.values()},
        dead_letters=_take_dead_letters(boto3.client("sqs"), queues, list(saga_ids.values())),
        problems=reconciliation.problems,
        stray_dead_letters=_take_stray(boto3.client("sqs"), stray_dlq),
        parked=reconciliation.parked,
        wall_seconds=wall,
    )


@pytest.mark.parametrize("cell", MATRIX, ids=lambda cell: cell.id)
def test_fault_cell(cell, matrix_run, local_sagas, definition):
    if isinstance(cell, NotApplicable):
        pytest.skip(cell.reason)
    saga_id = matrix_run.saga_ids[cell.id]
    expected = cell.expected
    outcome = matrix_run.outcomes[saga_id]
    faults = local_sagas.faults
    # Then the saga ended as the definition says
    assert outcome.status == expected.status, outcome.record
    assert outcome.record.get("error") == expected.error
    assert outcome.record.get("failed_step") == expected.parked_step
    assert outcome.record.get("compensation_error") == expected.compensation_error
    # (a parked saga is flagged: handed to an operator, not reconciled as if it had ended)
    assert (saga_id in matrix_run.parked) == (expected.parked_step is not None)
    # And the history shows exactly these actions and compensations, in this order (so each one once)
    assert outcome.actions_succeeded == expected.actions_succeeded
    assert outcome.compensations_succeeded == expected.compensations_succeeded
    # And each took effect once in the participant: no second run of a domain function, whatever was delivered
    late = expected.late_redelivery
    for step in definition.steps:
        action_effects = 1 if step.name in expected.actions_succeeded + expected.acted_unanswered else 0
        compensation_effects = 1 if step.name in expected.compensations_succeeded else 0
        if late and late[0] == step.name:
            # The crashed command came back after the saga had moved on: delivered again, refused or undone
            assert faults.attempts(saga_id, step.name, "action") == 2
            continue
        assert faults.effects(saga_id, step.name, "action") == action_effects, step.name
        assert faults.effects(saga_id, step.name, "compensation") == compensation_effects, step.name
    # And exactly the poisoned command sits in a DLQ, once; no other command of this saga does
    assert sorted(matrix_run.dead_letters[saga_id]) == sorted(expected.dead_lettered)
    # And stock and money reconcile for this saga
    assert [problem for problem in matrix_run.problems if saga_id in problem] == []


def test_a_message_that_is_not_a_command_is_dead_lettered_not_lost(matrix_run):
    # Then the garbage sent beside the matrix failed maxReceiveCount receives and sits in its queue's DLQ, once (the
    # matrix waited for every command queue to be empty)
    assert matrix_run.stray_dead_letters == [STRAY_MESSAGE]


def test_the_whole_matrix_reconciles(matrix_run):
    # Then no effect is unaccounted for across every cell and every other saga of the package (stock per sku too)
    assert matrix_run.problems == []
