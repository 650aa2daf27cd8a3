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
from statemachines.definition import SQS_MAX_DELAY_SECONDS
from tests.sagas.order_fulfillment.kit import SAGA_FILE

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


def test_forward_recovery_is_refused_for_choreography(raw_definition):
    raw_definition["steps"][3]["retriable"] = True
    del raw_definition["steps"][3]["compensation"]
    with pytest.raises(ValueError, match=r"step 'send_confirmation': field 'retriable'.*choreography"):
        parse_definition(raw_definition, "order.saga.yaml")


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
