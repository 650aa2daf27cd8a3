"""A saga's kit, found by convention, and the fault matrix run's cell check, on a synthetic saga unlike the order
example: its own services, a step without transient errors, a retriable last step, and a service shared with it."""

from __future__ import annotations

import random
import sys
import textwrap
from types import SimpleNamespace

import pytest

from saga_records import SagaStatus
from saga_testkit.fault_matrix import FaultCell, NotApplicable, fault_matrix
from saga_testkit.fault_matrix_run import CellEvidence, cell_problems, cell_saga_ids
from saga_testkit.invariants import common_check, effect_problems
from saga_testkit.kit import KitMissing, SagaKit, load_kit
from saga_testkit.observe import SagaOutcome
from saga_testkit.pytest_plugin import fault_matrix_params, selected_sagas
from statemachines import load_definition, parse_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE

pytestmark = pytest.mark.unit

SLA = {"timeout_seconds": 30, "heartbeat_seconds": 10}
PARCEL_LOCKER = {
    "name": "ParcelLocker",
    "description": "Reserve a locker, take the fee, tell the courier.",
    "steps": [
        {
            "name": "reserve_locker",
            "service": "LockerService",
            "action": "ReserveLocker",
            "compensation": "ReleaseLocker",
            "permanent_errors": ["Locker.NoneFree"],
            "sla": SLA,
        },
        {
            "name": "charge_fee",
            "service": "PaymentService",
            "action": "ChargeFee",
            "compensation": "RefundFee",
            "retry": {"errors": ["Payment.GatewayUnavailable"], "max_attempts": 2},
            "sla": SLA,
        },
        {
            "name": "notify_courier",
            "service": "CourierService",
            "action": "NotifyCourier",
            "retriable": True,
            "sla": SLA,
        },
    ],
}
KIT = """
from saga_testkit.invariants import common_check
from saga_testkit.kit import SagaKit


class Kit(SagaKit):
    def __init__(self, definition, service_table):
        super().__init__(definition, service_table)
        self.lockers = service_table("LockerService")
        self.prepared = 0

    def prepare(self, sagas):
        self.prepared += sagas

    def sample_input(self, number, rng):
        return {"parcel_id": f"parcel-{number}", "size": rng.choice(["S", "M"])}

    def check(self, records, others):
        check = common_check(records)
        check.problems += [f"saga {r['saga_id']}: not a parcel" for r in records if r["saga_type"] != "ParcelLocker"]
        return check
"""


@pytest.fixture
def parcel_locker():
    return parse_definition(PARCEL_LOCKER)


@pytest.fixture
def kits(tmp_path, monkeypatch):
    """A folder of kits, importable as the package `synthetic_kits` (as tests/sagas is in the project)."""
    package = tmp_path / "synthetic_kits"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(saga_folder, text):
        (package / saga_folder).mkdir()
        (package / saga_folder / "__init__.py").write_text("")
        (package / saga_folder / "kit.py").write_text(textwrap.dedent(text))

    yield write
    for name in [name for name in sys.modules if name.split(".")[0] == "synthetic_kits"]:
        del sys.modules[name]  # imported from this test's folder: the next test has its own


def test_a_saga_s_kit_is_found_by_its_name_in_snake_case_and_built_for_the_stack(parcel_locker, kits):
    # Given a kit module in the saga's folder (ParcelLocker -> parcel_locker)
    kits("parcel_locker", KIT)
    # When it is loaded for a stack whose services' tables are known by service name
    kit = load_kit(parcel_locker, {"LockerService": "lockers-table"}.__getitem__, package="synthetic_kits")
    # Then it is the saga's own kit, with its definition and tables, and gives inputs, seeds and its check
    assert type(kit).__name__ == "Kit"
    assert (kit.definition, kit.lockers) == (parcel_locker, "lockers-table")
    assert kit.sample_input(3, random.Random(1))["parcel_id"] == "parcel-3"
    kit.prepare(4)
    assert kit.prepared == 4
    records = [{"saga_id": "p-1", "saga_type": "ParcelLocker", "status": "PENDING"}]
    assert kit.check(records, frozenset()).problems == ["saga p-1 has not finished (PENDING)"]


