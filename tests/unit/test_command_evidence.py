"""The soak's accounting of a choreographed saga's commands, read from the saga bus: what the bus's rules sent for the
events seen, and which event answered each (the execution history's TaskScheduled and task ends, under choreography)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from saga_ops.deployment import BusRoute
from saga_testkit.command_evidence import bus_commands, command_identity
from saga_testkit.soak_checks import DeadLetter, DlqAlarm, SentCommand, check
from statemachines import load_definition
from statemachines.choreography import reactions
from tests.sagas.order_fulfillment.kit import SAGA_FILE as ORCHESTRATED_FILE
from tests.sagas.order_fulfillment_choreographed.kit import SAGA_FILE

pytestmark = pytest.mark.unit

SAGA = "order-1"


@pytest.fixture(scope="module")
def routes() -> list[BusRoute]:
    """The choreographed order saga's bus rules, as Deployment.bus_routes reads them from the deployed bus."""
    definition = load_definition(SAGA_FILE)
    return [
        BusRoute(definition.name, r.step.name, r.kind, r.command, r.on, f"https://sqs.example/{r.command}")
        for r in reactions(definition)
    ]


def answers(commands: list[SentCommand]) -> list[tuple[str, str, str]]:
    return [(command.step, command.kind, command.answer) for command in commands]


def test_a_completed_saga_sent_each_action_once_and_each_was_answered(routes):
    # Given the events of a saga that completed
    events = [
        "Saga.Started",
        "reserve_inventory.Succeeded",
        "process_payment.Succeeded",
        "create_shipment.Succeeded",
        "send_confirmation.Succeeded",
    ]
    # When its commands are read from them
    commands = bus_commands(SAGA, events, routes)
    # Then each action was sent once, to its own queue, and answered; no compensation was sent
    assert answers(commands) == [
        ("reserve_inventory", "action", "succeeded"),
        ("process_payment", "action", "succeeded"),
        ("create_shipment", "action", "succeeded"),
        ("send_confirmation", "action", "succeeded"),
    ]
    assert commands[1].queue_url == "https://sqs.example/ProcessPayment"
    assert {command.token_digest for command in commands} == {None}


def test_a_failure_and_a_deadline_send_the_compensations_the_rules_route_them_to(routes):
    # Given a payment that failed in one saga, and a shipment whose deadline passed in another (on_timeout: compensate)
    failed = ["Saga.Started", "reserve_inventory.Succeeded", "process_payment.Failed", "reserve_inventory.Compensated"]
    timed_out = [
        "Saga.Started",
        "reserve_inventory.Succeeded",
        "process_payment.Succeeded",
        "create_shipment.TimedOut",
        "create_shipment.Compensated",
        "process_payment.Compensated",
        "reserve_inventory.CompensationFailed",
    ]
    # When / Then: the failed step's compensation is never sent, the timed-out one's is, each answered by its event
    assert answers(bus_commands(SAGA, failed, routes)) == [
        ("reserve_inventory", "action", "succeeded"),
        ("process_payment", "action", "failed"),
        ("reserve_inventory", "compensation", "succeeded"),
    ]
    assert answers(bus_commands(SAGA, timed_out, routes)) == [
        ("reserve_inventory", "action", "succeeded"),
        ("process_payment", "action", "succeeded"),
        ("create_shipment", "action", "timed_out"),
        ("create_shipment", "compensation", "succeeded"),
        ("process_payment", "compensation", "succeeded"),
        ("reserve_inventory", "compensation", "failed"),
    ]


def test_answers_pair_with_commands_whatever_order_the_observer_received_them_in(routes):
    # Given an answer that reached the observer's queue before the event that sent its command (a standard queue)
    events = ["reserve_inventory.Succeeded", "Saga.Started"]
    # When / Then the command is still the one answered (and the payment it sent waits for its answer)
    assert sorted(answers(bus_commands(SAGA, events, routes))) == [
        ("process_payment", "action", "none"),
        ("reserve_inventory", "action", "succeeded"),
    ]


