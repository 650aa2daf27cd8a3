"""`pivot: true`, the go/no-go step: its rules, what it compiles to, its transitions, its diagram, its deadline and its
fault matrix. Expected values come from the definition, never from compiled output."""

from __future__ import annotations

import pytest

from saga_records import SagaStatus
from saga_testkit.fault_matrix import TIMEOUT_ERROR, FaultCell, NotApplicable, fault_matrix
from statemachines import SagaDefinitionError, compile_saga, parse_definition
from statemachines.compiler import FORWARD_RECOVERY_FAILED_ERROR, RECORD_COMPLETED, RECORD_FAILED
from statemachines.deadline import (
    DEADLINE_GRACE_SECONDS,
    saga_deadline_seconds,
    worst_case_compensation_seconds,
    worst_case_task_seconds,
)
from statemachines.definition import DEFAULT_MAX_ATTEMPTS
from statemachines.diagram import to_mermaid

pytestmark = pytest.mark.unit

RETRY = {"errors": ["Trip.Busy"], "max_attempts": 2, "interval_seconds": 1}


def step(name: str, action: str, compensation: str | None = None, **extra) -> dict:
    return {
        "name": name,
        "service": "TripService",
        "action": action,
        **({"compensation": compensation} if compensation else {}),
        "sla": {"timeout_seconds": 60, "heartbeat_seconds": 20},
        "retry": RETRY,
        "permanent_errors": [f"Trip.{action}Refused"],
        **extra,
    }


def trip(*steps: dict) -> dict:
    return {"name": "Trip", "description": "hold, charge, issue (the pivot), notify", "steps": list(steps)}


HOLD = step("hold", "Hold", "Release")
CHARGE = step("charge", "Charge", "Refund")
ISSUE = step("issue", "Issue", pivot=True)
NOTIFY = step("notify", "Notify", retriable=True, permanent_errors=[])


@pytest.fixture(scope="module")
def definition():
    return parse_definition(trip(HOLD, CHARGE, ISSUE, NOTIFY))


@pytest.fixture(scope="module")
def asl(definition):
    return compile_saga(definition)


def _catch(asl, state, errors):
    return next(catch for catch in asl["States"][state]["Catch"] if catch["ErrorEquals"] == errors)


def _chain(asl, entry):
    """The compensations that run from `entry` until RecordFailed, in order."""
    chain, name = [], entry
    while name != RECORD_FAILED:
        chain.append(asl["States"][name]["Parameters"]["MessageBody"]["step"])
        name = asl["States"][name]["Next"]
    return chain


def _pending(state):
    return [
        (entry["M"]["step"]["S"], entry["M"]["kind"]["S"])
        for entry in state["Parameters"]["ExpressionAttributeValues"][":pending"]["L"]
    ]


# --- the rules ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "field", "says"),
    [
        ((HOLD, {**ISSUE, "compensation": "Void"}, NOTIFY), "step 'issue': field 'compensation'", "never compensated"),
        (
            (HOLD, ISSUE, step("issue_again", "IssueAgain", pivot=True)),
            "step 'issue_again': field 'pivot'",
            "one pivot",
        ),
        ((HOLD, ISSUE, CHARGE), "step 'charge': field 'retriable'", "every step after the pivot 'issue'"),
        ((HOLD, NOTIFY, ISSUE), "step 'issue': field 'pivot'", "cannot follow the retriable step 'notify'"),
        ((HOLD, {**ISSUE, "retriable": True}, NOTIFY), "step 'issue': field 'retriable'", "the pivot is not"),
        ((HOLD, {**ISSUE, "on_timeout": "compensate"}, NOTIFY), "step 'issue': field 'on_timeout'", "retried"),
        (
            (HOLD, {**ISSUE, "compensation_retry": RETRY}, NOTIFY),
            "step 'issue': field 'compensation_retry'",
            "the pivot has no compensation",
        ),
        (
            (HOLD, {**ISSUE, "retry": {"errors": ["Trip.Busy"], "max_attempts": 0}}, NOTIFY),
            "step 'issue': field 'retry.max_attempts'",
            "at least 1",
        ),
    ],
    ids=[
        "a compensation",
        "two pivots",
        "a compensatable step after it",
        "after a retriable step",
        "also retriable",
        "on_timeout",
        "compensation_retry",
        "no retries",
    ],
)
def test_a_pivot_breaking_a_rule_is_refused_naming_the_step_and_field(steps, field, says):
    # Given a saga whose pivot breaks one rule / When it is loaded / Then the error names the step, field and rule
    with pytest.raises(SagaDefinitionError) as refused:
        parse_definition(trip(*steps), "trip.saga.yaml")
    assert f"trip.saga.yaml: {field}" in str(refused.value)
    assert says in str(refused.value)


