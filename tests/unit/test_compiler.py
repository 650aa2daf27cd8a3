"""The compiler: definition -> ASL. Expected values come from the definition, never from compiled output."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from statemachines import compile_saga, load_definition, parse_definition, queue_url_key
from statemachines.__main__ import generated_files
from statemachines.compiler import (
    CALLBACK_RESOURCE,
    COMPENSATION_FAILED_ERROR,
    FORWARD_RECOVERY_FAILED_ERROR,
    RECORD_COMPLETED,
    RECORD_FAILED,
    placeholders,
    substitution_keys,
)
from statemachines.definition import saga_files
from tests.sagas.order_fulfillment.kit import SAGA_FILE

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def definition():
    return load_definition(SAGA_FILE)


@pytest.fixture(scope="module")
def asl(definition):
    return compile_saga(definition)


@pytest.fixture
def raw_definition():
    return yaml.safe_load(SAGA_FILE.read_text())


def _callback_tasks(asl):
    return {name: state for name, state in asl["States"].items() if state.get("Resource") == CALLBACK_RESOURCE}


def _compensation_chain(asl, entry):
    """Follow Next from a compensation entry to the end: the compensations in the order they run."""
    chain, state_name = [], entry
    while state_name in asl["States"] and state_name != RECORD_FAILED:
        state = asl["States"][state_name]
        chain.append(state["Parameters"]["MessageBody"]["step"])
        state_name = state["Next"]
    assert state_name == RECORD_FAILED
    return chain


def test_every_callback_task_has_a_timeout_and_a_shorter_heartbeat(asl, definition):
    # Given the compiled saga / When we look at every callback task
    tasks = _callback_tasks(asl)
    # Then one action and one compensation per step exist, each bounded in time
    assert len(tasks) == sum(len(step.commands) for step in definition.steps)
    for name, task in tasks.items():
        step = definition.step(task["Parameters"]["MessageBody"]["step"])
        assert task["TimeoutSeconds"] == step.sla.timeout_seconds, name
        assert task["HeartbeatSeconds"] == step.sla.heartbeat_seconds, name
        assert task["HeartbeatSeconds"] < task["TimeoutSeconds"], name


def test_command_envelope_carries_what_a_participant_needs(asl, definition):
    for index, step in enumerate(definition.steps):
        body = asl["States"][step.action]["Parameters"]["MessageBody"]
        assert body["step"] == step.name
        assert body["kind"] == "action"
        assert body["command"] == step.action
        assert body["saga_type"] == definition.name
        assert body["task_token.$"] == "$$.Task.Token"
        assert body["saga_id.$"] == "$$.Execution.Name"
        assert f"#{step.name}#action" in body["idempotency_key.$"]
        assert body["input.$"] == "$.input"
        # Earlier results travel on; the first step has none yet.
        assert ("results.$" in body) == (index > 0)
        # Its place in the saga, by which the participant reads the saga record
        assert body.get("previous_step") == (definition.steps[index - 1].name if index > 0 else None)
        following = definition.steps[index + 1].name if index + 1 < len(definition.steps) else None
        assert body.get("next_step") == following
        assert "retriable" not in body
        # and what undoes it, should its answer come too late (one participant serves every command of its service)
        assert body["compensation"] == step.compensation
        queue = asl["States"][step.action]["Parameters"]["QueueUrl"]
        assert queue == f"${{{queue_url_key(step.action)}}}"
        comp_body = asl["States"][step.compensation]["Parameters"]["MessageBody"]
        assert comp_body["kind"] == "compensation"
        assert f"#{step.name}#compensation" in comp_body["idempotency_key.$"]
        assert comp_body["error.$"] == "$.error"


@pytest.mark.parametrize("failing", range(4))
def test_a_failure_compensates_exactly_the_completed_steps_in_reverse(asl, definition, failing):
    # Given a permanent failure at step `failing`
    step = definition.steps[failing]
    catch_all = next(c for c in asl["States"][step.action]["Catch"] if c["ErrorEquals"] == ["States.ALL"])
    # When the Catch routes it
    chain = [] if catch_all["Next"] == RECORD_FAILED else _compensation_chain(asl, catch_all["Next"])
    # Then exactly the earlier steps are compensated, last first
    assert chain == [s.name for s in reversed(definition.steps[:failing])]
    assert catch_all["ResultPath"] == "$.error"


@pytest.mark.parametrize("failing", range(4))
def test_a_timeout_compensates_the_timed_out_step_too(asl, definition, failing):
    step = definition.steps[failing]
    timeout_catch = next(c for c in asl["States"][step.action]["Catch"] if c["ErrorEquals"] == ["States.Timeout"])
    assert _compensation_chain(asl, timeout_catch["Next"]) == [
        s.name for s in reversed(definition.steps[: failing + 1])
    ]


def test_assume_not_applied_on_timeout_skips_the_step_itself(raw_definition):
    # Given a step whose timeout is declared to mean "did not happen"
    raw_definition["steps"][2]["on_timeout"] = "assume_not_applied"
    asl = compile_saga(parse_definition(raw_definition))
    # Then its Catch has no timeout route of its own: it compensates only the earlier steps
    catches = asl["States"]["CreateShipment"]["Catch"]
    assert [c["ErrorEquals"] for c in catches] == [["States.ALL"]]
    assert catches[0]["Next"] == "RefundPayment"


def test_retries_match_the_policy_and_never_retry_permanent_errors(asl, definition):
    for step in definition.steps:
        retriers = asl["States"][step.action]["Retry"]
        policy = retriers[0]
        assert policy["ErrorEquals"] == step.retry.errors
        assert policy["MaxAttempts"] == step.retry.max_attempts
        assert policy["IntervalSeconds"] == step.retry.interval_seconds
        assert policy["BackoffRate"] == step.retry.backoff_rate
        assert policy["MaxDelaySeconds"] == step.retry.max_delay_seconds
        assert policy.get("JitterStrategy") == ("FULL" if step.retry.jitter == "FULL" else None)
        retried = {error for retrier in retriers for error in retrier["ErrorEquals"]}
        assert not retried & set(step.permanent_errors)
        assert "States.ALL" not in retried


def test_a_failing_compensation_parks_the_saga(asl, definition):
    for step in definition.steps:
        compensation = asl["States"][step.compensation]
        assert compensation["Retry"][0]["MaxAttempts"] == step.effective_compensation_retry.max_attempts
        (catch,) = compensation["Catch"]
        park = asl["States"][catch["Next"]]
        values = park["Parameters"]["ExpressionAttributeValues"]
        assert values[":status"] == {"S": "COMPENSATION_FAILED"}
        assert values[":failed_step"] == {"S": step.name}
        assert asl["States"][park["Next"]] == {**asl["States"][park["Next"]], "Type": "Fail"}
        assert asl["States"][park["Next"]]["Error"] == COMPENSATION_FAILED_ERROR


def test_a_compensation_retries_its_errors_and_its_timeouts_on_budgets_of_their_own(asl, definition):
    for step in definition.steps:
        transient, timeouts, delivery = asl["States"][step.compensation]["Retry"]
        # Its own transient errors first, at least as patiently as the action
        assert transient["ErrorEquals"] == step.retry.errors
        assert transient["MaxAttempts"] >= max(step.retry.max_attempts, 5)
        assert transient["MaxDelaySeconds"] >= 60
        # Then timeouts: a command that waited out its heartbeat window in a backlog is sent again only after waiting
        # that long again, doubling up to five minutes, six times: about half an hour per window of 30 s
        assert timeouts["ErrorEquals"] == ["States.Timeout"]
        assert timeouts["IntervalSeconds"] == step.sla.heartbeat_seconds
        assert (timeouts["BackoffRate"], timeouts["MaxDelaySeconds"], timeouts["MaxAttempts"]) == (2.0, 300, 6)
        assert timeouts["JitterStrategy"] == "FULL"
        assert delivery["ErrorEquals"][0].startswith("SQS.")


def test_an_explicit_compensation_retry_is_the_compensations_only_policy(raw_definition):
    raw_definition["steps"][0]["compensation_retry"] = {"errors": ["States.Timeout"], "max_attempts": 2}
    retriers = compile_saga(parse_definition(raw_definition))["States"]["ReleaseReservation"]["Retry"]
    assert [(r["ErrorEquals"], r["MaxAttempts"]) for r in retriers[:-1]] == [(["States.Timeout"], 2)]


def _pending(state):
    values = state["Parameters"]["ExpressionAttributeValues"][":pending"]["L"]
    return [(entry["M"]["step"]["S"], entry["M"]["kind"]["S"]) for entry in values]


def test_a_parked_compensation_lists_what_resume_runs_as_the_state_machine_would_have(asl, definition):
    for step in definition.steps:
        (catch,) = asl["States"][step.compensation]["Catch"]
        park = asl["States"][catch["Next"]]
        # Then pending is the failed compensation and every one the state machine would have run after it, in order
        expected = [(name, "compensation") for name in _compensation_chain(asl, step.compensation)]
        assert _pending(park) == expected, step.name
        assert "#pending = :pending" in park["Parameters"]["UpdateExpression"]


def test_a_stalled_retriable_step_is_marked_failed_with_its_error_and_lists_every_step_left(raw_definition):
    # Given the last two steps retriable
    for index in (2, 3):
        raw_definition["steps"][index]["retriable"] = True
        del raw_definition["steps"][index]["compensation"]
    definition = parse_definition(raw_definition)
    asl = compile_saga(definition)
    for index in (2, 3):
        step = definition.steps[index]
        (catch,) = asl["States"][step.action]["Catch"]
        park = asl["States"][catch["Next"]]
        parameters = park["Parameters"]
        # Then the park state records the step FAILED with the error that stopped it (not left RUNNING)
        assert parameters["ExpressionAttributeNames"]["#failed"] == step.name
        assert {"steps.#failed.#status = :step_failed", "steps.#failed.#error = :error"} <= set(
            parameters["UpdateExpression"].removeprefix("SET ").split(" ADD ")[0].split(", ")
        )
        assert parameters["ExpressionAttributeValues"][":step_failed"] == {"S": "FAILED"}
        assert parameters["ExpressionAttributeValues"][":error"] == {"S.$": f"{catch['ResultPath']}.Error"}
        # And pending is this step's action and every action after it
        assert _pending(park) == [(later.name, "action") for later in definition.steps[index:]]


def test_parking_costs_no_extra_state(asl, definition):
    # Every park state goes straight to its Fail state: the pending list rides on the one record update
    for step in definition.steps:
        (catch,) = asl["States"][step.compensation]["Catch"]
        assert asl["States"][asl["States"][catch["Next"]]["Next"]]["Type"] == "Fail"


def test_terminal_records_end_the_execution_successfully(asl):
    for name, status in ((RECORD_COMPLETED, "COMPLETED"), (RECORD_FAILED, "FAILED")):
        state = asl["States"][name]
        assert state["End"] is True
        assert state["Parameters"]["ExpressionAttributeValues"][":status"] == {"S": status}


def test_a_completed_saga_s_record_shows_every_step_succeeded_at_once(asl, definition):
    # (a participant marks its step only after Step Functions took its answer: the last marks may land later)
    parameters = asl["States"][RECORD_COMPLETED]["Parameters"]
    names = parameters["ExpressionAttributeNames"]
    marked = {
        names[assignment.split(".")[1]]
        for assignment in parameters["UpdateExpression"].removeprefix("SET ").split(" ADD ")[0].split(", ")
        if assignment.startswith("steps.") and assignment.endswith(".#status = :succeeded")
    }
    assert marked == {step.name for step in definition.steps}
    assert parameters["ExpressionAttributeValues"][":succeeded"] == {"S": "SUCCEEDED"}


def _walk(asl, route):
    """States entered (billed transitions) when each task answers per `route(state_name) -> error | None`."""
    entered, name = [], asl["StartAt"]
    while True:
        entered.append(name)
        state = asl["States"][name]
        if state["Type"] == "Fail" or state.get("End"):
            return entered
        error = route(name)
        if error is None:
            name = state["Next"]
            continue
        name = next(
            c["Next"] for c in state["Catch"] if error in c["ErrorEquals"] or c["ErrorEquals"] == ["States.ALL"]
        )


def test_transition_budget(asl, definition):
    # Happy path: one state per step plus the one that records COMPLETED.
    assert len(_walk(asl, lambda name: None)) == len(definition.steps) + 1
    # A permanent failure at step k (1-based) costs at most 2k states.
    for k, step in enumerate(definition.steps, start=1):
        path = _walk(asl, lambda name, failing=step.action: "Some.Error" if name == failing else None)
        assert len(path) <= 2 * k, path


def test_retriable_steps_are_never_compensated_and_park_when_exhausted(raw_definition):
    # Given the last step marked retriable (past the pivot)
    last = raw_definition["steps"][3]
    last["retriable"] = True
    del last["compensation"]
    asl = compile_saga(parse_definition(raw_definition))
    # Then it has no compensation, retries timeouts, and parks on exhaustion
    assert "SendCancellationNotice" not in asl["States"]
    task = asl["States"]["SendOrderConfirmation"]
    assert "States.Timeout" in task["Retry"][0]["ErrorEquals"]
    # (its participant is told: a late success of a retried attempt is never undone)
    assert task["Parameters"]["MessageBody"]["retriable"] is True
    assert "compensation" not in task["Parameters"]["MessageBody"]
    (catch,) = task["Catch"]
    park = asl["States"][catch["Next"]]
    assert park["Parameters"]["ExpressionAttributeValues"][":status"] == {"S": "FORWARD_RECOVERY_FAILED"}
    assert asl["States"][park["Next"]]["Error"] == FORWARD_RECOVERY_FAILED_ERROR


def test_placeholders_are_exactly_the_substitution_keys(asl, definition):
    assert placeholders(json.dumps(asl)) == set(substitution_keys(definition))


def _mutate(raw, path, value):
    target = raw
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("steps", 1, "colour"), "blue", "step 'process_payment': field 'colour': unknown key"),
        (("steps", 0, "sla"), _DELETE, "step 'reserve_inventory': field 'sla': Field required"),
        (("steps", 2, "sla", "heartbeat_seconds"), 120, "step 'create_shipment': field 'sla.heartbeat_seconds'"),
        (("steps", 3, "name"), "reserve_inventory", "step 'reserve_inventory': field 'name': duplicate step name"),
        (("steps", 1, "retry", "errors"), ["States.ALL"], "step 'process_payment': field 'retry.errors'"),
        (("steps", 1, "retry", "errors"), ["Payment.CardDeclined"], "field 'permanent_errors'"),
        (("steps", 0, "compensation"), _DELETE, "step 'reserve_inventory': field 'compensation': required"),
        (("steps", 0, "retry", "max_attempts"), -1, "step 'reserve_inventory': field 'retry.max_attempts'"),
        (("steps", 0, "on_timeout"), "shrug", "step 'reserve_inventory': field 'on_timeout'"),
        (("name",), "order fulfilment", "field 'name'"),
        (("steps",), [], "field 'steps'"),
    ],
)
def test_bad_definitions_name_file_step_and_field(raw_definition, tmp_path, path, value, expected):
    # Given a definition file with one mistake
    raw = copy.deepcopy(raw_definition)
    _mutate(raw, path, value)
    bad_file = tmp_path / "broken.saga.yaml"
    bad_file.write_text(yaml.safe_dump(raw))
    # When it is loaded / Then the error names the file, the step and the field
    with pytest.raises(ValueError, match=r"broken\.saga\.yaml") as error:
        load_definition(bad_file)
    assert expected in str(error.value)


def test_a_compensatable_step_after_a_retriable_one_is_rejected(raw_definition):
    raw_definition["steps"][2]["retriable"] = True
    del raw_definition["steps"][2]["compensation"]
    with pytest.raises(ValueError, match=r"step 'send_confirmation': field 'retriable'.*create_shipment"):
        parse_definition(raw_definition, "order.saga.yaml")


def test_a_retriable_step_with_a_compensation_is_rejected(raw_definition):
    raw_definition["steps"][3]["retriable"] = True
    with pytest.raises(ValueError, match="step 'send_confirmation': field 'compensation'"):
        parse_definition(raw_definition, "order.saga.yaml")


def test_committed_asl_and_diagram_are_fresh():
    files = saga_files()
    assert files, "no saga definition found in statemachines/sagas/"
    for saga_file in files:
        for path, text in generated_files(saga_file).items():
            assert path.exists(), f"{path} missing: run `make asl`"
            assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make asl`"


@pytest.mark.parametrize("saga_file", saga_files(), ids=lambda path: path.name)
def test_readme_shows_the_current_diagram_of_every_example_saga(saga_file):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    ((mmd, diagram),) = [(path, text) for path, text in generated_files(saga_file).items() if path.suffix == ".mmd"]
    assert f"```mermaid\n{diagram}```" in readme, f"README diagram is stale or missing: paste {mmd.name}"


def test_stale_check_fails_on_an_edited_definition(tmp_path, raw_definition, monkeypatch):
    # Given a saga directory whose definition changed after generation
    from statemachines import __main__ as cli

    saga = tmp_path / "order.saga.yaml"
    saga.write_text(yaml.safe_dump(raw_definition))
    monkeypatch.setattr(cli, "saga_files", lambda: [saga])
    assert cli.main([]) == 0
    raw_definition["steps"][0]["sla"]["timeout_seconds"] = 61
    saga.write_text(yaml.safe_dump(raw_definition))
    # When checked / Then it reports stale
    assert cli.main(["--check"]) == 1


def test_the_compiler_does_not_import_the_cdk():
    code = "import sys, statemachines; statemachines.compile_saga; print('aws_cdk' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_execution_is_bounded_by_the_sagas_deadline(asl, definition):
    # An execution that escapes every Catch (or waits on a callback nobody answers) still ends, TIMED_OUT, once no
    # saga of this definition can still be legitimately running.
    from statemachines.deadline import saga_deadline_seconds

    assert asl["TimeoutSeconds"] == saga_deadline_seconds(definition)
    worst_task = max(step.sla.timeout_seconds for step in definition.steps)
    assert asl["TimeoutSeconds"] > worst_task * len(definition.steps) * 2  # every action and compensation, once
