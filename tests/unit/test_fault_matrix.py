"""The fault matrix generator: every step of a definition gets every fault, outcomes derived from the definition."""

from __future__ import annotations

import pytest
import yaml

from saga_records import SagaStatus
from saga_testkit.fault_matrix import (
    FAULTS,
    INJECTED_COMPENSATION_ERROR,
    TIMEOUT_ERROR,
    FaultCell,
    NotApplicable,
    fault_matrix,
)
from statemachines import parse_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE

pytestmark = pytest.mark.unit


@pytest.fixture
def with_extra_step():
    """The order saga plus a synthetic fifth step (with a timeout it assumes did not apply), and a retriable sixth."""
    raw = yaml.safe_load(SAGA_FILE.read_text())
    template = raw["steps"][1]
    raw["steps"].append(
        {
            **template,
            "name": "award_points",
            "service": "LoyaltyService",
            "action": "AwardPoints",
            "compensation": "RevokePoints",
            "permanent_errors": ["Loyalty.MemberUnknown"],
            "retry": {**template["retry"], "errors": ["Loyalty.Unavailable"]},
            "on_timeout": "assume_not_applied",
        }
    )
    raw["steps"].append(
        {
            **{key: value for key, value in template.items() if key not in ("compensation", "permanent_errors")},
            "name": "archive_order",
            "service": "ArchiveService",
            "action": "ArchiveOrder",
            "retriable": True,
            "retry": {**template["retry"], "errors": ["Archive.Unavailable"]},
        }
    )
    return parse_definition(raw)


def _cells(definition):
    return {cell.id: cell for cell in fault_matrix(definition)}


def test_a_step_added_to_the_definition_gets_every_fault(with_extra_step):
    # Given a definition with two more steps / When the matrix is generated
    cells = _cells(with_extra_step)
    # Then every step has one entry per fault, the new ones included
    assert set(cells) == {f"{step.name}-{fault}" for step in with_extra_step.steps for fault in FAULTS}
    forward = [fault for fault in FAULTS if not fault.startswith("compensation_")]
    assert all(isinstance(cells[f"award_points-{fault}"], FaultCell) for fault in forward)
    # Nothing can make it compensate: the step after it is retriable (never fails into a compensation), and its own
    # timeout is assumed not to have applied. The matrix says so instead of leaving the cell out.
    assert cells["award_points-compensation_permanent"].reason == "nothing after this step fails into its compensation"
    assert isinstance(cells["send_confirmation-compensation_permanent"], FaultCell)


def test_a_permanent_failure_at_the_new_step_compensates_every_earlier_step_last_first(with_extra_step):
    expected = _cells(with_extra_step)["award_points-permanent"].expected
    assert expected.status == SagaStatus.FAILED
    assert expected.error == "Loyalty.MemberUnknown"
    assert expected.compensations_succeeded == (
        "send_confirmation",
        "create_shipment",
        "process_payment",
        "reserve_inventory",
    )


def test_a_timeout_compensates_the_timed_out_step_only_when_the_definition_says_so(with_extra_step):
    cells = _cells(with_extra_step)
    # award_points assumes a timed-out action did not apply; send_confirmation compensates it
    assert cells["award_points-lost_reply"].expected.compensations_succeeded[0] == "send_confirmation"
    assert cells["send_confirmation-lost_reply"].expected.compensations_succeeded[0] == "send_confirmation"
    poison = cells["award_points-poison_message"].expected
    assert (poison.error, poison.dead_lettered) == (TIMEOUT_ERROR, (("award_points", "action"),))


def test_a_permanent_compensation_failure_parks_the_saga_at_that_step(with_extra_step):
    cell = _cells(with_extra_step)["process_payment-compensation_permanent"]
    # Triggered by the next step refusing, so this step's compensation is the first to run
    assert [(planned.step, planned.kind) for planned in cell.plans] == [
        ("create_shipment", "action"),
        ("process_payment", "compensation"),
    ]
    assert cell.expected.status == SagaStatus.COMPENSATION_FAILED
    assert (cell.expected.parked_step, cell.expected.compensation_error) == (
        "process_payment",
        INJECTED_COMPENSATION_ERROR,
    )
    assert cell.expected.compensations_succeeded == ()


def test_a_step_past_the_pivot_has_no_compensation_cells_and_parks_for_forward_recovery(with_extra_step):
    cells = _cells(with_extra_step)
    assert isinstance(cells["archive_order-compensation_permanent"], NotApplicable)
    assert isinstance(cells["archive_order-compensation_transient"], NotApplicable)
    assert cells["archive_order-permanent"].expected.status == SagaStatus.FORWARD_RECOVERY_FAILED
    # a lost reply on a retriable step is retried, and the retry is answered from the idempotency record
    assert cells["archive_order-lost_reply"].expected.status == SagaStatus.COMPLETED


def test_transient_failures_straddle_the_retry_budget(with_extra_step):
    step = with_extra_step.step("create_shipment")
    cells = _cells(with_extra_step)
    within = cells["create_shipment-transient_within_retries"]
    beyond = cells["create_shipment-transient_beyond_retries"]
    assert within.plans[0].fault.times == step.retry.max_attempts
    assert within.expected.status == SagaStatus.COMPLETED
    assert beyond.plans[0].fault.times == step.retry.max_attempts + 1
    assert (beyond.expected.status, beyond.expected.error) == (SagaStatus.FAILED, step.retry.errors[0])