def test_a_saga_without_a_retriable_step_after_its_pivot_is_valid():
    # Given a pivot as the last step (the point of no return is the end)
    definition = parse_definition(trip(HOLD, ISSUE))
    # Then it is the saga's pivot, and it is not compensatable
    assert definition.pivot is definition.steps[1]
    assert [step.name for step in definition.compensatable_steps] == ["hold"]


# --- what it compiles to ------------------------------------------------------------------------------------------


def test_the_pivot_has_no_compensation_and_retries_timeouts_with_its_transient_errors(asl, definition):
    pivot = definition.step("issue")
    task = asl["States"]["Issue"]
    bodies = [
        state["Parameters"]["MessageBody"]
        for state in asl["States"].values()
        if "MessageBody" in state.get("Parameters", {})
    ]
    assert ("issue", "compensation") not in {(body["step"], body["kind"]) for body in bodies}
    retrier = task["Retry"][0]
    assert retrier["ErrorEquals"] == [*RETRY["errors"], TIMEOUT_ERROR]
    assert retrier["MaxAttempts"] == pivot.retry.max_attempts
    # (its participant is told: a late success is never undone, an operator may run it again without a token)
    body = task["Parameters"]["MessageBody"]
    assert body["retriable"] is True
    assert "compensation" not in body


def test_a_refusal_of_the_pivot_compensates_exactly_the_steps_before_it_last_first(asl):
    catch_all = _catch(asl, "Issue", ["States.ALL"])
    assert catch_all["ResultPath"] == "$.error"
    assert _chain(asl, catch_all["Next"]) == ["charge", "hold"]


def test_a_pivot_whose_retries_run_out_parks_for_forward_recovery_with_itself_and_every_later_step_pending(asl):
    stalled = _catch(asl, "Issue", [*RETRY["errors"], TIMEOUT_ERROR])
    park = asl["States"][stalled["Next"]]
    values = park["Parameters"]["ExpressionAttributeValues"]
    assert values[":status"] == {"S": "FORWARD_RECOVERY_FAILED"}
    assert (values[":failed_step"], values[":step_failed"]) == ({"S": "issue"}, {"S": "FAILED"})
    assert _pending(park) == [("issue", "action"), ("notify", "action")]
    assert asl["States"][park["Next"]]["Error"] == FORWARD_RECOVERY_FAILED_ERROR
    # and the transient errors and timeouts are caught before the refusal route, which would otherwise take them
    assert [catch["ErrorEquals"][-1] for catch in asl["States"]["Issue"]["Catch"]] == [TIMEOUT_ERROR, "States.ALL"]


def test_a_pivot_without_a_retry_block_retries_timeouts_with_the_defaults():
    definition = parse_definition(trip(HOLD, {key: value for key, value in ISSUE.items() if key != "retry"}))
    retrier = compile_saga(definition)["States"]["Issue"]["Retry"][0]
    assert (retrier["ErrorEquals"], retrier["MaxAttempts"]) == ([TIMEOUT_ERROR], DEFAULT_MAX_ATTEMPTS)


def test_a_first_step_pivot_refused_records_the_saga_failed_at_once():
    asl = compile_saga(parse_definition(trip(ISSUE, NOTIFY)))
    assert _catch(asl, "Issue", ["States.ALL"])["Next"] == RECORD_FAILED
    assert asl["States"][RECORD_FAILED]["Parameters"]["ExpressionAttributeValues"][":status"] == {"S": "FAILED"}