def test_a_command_no_event_answered_is_unaccounted_unless_dead_lettered_or_its_saga_flagged(
    routes, settled_soak_evidence
):
    # Given a compensation the bus sent that nothing ever answered, its saga not flagged, no DLQ holding it
    events = ["Saga.Started", "reserve_inventory.Succeeded", "process_payment.Failed"]
    commands = bus_commands("s-lost", events, routes)
    assert answers(commands)[-1] == ("reserve_inventory", "compensation", "none")
    evidence = dataclasses.replace(
        settled_soak_evidence,
        accepted=[*settled_soak_evidence.accepted, "s-lost"],
        statuses={**settled_soak_evidence.statuses, "s-lost": "FAILED"},
        commands=commands,
    )
    # When it is checked / Then that command is named
    assert check(evidence).violations == [
        "command s-lost/reserve_inventory/compensation: none, not consumed, not in a DLQ and its saga not flagged"
    ]
    # And once its message sits in an alarmed DLQ (a rule's command: no token), it is accounted for there
    dead = command_identity(
        {"reply": "bus", "step": "reserve_inventory", "kind": "compensation", "event": {"saga_id": "s-lost"}}
    )
    assert dead == ("s-lost", "reserve_inventory", "compensation", None)
    letter = DeadLetter("ReleaseReservationDLQ", "https://sqs.example/ReleaseReservation", *dead)
    settled = dataclasses.replace(
        evidence,
        dead_letters=[letter],
        dlq_alarms=[DlqAlarm("ReleaseReservationDLQ", 1, "ReleaseReservationDLQDepth", "ALARM")],
    )
    verdict = check(settled)
    assert verdict.violations == []
    assert verdict.accounting[("https://sqs.example/ReleaseReservation", "in an alarmed DLQ")] == 1


def test_a_command_is_identified_in_either_envelope_and_anything_else_is_not_a_command():
    # Given a state machine's command, a participant's retry of a choreographed one, and bodies that are no command
    orchestrated = command_identity({"saga_id": "s", "step": "a", "kind": "action", "task_token": "tok"})
    retried = command_identity({"saga_id": "s", "step": "a", "kind": "action", "reply": "bus", "attempt": 2})
    # When / Then
    assert orchestrated[:3] == ("s", "a", "action")
    assert orchestrated[3] is not None
    assert retried == ("s", "a", "action", None)
    assert command_identity(None) is None
    assert command_identity({"step": "a", "kind": "action", "event": {}}) is None
    assert command_identity(["s", "a"]) is None


def test_a_choreographed_compensation_draws_no_fault_whose_answer_is_lost_for_good():
    # Given the order saga in both patterns
    from saga_testkit.soak import plan_faults

    saga_ids = [f"saga-{n}" for n in range(2000)]

    def drawn(saga_file, kind):
        plan = plan_faults(random.Random(7), load_definition(saga_file), saga_ids, time_scale=0.1)
        return {p.choice for faults in plan.values() for p in faults if p.kind == kind}

    # When the soak plans faults for many sagas
    # Then a choreographed compensation never loses its answer for good (it has no deadline to notice), its actions
    # and an orchestrated compensation do
    assert not {"lost_reply", "poison_message"} & drawn(SAGA_FILE, "compensation")
    assert {"lost_reply", "poison_message", "crash_after_acting", "delay"} <= drawn(SAGA_FILE, "action")
    assert {"lost_reply", "poison_message"} <= drawn(ORCHESTRATED_FILE, "compensation")


def test_a_rule_target_of_another_kind_on_the_saga_bus_is_no_command():
    # Given the input templates of a command rule, of the test kit's observer and of a plain-text target
    from saga_ops.deployment import command_fields
    from saga_testkit.bus_observer import COPY_TEMPLATE

    command = '{"reply": "bus", "saga_type": "Trip", "step": "hold_seat", "kind": "action", "event": <detail>}'
    # When each is read / Then the command's fields come back, the observer's copy is no command, text is none at all
    assert command_fields(command) == {
        "reply": "bus",
        "saga_type": "Trip",
        "step": "hold_seat",
        "kind": "action",
        "event": None,
    }
    assert "saga_type" not in command_fields(COPY_TEMPLATE)
    assert command_fields('"<detail-type> happened"') is None
    assert command_fields("saga <detail> happened") is None