def test_a_saga_without_a_kit_gets_the_common_check_and_no_sample_input(parcel_locker, kits):
    # Given no kit for the saga / When its kit is loaded
    kit = load_kit(parcel_locker, {}.__getitem__, package="synthetic_kits")
    # Then the defaults: every saga settled or with an operator; no sample input, and the error says what to write
    assert type(kit) is SagaKit
    records = [
        {"saga_id": "p-1", "saga_type": "ParcelLocker", "status": "COMPLETED"},
        {"saga_id": "p-2", "saga_type": "ParcelLocker", "status": "COMPENSATING"},
        {"saga_id": "p-3", "saga_type": "ParcelLocker", "status": "COMPENSATION_FAILED"},
    ]
    check = kit.check(records, frozenset())
    assert (check.problems, check.parked) == (["saga p-2 has not finished (COMPENSATING)"], ["p-3"])
    with pytest.raises(KitMissing, match=r"tests/sagas/parcel_locker/kit.py: define `class Kit\(SagaKit\)`"):
        kit.sample_input(1, random.Random(1))


def test_a_kit_module_without_its_class_is_an_error_not_a_default(parcel_locker, kits):
    kits("parcel_locker", "LOCKERS = 3\n")
    with pytest.raises(TypeError, match=r"synthetic_kits/parcel_locker/kit\.py: defines no `class Kit"):
        load_kit(parcel_locker, {}.__getitem__, package="synthetic_kits")


def test_a_kit_that_imports_something_missing_fails_loudly(parcel_locker, kits):
    kits("parcel_locker", "import no_such_module_anywhere\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere"):
        load_kit(parcel_locker, {}.__getitem__, package="synthetic_kits")


def test_an_effect_of_another_saga_type_is_its_own_business_but_one_of_no_saga_is_a_problem():
    # Given a shared service's effects: one of a completed saga of this type, one of another type's saga, an orphan
    status_of = {"mine": "COMPLETED"}
    holders = {"mine", "theirs", "orphan"}
    # When this type checks them / Then only the orphan is a problem
    assert effect_problems("a charge", holders, status_of, frozenset({"theirs"})) == [
        "saga orphan: has a charge but no saga record"
    ]


def test_the_common_check_flags_sagas_still_running_and_lists_parked_ones():
    records = [{"saga_id": "a", "status": "PENDING"}, {"saga_id": "b", "status": "FORWARD_RECOVERY_FAILED"}]
    check = common_check(records)
    assert (check.problems, check.parked, check.ok) == (["saga a has not finished (PENDING)"], ["b"], False)


# --- the fault matrix of a synthetic saga, beside the order saga's ---


def test_every_saga_s_cells_get_saga_ids_of_their_own(parcel_locker):
    # Given the order saga and the parcel saga in one stack / When their cells get their saga ids
    order = load_definition(SAGA_FILE)
    ids = cell_saga_ids([order, parcel_locker])
    # Then every applicable cell of both has one, distinct, valid as a saga id (at most 80 characters)
    applicable = {
        (definition.name, cell.id)
        for definition in (order, parcel_locker)
        for cell in fault_matrix(definition)
        if isinstance(cell, FaultCell)
    }
    assert set(ids) == applicable
    assert len(set(ids.values())) == len(ids)
    assert all(len(saga_id) <= 80 and saga_id.startswith("matrix-") for saga_id in ids.values())


def test_the_matrix_parameters_name_each_saga_and_skip_what_its_definition_makes_meaningless(parcel_locker):
    params = {param.id: param for param in fault_matrix_params([parcel_locker])}
    # A step without transient errors has no transient cells; a retriable one no compensation cells
    assert params["ParcelLocker-reserve_locker-transient_within_retries"].marks[0].kwargs["reason"] == (
        "the step lists no transient errors"
    )
    assert params["ParcelLocker-notify_courier-compensation_permanent"].marks
    assert not params["ParcelLocker-charge_fee-permanent"].marks
    assert params["ParcelLocker-charge_fee-permanent"].values[0] is parcel_locker


