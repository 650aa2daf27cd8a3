"""The OrderFulfillmentChoreographed saga end to end: the synthesized stack on moto (its saga bus, rules, tracker and
the participants the orchestrated order saga uses), deadlines fired on the scaled clock, started through the same API
and read through the same status route and operator CLI.

What each saga did is read from the bus (the events each step published) and from its record; expected steps and
compensations derive from the definition.
"""

from __future__ import annotations

import random

import pytest

from saga_testkit.faults import Fault
from statemachines import load_definition
from tests.e2e.orders import TIME_SCALE
from tests.sagas.order_fulfillment_choreographed.kit import SAGA_FILE

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

DEFINITION = load_definition(SAGA_FILE)
STEPS = tuple(step.name for step in DEFINITION.steps)


@pytest.fixture(scope="module")
def choreographed(local_sagas_of):
    sagas = local_sagas_of(DEFINITION.name)
    sagas.kit.prepare(20)
    return sagas


@pytest.fixture
def order(choreographed, request):
    number = abs(hash(request.node.name)) % 10_000
    return choreographed.kit.sample_input(number, random.Random(number))


def _run(sagas, order, timeout_seconds=60):
    saga_id = order["order_id"]
    sagas.start(saga_id, order)
    assert sagas.wait([saga_id], timeout_seconds=timeout_seconds) == [], f"{saga_id} did not finish"
    outcome = sagas.outcome(saga_id)
    assert sagas.check().problems == []
    return outcome


def test_the_happy_path_runs_every_step_on_the_bus_and_completes(choreographed, order):
    outcome = _run(choreographed, order)
    assert outcome.status == "COMPLETED"
    assert outcome.actions_succeeded == STEPS
    assert outcome.compensations_succeeded == ()
    assert {step: fields["status"] for step, fields in outcome.record["steps"].items()} == dict.fromkeys(
        STEPS, "SUCCEEDED"
    )
    assert outcome.record["current_step"] == STEPS[-1]
    # The bus carried the saga: started, then each step's success, in order
    events = [event["detail-type"] for event in choreographed.observer.events_of(order["order_id"])]
    assert events == ["Saga.Started", *(f"{step}.Succeeded" for step in STEPS)]


def test_a_rejection_compensates_the_completed_steps_in_reverse_and_ends_failed(choreographed, order):
    failing = DEFINITION.steps[2]
    choreographed.faults.plan(order["order_id"], failing.name, "action", Fault.permanent(failing.permanent_errors[0]))
    outcome = _run(choreographed, order)
    assert outcome.status == "FAILED"
    assert outcome.actions_succeeded == STEPS[:2]
    assert outcome.compensations_succeeded == tuple(reversed(STEPS[:2]))
    assert (outcome.record["error"], outcome.record["steps"][failing.name]["status"]) == (
        failing.permanent_errors[0],
        "FAILED",
    )


def test_a_step_past_its_deadline_is_timed_out_compensated_and_its_late_answer_undone(choreographed, order):
    # Given a participant that answers after its step's deadline (on the scaled clock)
    slow = DEFINITION.steps[1]
    choreographed.faults.plan(
        order["order_id"], slow.name, "action", Fault.delay(slow.sla.timeout_seconds * TIME_SCALE * 1.5)
    )
    outcome = _run(choreographed, order)
    # Then the tracker timed the step out, the saga compensated it (on_timeout: compensate) and the step before it
    assert outcome.status == "FAILED"
    assert outcome.record["error"] == "States.Timeout"
    assert outcome.actions_succeeded == STEPS[:1]
    assert outcome.compensations_succeeded == (slow.name, STEPS[0])
    # And its late success published nothing and holds no money (the reconciliation above checks the ledger)


def test_the_api_starts_and_reports_a_choreographed_saga(choreographed, local_api, order):
    _, client = local_api
    answer = client.start(DEFINITION.route_path, order)
    assert answer.status == 202, answer.body
    assert choreographed.wait([order["order_id"]], timeout_seconds=60) == []
    status = client.get(DEFINITION.route_path, order["order_id"])
    assert status.status == 200
    assert (status.body["saga_type"], status.body["status"]) == (DEFINITION.name, "COMPLETED")


def test_a_parked_choreographed_saga_is_listed_shown_and_resumed_with_the_operator_cli(choreographed, order):
    from rich.console import Console

    from saga_ops import cli

    saga_id = order["order_id"]
    # Given a saga whose shipment is refused and whose refund then fails for good
    shipment, payment = DEFINITION.steps[2], DEFINITION.steps[1]
    choreographed.faults.plan(saga_id, shipment.name, "action", Fault.permanent(shipment.permanent_errors[0]))
    choreographed.faults.plan(saga_id, payment.name, "compensation", Fault.permanent("Payment.ProviderDown"))
    outcome = _run(choreographed, order)
    # Then the tracker parked it as the orchestrated park state does: the step, both errors, what a resume runs
    record = outcome.record
    assert (record["status"], record["failed_step"], record["compensation_error"]) == (
        "COMPENSATION_FAILED",
        payment.name,
        "Payment.ProviderDown",
    )
    assert record["error"] == shipment.permanent_errors[0]
    assert record["pending"] == [
        {"step": payment.name, "kind": "compensation"},
        {"step": STEPS[0], "kind": "compensation"},
    ]
    # And the operator CLI lists and shows it (no execution to show: its record is the story)
    listing = Console(record=True, width=200)
    assert cli.main(["list", "--status", "COMPENSATION_FAILED"], console=listing) == 0
    assert saga_id in listing.export_text()
    shown = Console(record=True, width=200)
    assert cli.main(["show", saga_id], console=shown) == 0, shown.export_text()
    assert "Payment.ProviderDown" in shown.export_text()
    # When the provider is back and an operator resumes it
    choreographed.faults.clear(saga_id, payment.name, "compensation")
    resumed = Console(record=True, width=200)
    arguments = ["resume", saga_id, "--retry", "--reason", "provider back", "--by", "ana@ops", "--wait-seconds", "20"]
    assert cli.main(arguments, console=resumed) == 0, resumed.export_text()
    # Then the refund and the release ran, and the saga is compensated and reconciles
    record = choreographed.records.get(saga_id)
    assert (record["status"], record["pending"]) == ("FAILED", [])
    assert {record["steps"][step]["status"] for step in (payment.name, STEPS[0])} == {"COMPENSATED"}
    assert choreographed.check().problems == []
