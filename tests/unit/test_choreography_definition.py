"""`pattern: choreography`: validated at compile time, and the routing derived from the definition (each command's
events, where the saga ends). Expected values are read off the definition, never from the derived output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from saga_records.events import EVENT_SIZE_LIMIT_BYTES, EventTooLarge, SagaEventDetail
from statemachines import choreography, load_definition, parse_definition
from statemachines.compiler import compile_saga, pending_after_forward_recovery_failure
from statemachines.definition import SQS_MAX_DELAY_SECONDS
from tests.sagas.order_fulfillment.kit import SAGA_FILE
from tests.sagas.trip_booking.kit import SAGA_FILE as TRIP_FILE
from tests.sagas.trip_booking_choreographed.kit import SAGA_FILE as CHOREOGRAPHED_TRIP_FILE

pytestmark = pytest.mark.unit

CHOREOGRAPHED_FILE = SAGA_FILE.with_name("order_fulfillment_choreographed.saga.yaml")


@pytest.fixture
def raw_definition():
    raw = yaml.safe_load(SAGA_FILE.read_text())
    raw["pattern"] = "choreography"
    return raw


def test_orchestration_is_the_default_pattern():
    assert load_definition(SAGA_FILE).pattern == "orchestration"
    assert load_definition(CHOREOGRAPHED_FILE).pattern == "choreography"


def test_the_choreographed_example_has_the_order_sagas_steps():
    # Same steps, services, commands, SLAs and retries: one set of participants, queues and domain functions serves both
    orchestrated, choreographed = load_definition(SAGA_FILE), load_definition(CHOREOGRAPHED_FILE)
    assert choreographed.steps == orchestrated.steps
    assert choreographed.route_path == "choreographed-orders"


@pytest.mark.parametrize("policy", ["retry", "compensation_retry"])
def test_a_retry_wait_longer_than_sqs_delay_is_refused_for_choreography(raw_definition, tmp_path, policy):
    # Given a choreographed saga whose step retries wait up to 901 s (SQS DelaySeconds stops at 900)
    step = raw_definition["steps"][1]
    step[policy] = {"errors": ["Payment.GatewayUnavailable"], "interval_seconds": 2, "max_delay_seconds": 901}
    bad = tmp_path / "late.saga.yaml"
    bad.write_text(yaml.safe_dump(raw_definition))
    # When it is loaded / Then the file, the step and the field are named
    with pytest.raises(ValueError, match=r"late\.saga\.yaml") as error:
        load_definition(bad)
    message = str(error.value)
    assert "late.saga.yaml" in message
    assert f"step 'process_payment': field '{policy}.max_delay_seconds'" in message
    assert str(SQS_MAX_DELAY_SECONDS) in message
    # And the same saga orchestrated is fine (Step Functions waits as long as it is told)
    raw_definition["pattern"] = "orchestration"
    assert parse_definition(copy.deepcopy(raw_definition)).pattern == "orchestration"


def test_a_retry_wait_of_exactly_900_seconds_is_accepted(raw_definition):
    raw_definition["steps"][1]["retry"]["max_delay_seconds"] = SQS_MAX_DELAY_SECONDS
    assert parse_definition(raw_definition).steps[1].retry.max_delay_seconds == SQS_MAX_DELAY_SECONDS


def test_a_choreographed_saga_may_have_a_pivot_and_retriable_steps():
    # The trip saga's steps (a pivot, then a retriable step), choreographed: accepted as they are orchestrated
    orchestrated, choreographed = load_definition(TRIP_FILE), load_definition(CHOREOGRAPHED_TRIP_FILE)
    assert choreographed.pattern == "choreography"
    assert choreographed.steps == orchestrated.steps
    assert choreographed.pivot is not None
    assert any(step.retriable for step in choreographed.steps)


def _compiled_catch(definition, step) -> dict[str, str]:
    """Error -> the state the orchestrated state machine's Catch of `step`'s action goes to."""
    state = compile_saga(definition)["States"][step.action]
    return {error: catch["Next"] for catch in state["Catch"] for error in catch["ErrorEquals"]}


@pytest.mark.parametrize("step_name", [step.name for step in load_definition(TRIP_FILE).steps])
def test_a_steps_failure_goes_where_the_state_machine_catches_it(step_name):
    # Given the trip saga in both patterns
    orchestrated, choreographed = load_definition(TRIP_FILE), load_definition(CHOREOGRAPHED_TRIP_FILE)
    step = orchestrated.step(step_name)
    caught = _compiled_catch(orchestrated, step)
    # When the step is refused (a permanent error: the state machine's States.ALL catch)
    failed = f"{step_name}.Failed"
    undone = choreography.compensation_after(choreographed, failed)
    # Then choreography compensates the same step the state machine goes to, parks where it parks, ends where it ends
    target = caught["States.ALL"]
    if target.startswith("Park"):
        assert undone is None
        assert failed in choreography.parks_forward(choreographed)
    elif target == "RecordFailed":
        assert undone is None
        assert failed in choreography.ends_failed(choreographed)
    else:
        assert undone is not None
        assert undone.compensation == target


def test_forward_recovered_steps_are_retried_and_parked_never_compensated():
    definition = load_definition(CHOREOGRAPHED_TRIP_FILE)
    pivot = definition.pivot
    retriable = [step for step in definition.steps if step.retriable]
    assert pivot is not None
    assert retriable
    before_pivot = definition.steps[definition.steps.index(pivot) - 1]
    routes = {reaction.command: set(reaction.on) for reaction in choreography.reactions(definition)}
    # Each forward-recovered action reacts to the step before it succeeding and to its own Retried (the tracker's
    # request after a deadline)
    assert routes[pivot.action] == {f"{before_pivot.name}.Succeeded", f"{pivot.name}.Retried"}
    for step in retriable:
        before = definition.steps[definition.steps.index(step) - 1]
        assert routes[step.action] == {f"{before.name}.Succeeded", f"{step.name}.Retried"}
    # The pivot's refusal undoes the step before it; nothing else of a forward-recovered step starts a compensation
    forward = [pivot, *retriable]
    starts_compensation = {event for reaction in choreography.reactions(definition) for event in reaction.on}
    starts_compensation -= {event for step in forward for event in routes[step.action]}
    assert {event for event in starts_compensation if event.partition(".")[0] in {s.name for s in forward}} == {
        f"{pivot.name}.Failed"
    }
    assert f"{pivot.name}.Failed" in routes[before_pivot.compensation]
    # Their deadlines never publish TimedOut (they retry or stall); running out of retries parks the saga, and so
    # does a retriable step's failure
    published = choreography.published_events(definition)
    assert not {f"{step.name}.TimedOut" for step in forward} & set(published)
    assert set(choreography.parks_forward(definition)) == {
        *(f"{step.name}.Stalled" for step in forward),
        *(f"{step.name}.Failed" for step in retriable),
    }
    assert not set(choreography.parks_forward(definition)) & set(choreography.ends_failed(definition))
    # The command says the step is recovered forward (its late answer is never undone, its retries run out stalled)
    for step in forward:
        (reaction,) = [r for r in choreography.reactions(definition) if r.command == step.action]
        assert choreography.command_fields(definition, reaction)["retriable"] is True
    # And the tracker knows each one's timeout retries and what a resume runs, as the compiler's park states write it
    setting = choreography.tracker_setting(definition)
    assert setting["timeout_retries"] == {step.name: step.action_retry.max_attempts for step in forward}
    assert setting["pending_after_forward_recovery_failure"] == {
        step.name: pending_after_forward_recovery_failure(definition, step.name) for step in forward
    }


def test_a_first_step_pivots_refusal_ends_the_saga_failed(raw_definition):
    # Given a choreographed saga whose first step is its pivot, every later step retriable
    for index, step in enumerate(raw_definition["steps"]):
        del step["compensation"]
        step["pivot" if index == 0 else "retriable"] = True
    definition = parse_definition(raw_definition)
    first = definition.steps[0].name
    # Then its refusal ends the saga FAILED (nothing to undo), as the state machine's RecordFailed does
    assert choreography.ends_failed(definition) == [f"{first}.Failed"]
    assert choreography.compensation_after(definition, f"{first}.Failed") is None


def test_an_unknown_pattern_is_refused(raw_definition):
    raw_definition["pattern"] = "chaos"
    with pytest.raises(ValueError, match=r"field 'pattern'"):
        parse_definition(raw_definition, "order.saga.yaml")


def test_each_command_reacts_to_the_events_the_definition_implies():
    definition = load_definition(CHOREOGRAPHED_FILE)
    steps = [step.name for step in definition.steps]
    reserve, payment, shipment, confirmation = steps
    routes = {reaction.command: set(reaction.on) for reaction in choreography.reactions(definition)}
    # Forward: each action reacts to the step before it succeeding
    assert routes["ReserveItems"] == {"Saga.Started"}
    assert routes["ProcessPayment"] == {f"{reserve}.Succeeded"}
    assert routes["CreateShipment"] == {f"{payment}.Succeeded"}
    assert routes["SendOrderConfirmation"] == {f"{shipment}.Succeeded"}
    # Backward: a failure undoes the step before; a timeout (on_timeout: compensate) the step itself; a compensation
    # the compensatable step before it
    assert routes["ReleaseReservation"] == {f"{payment}.Failed", f"{reserve}.TimedOut", f"{payment}.Compensated"}
    assert routes["RefundPayment"] == {f"{shipment}.Failed", f"{payment}.TimedOut", f"{shipment}.Compensated"}
    assert routes["CancelShipment"] == {f"{confirmation}.Failed", f"{shipment}.TimedOut", f"{confirmation}.Compensated"}
    assert routes["SendCancellationNotice"] == {f"{confirmation}.TimedOut"}
    # The saga ends FAILED where nothing is left to undo, COMPLETED on the last step's success
    assert set(choreography.ends_failed(definition)) == {f"{reserve}.Failed", f"{reserve}.Compensated"}
    assert choreography.completes_on(definition) == f"{confirmation}.Succeeded"


def test_a_step_that_assumes_its_timeout_did_nothing_is_not_compensated_for_it(raw_definition):
    raw_definition["steps"][0]["on_timeout"] = "assume_not_applied"
    definition = parse_definition(raw_definition)
    assert "reserve_inventory.TimedOut" in choreography.ends_failed(definition)
    release = next(r for r in choreography.reactions(definition) if r.command == "ReleaseReservation")
    assert "reserve_inventory.TimedOut" not in release.on


def test_the_committed_event_schemas_describe_every_event_and_refuse_a_wrong_one():
    import jsonschema

    schemas = json.loads(CHOREOGRAPHED_FILE.with_name("order_fulfillment_choreographed.events.json").read_text())
    definition = load_definition(CHOREOGRAPHED_FILE)
    assert set(schemas["detail_types"]) == set(choreography.published_events(definition))
    schema = schemas["detail_types"]["process_payment.Failed"]
    good = SagaEventDetail(
        saga_id="o-1",
        saga_type=definition.name,
        step="process_payment",
        kind="action",
        outcome="Failed",
        idempotency_key="o-1#process_payment#action",
        input={"order_id": "o-1"},
        error="Payment.CardDeclined",
        cause="declined",
    )
    jsonschema.validate(json.loads(good.model_dump_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(good.model_dump_json()), "step": "ship"}, schema)


def test_an_event_over_eventbridges_size_is_refused_before_it_is_sent():
    detail = SagaEventDetail(
        saga_id="o-1",
        saga_type="OrderFulfillmentChoreographed",
        step="reserve_inventory",
        kind="action",
        outcome="Succeeded",
        idempotency_key="o-1#reserve_inventory#action",
        input={"blob": "x" * EVENT_SIZE_LIMIT_BYTES},
    )
    with pytest.raises(EventTooLarge, match="over"):
        detail.entry("bus")
    with pytest.raises(ValueError, match="surprise"):
        SagaEventDetail.model_validate({**json.loads(detail.model_dump_json()), "surprise": 1})


def test_schemas_are_generated_for_choreographed_sagas_only():
    from statemachines.__main__ import generated_files

    suffixes = {path.name.removeprefix(SAGA_FILE.name.split(".")[0]) for path in generated_files(SAGA_FILE)}
    assert suffixes == {".asl.json", ".mmd"}
    assert {Path(path).suffixes[-2:] == [".events", ".json"] for path in generated_files(CHOREOGRAPHED_FILE)} == {
        True,
        False,
    }


def test_readme_shows_the_current_choreography_diagram():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    diagram = CHOREOGRAPHED_FILE.with_name("order_fulfillment_choreographed.mmd").read_text(encoding="utf-8")
    assert f"```mermaid\n{diagram}```" in readme, (
        "README diagram is stale: paste statemachines/sagas/order_fulfillment_choreographed.mmd"
    )