def test_the_matrix_run_takes_the_sagas_whose_cells_the_session_runs(parcel_locker):
    # Given the session's tests: cells of one saga (one of them skipped), and tests without a saga's cell
    order = load_definition(SAGA_FILE)
    cells = [param for param in fault_matrix_params([parcel_locker])][:3]

    def item(params, fixtures=("fault_matrix_run",)):
        return SimpleNamespace(callspec=SimpleNamespace(params=params), fixturenames=list(fixtures))

    items = [item(dict(zip(("saga", "cell"), param.values, strict=True))) for param in cells]
    others = [SimpleNamespace(fixturenames=["fault_matrix_run"]), item({"saga": order}, fixtures=("local_cloud",))]
    # When the matrix run looks at them, Then it runs that saga's matrix alone (`-k ParcelLocker`)
    assert selected_sagas([*items, *others]) == {"ParcelLocker"}
    # And with no cell among them, none is named (the fixture then runs every saga's)
    assert selected_sagas(others) == set()


def _cells(definition):
    return {cell.id: cell for cell in fault_matrix(definition)}


def _evidence_as_expected(definition, cell, saga_id="matrix-x"):
    """What a saga that ended exactly as the cell predicts leaves behind."""
    expected = cell.expected
    record = {
        "saga_id": saga_id,
        "status": expected.status,
        "error": expected.error,
        "failed_step": expected.parked_step,
        "compensation_error": expected.compensation_error,
    }
    effects, attempts = {}, {}
    for step in definition.steps:
        acted = step.name in expected.actions_succeeded + expected.acted_unanswered
        effects[(step.name, "action")] = attempts[(step.name, "action")] = int(acted)
        undone = step.name in expected.compensations_succeeded
        effects[(step.name, "compensation")] = attempts[(step.name, "compensation")] = int(undone)
    if expected.late_redelivery:
        attempts[expected.late_redelivery] = 2
    outcome = SagaOutcome(
        saga_id,
        str(expected.status),
        "SUCCEEDED",
        expected.actions_succeeded,
        expected.compensations_succeeded,
        transitions=0,
        duration_seconds=0.0,
        record=record,
    )
    return CellEvidence(
        saga_id=saga_id,
        outcome=outcome,
        attempts=attempts,
        effects=effects,
        dead_letters=expected.dead_lettered,
        parked=expected.parked_step is not None,
        invariant_problems=(),
    )


@pytest.mark.parametrize(
    "cell_id",
    [
        "reserve_locker-permanent",
        "charge_fee-transient_beyond_retries",
        "charge_fee-poison_message",
        "charge_fee-crash_after_acting",
        "reserve_locker-compensation_permanent",
        "notify_courier-permanent",
        "notify_courier-crash_after_acting",
    ],
)
def test_a_cell_that_ended_as_its_definition_predicts_has_no_problem(parcel_locker, cell_id):
    cell = _cells(parcel_locker)[cell_id]
    assert cell_problems(parcel_locker, cell, _evidence_as_expected(parcel_locker, cell)) == []


def test_each_way_a_cell_can_end_otherwise_is_named(parcel_locker):
    # Given the parcel saga's charge failing for good: the locker must be released, and nothing else
    cell = _cells(parcel_locker)["charge_fee-permanent"]
    good = _evidence_as_expected(parcel_locker, cell)
    assert good.outcome.status == SagaStatus.FAILED
    # When the saga's evidence says otherwise in every way the check looks at
    bad = CellEvidence(
        saga_id=good.saga_id,
        outcome=SagaOutcome(
            good.saga_id,
            "COMPLETED",
            "SUCCEEDED",
            ("reserve_locker", "charge_fee"),
            (),
            transitions=0,
            duration_seconds=0.0,
            record={**good.outcome.record, "error": None},
        ),
        attempts=good.attempts,
        effects={**good.effects, ("reserve_locker", "compensation"): 2},
        dead_letters=(("charge_fee", "action"),),
        parked=True,
        invariant_problems=(f"saga {good.saga_id}: COMPLETED without a charge",),
    )
    problems = cell_problems(parcel_locker, cell, bad)
    # Then each difference is named, with what was expected and what was found
    assert [problem.split(":")[0] for problem in problems] == [
        "status",
        "error",
        "handed to an operator",
        "actions succeeded",
        "compensations succeeded",
        "reserve_locker compensation effects",
        "dead letters",
        "invariant problems",
    ]
    assert "expected 'FAILED', found 'COMPLETED'" in problems[0]


