"""The capacity model on a two-step saga; every expected figure is derived by hand in the comments."""

from __future__ import annotations

import pytest

from bench.capacity import capacity, failure_path, happy_path, heartbeats_per_task, model, path_use
from bench.quotas import REGION_CLASSES, SEND_TASK, START_EXECUTION, STATE_TRANSITIONS, Quota, RegionClass
from statemachines import compile_saga

pytestmark = pytest.mark.unit

# Steps of 9 s, commands picked up fresh: step 1 (a beat every 10 s) answers before its first beat; step 2 (every
# 4 s) beats at 4 and 8 s: 2 beats.
STEP_SECONDS = 9.0


def test_heartbeats_are_one_per_interval_elapsed():
    # Given a 30 s heartbeat window (a beat every 10 s) / When the step takes 0, 9.9, 10 or 25 s
    # Then the toolkit sends 0, 0, 1 and 2 heartbeats
    assert [heartbeats_per_task(30, seconds) for seconds in (0, 9.9, 10, 25)] == [0, 0, 1, 2]
    # And a 2 s window beats every 2/3 s, under 1.5 s: the toolkit keeps the pick-up beat, 1 + 1 for a 1 s step
    assert heartbeats_per_task(2, 1.0) == 2


def test_paths_enter_the_states_the_definition_implies(two_step_saga):
    # Given the two-step saga compiled
    asl = compile_saga(two_step_saga)
    # When its paths are walked / Then: both actions then the COMPLETED record;
    # a failure at step 1 goes straight to the FAILED record; at step 2 it undoes step 1 first
    assert happy_path(asl) == ["DoAlpha", "DoBeta", "RecordCompleted"]
    assert failure_path(asl, 1) == ["DoAlpha", "RecordFailed"]
    assert failure_path(asl, 2) == ["DoAlpha", "DoBeta", "UndoAlpha", "RecordFailed"]
    with pytest.raises(ValueError, match="failing_task"):
        failure_path(asl, 3)


def test_use_per_saga_counts_answers_and_heartbeats(two_step_saga):
    # Given the two-step saga and 9 s steps
    asl = compile_saga(two_step_saga)
    # When the happy path is costed
    happy = path_use("happy", asl, happy_path(asl), STEP_SECONDS)
    # Then 1 StartExecution, 3 transitions, and (1 answer + 0 beats) + (1 answer + 2 beats) = 4 SendTask* calls
    assert (happy.start_executions, happy.transitions, happy.send_task_calls) == (1, 3, 4)
    # And a failure at step 2: 4 transitions; DoAlpha 1 + DoBeta 3 + UndoAlpha (step 1's window) 1 = 5 calls
    failed = path_use("fail 2", asl, failure_path(asl, 2), STEP_SECONDS)
    assert (failed.transitions, failed.send_task_calls) == (4, 5)


def test_large_regions_are_bound_by_send_task_for_the_two_step_saga(two_step_saga):
    # Given the large-region quotas (StartExecution 300/s, SendTask* 500/s, transitions 5,000/s)
    # When the happy path is modelled
    large = next(
        entry
        for entry in model(two_step_saga, step_seconds=STEP_SECONDS, failure_rate=0)
        if entry.region_class is REGION_CLASSES[0]
    )
    # Then per quota: 300/1 = 300, 500/4 = 125, 5000/3 = 1666.7 sagas/s; SendTask* binds at 125
    by_quota = {limit.quota.name: limit.sagas_per_s for limit in large.limits}
    assert by_quota[START_EXECUTION] == pytest.approx(300)
    assert by_quota[SEND_TASK] == pytest.approx(500 / 4)
    assert by_quota[STATE_TRANSITIONS] == pytest.approx(5000 / 3)
    assert large.binding.quota.name == SEND_TASK
    # And the full 3,000-call bucket absorbs 3000/4 = 750 sagas above the sustained rate
    assert large.binding.burst_sagas == pytest.approx(750)


def test_a_failure_mix_averages_the_paths(two_step_saga):
    # Given half the sagas failing, a quarter at each step
    entries = model(two_step_saga, step_seconds=STEP_SECONDS, failure_rate=0.5)
    mixed = next(entry for entry in entries if entry.use.label != "happy path")
    # When averaged / Then transitions 0.5*3 + 0.25*(2 + 4) = 3; SendTask* 0.5*4 + 0.25*(1 + 5) = 3.5
    # (failure at step 1: DoAlpha answers once, no beat)
    assert mixed.use.transitions == pytest.approx(3)
    assert mixed.use.send_task_calls == pytest.approx(3.5)
    with pytest.raises(ValueError, match="failure_rate"):
        model(two_step_saga, step_seconds=STEP_SECONDS, failure_rate=1.5)


def test_the_binding_quota_is_the_one_with_the_fewest_sagas_per_second(two_step_saga):
    # Given a region where StartExecution refills at 2/s (and the others are generous)
    tight = RegionClass(
        "tight",
        "test",
        (Quota(START_EXECUTION, 2, 10), Quota(SEND_TASK, 1000, None), Quota(STATE_TRANSITIONS, 1000, None)),
    )
    asl = compile_saga(two_step_saga)
    # When the happy path is modelled there / Then StartExecution binds at 2 sagas/s, with no burst figure
    # where the bucket is unknown
    result = capacity(tight, path_use("happy", asl, happy_path(asl), STEP_SECONDS))
    assert result.binding.quota.name == START_EXECUTION
    assert result.binding.sagas_per_s == pytest.approx(2)
    assert [limit.burst_sagas for limit in result.limits][1:] == [None, None]
