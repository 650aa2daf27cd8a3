"""The soak's checker: it passes a consistent aftermath and names each kind of violation in a fabricated one."""

from __future__ import annotations

import dataclasses
import random

import pytest

from saga_testkit.soak_checks import DlqAlarm, SentCommand, check, evaluate_alarm

pytestmark = pytest.mark.unit


def test_a_consistent_aftermath_has_no_violations_and_every_command_is_accounted_for(settled_soak_evidence):
    # Given evidence where everything holds / When it is checked
    verdict = check(settled_soak_evidence)
    # Then nothing is flagged, and each command is in exactly one bucket
    assert verdict.violations == []
    buckets = {how: count for (_, how), count in verdict.accounting.items()}
    assert buckets == {
        "answered by its participant": 2,
        "consumed after its task timed out": 1,
        "in an alarmed DLQ": 1,
    }


def test_a_lost_command_is_flagged(settled_soak_evidence):
    # Given a command whose task timed out while a message still sits on its queue, in no DLQ, its saga not flagged
    queue = settled_soak_evidence.commands[0].queue_url
    lost = SentCommand("s-ok", "ship", "action", queue, "t9", "timed_out")
    evidence = dataclasses.replace(
        settled_soak_evidence, commands=[*settled_soak_evidence.commands, lost], left_on_queues={queue: 1}
    )
    # When it is checked
    violations = check(evidence).violations
    # Then both the unconsumed message and the unaccounted command are named
    assert f"queue {queue}: 1 message(s) never consumed" in violations
    assert any(v.startswith("command s-ok/ship/action: timed_out") for v in violations)


def test_a_dead_letter_whose_alarm_does_not_fire_is_flagged(settled_soak_evidence):
    # Given the DLQ holds a message but its alarm evaluates OK
    evidence = dataclasses.replace(
        settled_soak_evidence, dlq_alarms=[DlqAlarm("ReserveItemsDLQ", 1, "ReserveItemsDLQDepth", "OK")]
    )
    # When / Then
    assert check(evidence).violations == [
        "DLQ ReserveItemsDLQ: 1 message(s) but its alarm is OK (ReserveItemsDLQDepth)"
    ]


def test_a_failed_invariant_check_is_flagged(settled_soak_evidence):
    # Given the saga's invariant check found money that does not add up
    problem = "saga s-failed: FAILED, net 2500 cents, expected 0"
    evidence = dataclasses.replace(settled_soak_evidence, invariant_problems=[problem])
    # When / Then
    assert check(evidence).violations == [f"invariant check: {problem}"]


def test_a_parked_saga_nobody_was_told_about_and_an_unfinished_one_are_flagged(settled_soak_evidence):
    # Given the parked saga has no report, another saga still runs, and one accepted saga has no record at all
    evidence = dataclasses.replace(
        settled_soak_evidence,
        accepted=[*settled_soak_evidence.accepted, "s-running", "s-vanished"],
        statuses={**settled_soak_evidence.statuses, "s-running": "PENDING"},
        stuck_reports={},
    )
    # When
    violations = check(evidence).violations
    # Then each is named
    assert "saga s-parked: parked in COMPENSATION_FAILED but not flagged in the stuck-sagas queue" in violations
    assert "saga s-running: not terminal (PENDING)" in violations
    assert "saga s-vanished: accepted by the API (202) but has no saga record" in violations


@pytest.mark.parametrize(
    ("comparison", "depth", "state"),
    [("GreaterThanThreshold", 0, "OK"), ("GreaterThanThreshold", 1, "ALARM"), ("LessThanThreshold", 1, "OK")],
)
def test_a_template_alarm_is_evaluated_on_a_depth(comparison, depth, state):
    # Given a DLQ depth alarm as the template defines it (threshold 0) / When evaluated on a depth / Then its state
    assert evaluate_alarm({"ComparisonOperator": comparison, "Threshold": 0}, depth) == state


def test_the_soak_plans_transient_faults_with_the_participants_own_error_names():
    # Given the order saga, whose compensation retry policies also retry States.Timeout (a name only Step Functions
    # may raise: a participant that reported it would crash moto's interpreter, and be refused by AWS)
    from saga_testkit.soak import plan_faults
    from statemachines import load_definition
    from tests.sagas.order_fulfillment.kit import SAGA_FILE

    definition = load_definition(SAGA_FILE)
    # When the soak draws faults for many sagas
    plan = plan_faults(random.Random(7), definition, [f"saga-{n}" for n in range(2000)], time_scale=0.25)
    transient = [p for faults in plan.values() for p in faults if p.fault.kind == "transient"]
    # Then there are transient faults on compensations too, and none is named like a Step Functions error
    assert any(p.kind == "compensation" for p in transient)
    assert [p.fault.error for p in transient if p.fault.error.startswith("States.")] == []


def test_the_soak_starts_the_sagas_with_a_crash_or_a_poisoned_command_first_and_the_rest_in_plan_order():
    # Given a plan where crashes and poisoned commands (accounted for only once they came back after a visibility
    # timeout, or cycled to their DLQ) are drawn for sagas spread through the run
    from saga_testkit.soak import plan_faults, start_order
    from statemachines import load_definition
    from tests.sagas.order_fulfillment.kit import SAGA_FILE

    saga_ids = [f"saga-{n:03d}" for n in range(200)]
    plan = plan_faults(random.Random(5), load_definition(SAGA_FILE), saga_ids, time_scale=0.1)
    poisoned = [s for s in saga_ids if any(p.choice in ("poison_message", "crash_after_acting") for p in plan[s])]
    assert poisoned
    assert poisoned != saga_ids[: len(poisoned)]  # not already first in the plan
    # When the soak orders its starts
    order = start_order(saga_ids, plan)
    # Then every saga starts once, those first, each group in plan order
    assert sorted(order) == saga_ids
    assert order == poisoned + [s for s in saga_ids if s not in poisoned]