def test_a_late_redelivery_must_have_come_back(parcel_locker):
    cell = _cells(parcel_locker)["charge_fee-crash_after_acting"]
    evidence = _evidence_as_expected(parcel_locker, cell)
    never_came_back = CellEvidence(**{**vars(evidence), "attempts": {**evidence.attempts, ("charge_fee", "action"): 1}})
    assert cell_problems(parcel_locker, cell, never_came_back) == [
        "charge_fee action attempts: expected at least 2, found 1"
    ]


def test_a_late_redelivery_handed_back_to_decide_later_is_as_expected(parcel_locker):
    # Given the crashed command came back while the saga record did not yet show the step given up (the toolkit hands
    # such a delivery back to SQS), and a third time once it did
    cell = _cells(parcel_locker)["charge_fee-crash_after_acting"]
    evidence = _evidence_as_expected(parcel_locker, cell)
    decided_later = CellEvidence(**{**vars(evidence), "attempts": {**evidence.attempts, ("charge_fee", "action"): 3}})
    # Then the cell holds
    assert cell_problems(parcel_locker, cell, decided_later) == []


def test_a_retriable_step_whose_participant_crashed_after_acting_completes_and_its_command_comes_back(parcel_locker):
    # Given a crash right after the retriable step took effect: no answer, and no idempotency record of the outcome
    cell = _cells(parcel_locker)["notify_courier-crash_after_acting"]
    # Then the saga completes, and the crashed command must be seen delivered again (it runs the domain code once more,
    # which finds its effect taken)
    assert (cell.expected.status, cell.expected.late_redelivery) == (
        SagaStatus.COMPLETED,
        ("notify_courier", "action"),
    )
    evidence = _evidence_as_expected(parcel_locker, cell)
    delivered_once = CellEvidence(
        **{**vars(evidence), "attempts": {**evidence.attempts, ("notify_courier", "action"): 1}}
    )
    assert cell_problems(parcel_locker, cell, delivered_once) == [
        "notify_courier action attempts: expected at least 2, found 1"
    ]


def test_not_applicable_cells_say_why(parcel_locker):
    cell = _cells(parcel_locker)["notify_courier-compensation_transient"]
    assert isinstance(cell, NotApplicable)
    assert cell.reason == "a retriable step has no compensation"


def test_parity_holds_for_two_sagas_that_ended_alike_and_names_each_difference():
    # Given one cell of the order saga, as both patterns would leave it had they ended alike
    from dataclasses import replace

    from saga_testkit.fault_matrix_run import parity_problems, pattern_pairs
    from statemachines import load_definition
    from tests.sagas.order_fulfillment.kit import SAGA_FILE

    orchestrated = load_definition(SAGA_FILE)
    choreographed = load_definition(SAGA_FILE.with_name("order_fulfillment_choreographed.saga.yaml"))
    assert pattern_pairs([orchestrated, choreographed]) == [(orchestrated, choreographed)]
    cell = _cells(orchestrated)["create_shipment-permanent"]
    alike = _evidence_as_expected(orchestrated, cell)
    assert parity_problems(alike, _evidence_as_expected(choreographed, cell, saga_id="other")) == []
    # When the choreographed one compensated in another order, ended otherwise, or left stock unreconciled
    swapped = replace(alike.outcome, compensations_succeeded=tuple(reversed(alike.outcome.compensations_succeeded)))
    parked = replace(alike.outcome, status="COMPENSATION_FAILED")
    unreconciled = replace(alike, invariant_problems=("sku X: 1 unit left stock",))
    # Then each difference is named
    assert [p.split(":")[0] for p in parity_problems(alike, replace(alike, outcome=swapped))] == [
        "compensations succeeded"
    ]
    assert [p.split(":")[0] for p in parity_problems(alike, replace(alike, outcome=parked))] == ["status"]
    assert [p.split(":")[0] for p in parity_problems(alike, unreconciled)] == ["reconciliation problems"]
