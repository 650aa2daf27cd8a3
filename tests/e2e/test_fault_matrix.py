"""The fault matrix of every saga in the stack: every step x every fault, all sagas' cells at once on one cloud.

Cells and their expected outcomes come from `saga_testkit.fault_matrix` (derived from each definition, never from a
run), so a saga or a step added to the project is covered here without editing this module. The run
(`fault_matrix_run`, saga_testkit.pytest_plugin) starts every cell's saga (its kit's sample input) in one module-scoped
run; each test then checks one cell against the ground truth: the saga record, the execution history, the
participants' domain calls, the DLQs and its saga type's invariant check.
"""

from __future__ import annotations

import pytest

from saga_testkit.fault_matrix_run import STRAY_MESSAGE, applicable_cells, parity_problems, pattern_pairs
from saga_testkit.kit import project_definitions
from saga_testkit.pytest_plugin import fault_matrix_params

# The long runs' group (the matrix, then the soak), on the worker the shared cloud's tests are not on: the
# package's cloud fixture deploys a cloud for the matrix there, so its run (mostly poisoned commands cycling to
# their DLQs) runs beside the shared cloud's tests instead of after them.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("long_runs")]


@pytest.mark.parametrize(("saga", "cell"), fault_matrix_params())
def test_fault_cell(saga, cell, fault_matrix_run):
    # Then the saga ended as its definition says, each participant's effect once, exactly the poisoned command in a
    # DLQ, and its saga type's invariants hold
    assert fault_matrix_run.problems(saga, cell) == []


def test_a_message_that_is_not_a_command_is_dead_lettered_not_lost(fault_matrix_run):
    # Then the garbage sent beside the matrix failed maxReceiveCount receives and sits in its queue's DLQ, once (the
    # matrix waited for every command queue to be empty)
    assert fault_matrix_run.stray_dead_letters == [STRAY_MESSAGE]


def test_every_saga_type_s_invariants_hold_across_the_whole_matrix(fault_matrix_run):
    # Then no effect is unaccounted for across every cell and every other saga of the cloud
    assert {saga: problems for saga, problems in fault_matrix_run.invariant_problems.items() if problems} == {}
    assert fault_matrix_run.invariant_problems  # every saga type was checked


PAIRS = pattern_pairs(project_definitions())


@pytest.mark.parametrize(
    ("orchestrated", "choreographed", "cell"),
    [
        pytest.param(orchestrated, choreographed, cell, id=f"{choreographed.name}-{cell.id}")
        for orchestrated, choreographed in PAIRS
        for cell in applicable_cells(orchestrated)
    ],
)
def test_choreography_ends_every_cell_as_orchestration_does(orchestrated, choreographed, cell, fault_matrix_run):
    # Given the same saga in both patterns, each cell run on both / Then both ended alike: status, error and park,
    # the actions and the compensations in the same order, each participant's effects, DLQs and reconciliation
    evidence = fault_matrix_run.evidence
    assert parity_problems(evidence[(orchestrated.name, cell.id)], evidence[(choreographed.name, cell.id)]) == []


def test_the_project_ships_a_saga_in_both_patterns():
    assert PAIRS, "the parity test needs a saga defined in both patterns (same steps)"
