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