def _walk(asl, answers):
    """States entered (billed transitions) when each task answers per `answers[state]` (an error name, or success)."""
    entered, name = [], asl["StartAt"]
    while True:
        entered.append(name)
        state = asl["States"][name]
        if state["Type"] == "Fail" or state.get("End"):
            return entered
        error = answers.get(name)
        if error is None:
            name = state["Next"]
            continue
        name = next(
            c["Next"] for c in state["Catch"] if error in c["ErrorEquals"] or c["ErrorEquals"] == ["States.ALL"]
        )


def test_transitions_of_a_saga_with_a_pivot(asl):
    # Happy path: one state per step, plus RecordCompleted
    assert _walk(asl, {}) == ["Hold", "Charge", "Issue", "Notify", RECORD_COMPLETED]
    # The pivot (k = 3) refused: 2k, as any step's permanent failure
    assert len(_walk(asl, {"Issue": "Trip.IssueRefused"})) == 2 * 3
    # Its retries spent: the steps up to it, the park and its Fail state, nothing compensated
    assert _walk(asl, {"Issue": TIMEOUT_ERROR}) == [
        "Hold",
        "Charge",
        "Issue",
        "ParkIssueStalled",
        "ForwardRecoveryFailed",
    ]


# --- the diagram, the deadline ------------------------------------------------------------------------------------


def test_the_diagram_draws_the_pivot_apart_with_both_routes(asl):
    diagram = to_mermaid(asl)
    assert 'Issue["Issue (pivot)<br/>' in diagram
    assert "class Issue pivot" in diagram
    assert "Issue -. retries spent .-> ParkIssueStalled" in diagram
    assert "Issue -. any error .-> Refund" in diagram
    # and only the pivot: the other actions are plain actions
    assert "class Hold,Charge,Notify action" in diagram


def test_the_deadline_counts_every_retry_of_the_pivot_and_no_compensation_of_it(definition):
    hold, charge, issue, _notify = definition.steps
    actions = sum(worst_case_task_seconds(step.sla, step.action_retry) for step in definition.steps)
    compensations = sum(worst_case_compensation_seconds(step) for step in (hold, charge))
    assert saga_deadline_seconds(definition) == int(actions + compensations) + DEADLINE_GRACE_SECONDS
    # the pivot's timeouts are retried: every attempt may run to its timeout
    assert worst_case_task_seconds(issue.sla, issue.action_retry) >= (RETRY["max_attempts"] + 1) * 60


# --- its fault matrix ---------------------------------------------------------------------------------------------


def test_the_pivot_s_fault_cells_compensate_a_refusal_and_park_what_retries_cannot_settle(definition):
    cells = {cell.id: cell for cell in fault_matrix(definition)}
    # Refused: the steps before it are compensated, last first
    refused = cells["issue-permanent"].expected
    assert (refused.status, refused.error, refused.compensations_succeeded) == (
        SagaStatus.FAILED,
        "Trip.IssueRefused",
        ("charge", "hold"),
    )
    # Transient errors past its retries: parked at it, nothing compensated
    beyond = cells["issue-transient_beyond_retries"].expected
    assert (beyond.status, beyond.parked_step, beyond.compensations_succeeded) == (
        SagaStatus.FORWARD_RECOVERY_FAILED,
        "issue",
        (),
    )
    # A lost reply, a crash or poison: its timeout is retried, and the retry answers
    for fault in ("lost_reply", "crash_after_acting", "poison_message"):
        assert cells[f"issue-{fault}"].expected.status == SagaStatus.COMPLETED, fault
    # (a crash kept no outcome: the retry runs the pivot's domain code again, which finds the tickets issued)
    assert cells["issue-crash_after_acting"].expected.late_redelivery == ("issue", "action")
    # It has no compensation to fault; the step before it is compensated by its refusal
    assert isinstance(cells["issue-compensation_permanent"], NotApplicable)
    assert cells["issue-compensation_permanent"].reason == "the pivot has no compensation"
    trigger = cells["charge-compensation_permanent"]
    assert isinstance(trigger, FaultCell)
    assert (trigger.plans[0].step, trigger.plans[0].fault.kind) == ("issue", "permanent")
