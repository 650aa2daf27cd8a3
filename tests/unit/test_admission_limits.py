"""A saga definition's `admission:` block: what the API admits of the saga, validated at synth like the rest, with
defaults derived from the capacity model (the Step Functions quotas) and the participants' event source."""

from __future__ import annotations

import pytest

from bench import quotas
from infra import constants
from statemachines import SagaDefinitionError, parse_definition
from statemachines import admission as admission_defaults

pytestmark = pytest.mark.unit


def saga(steps: int, **extra) -> dict:
    return {
        "name": "Alpha",
        "description": "a saga for a test",
        "steps": [
            {
                "name": f"step_{number}",
                "service": "BillingService",
                "action": f"Do{number}",
                "compensation": f"Undo{number}",
                "sla": {"timeout_seconds": 60, "heartbeat_seconds": 20},
            }
            for number in range(steps)
        ],
        **extra,
    }


def test_the_defaults_are_what_one_account_sustains_of_the_saga_and_one_batch_of_backlog():
    # A four-step saga in the smaller region class: StartExecution 150/s, SendTask* 300/s over 4 answers (75),
    # transitions 800/s over 5 (160): the SendTask* bucket binds
    limits = parse_definition(saga(4)).admission_limits
    assert limits.starts_per_second == 75
    assert limits.burst == 75  # one second's worth
    assert limits.max_queue_backlog == constants.BATCH_SIZE
    # A one-step saga: StartExecution (150/s) binds before SendTask* (300/s) and transitions (400/s)
    assert parse_definition(saga(1)).admission_limits.starts_per_second == 150
    # Seven steps: 300 / 7, rounded down to the cent
    assert parse_definition(saga(7)).admission_limits.starts_per_second == 42.85


def test_the_quotas_behind_the_defaults_are_the_capacity_models():
    (other,) = [region for region in quotas.REGION_CLASSES if region.name == "other regions"]
    refill = {quota.name: quota.refill_per_s for quota in other.quotas}
    assert refill[quotas.START_EXECUTION] == admission_defaults.START_EXECUTION_PER_SECOND
    assert refill[quotas.SEND_TASK] == admission_defaults.SEND_TASK_PER_SECOND
    assert refill[quotas.STATE_TRANSITIONS] == admission_defaults.STATE_TRANSITIONS_PER_SECOND


def test_a_definition_sets_its_own_limits_and_the_rest_keep_their_defaults():
    limits = parse_definition(saga(4, admission={"starts_per_second": 2.5, "max_queue_backlog": 4})).admission_limits
    assert (limits.starts_per_second, limits.burst, limits.max_queue_backlog) == (2.5, 3, 4)


@pytest.mark.parametrize(
    ("admission", "field"),
    [
        ({"starts_per_second": 0}, "admission.starts_per_second"),
        ({"starts_per_second": -1}, "admission.starts_per_second"),
        ({"starts_per_second": 20_000}, "admission.starts_per_second"),
        ({"burst": 0}, "admission.burst"),
        ({"max_queue_backlog": 0}, "admission.max_queue_backlog"),
        ({"max_queue_backlog": "many"}, "admission.max_queue_backlog"),
        ({"max_in_flight": 3}, "admission.max_in_flight"),
    ],
)
def test_a_bad_admission_block_is_refused_naming_the_file_and_field(admission, field):
    with pytest.raises(SagaDefinitionError, match=rf"alpha\.saga\.yaml: field '{field}'"):
        parse_definition(saga(2, admission=admission), source="alpha.saga.yaml")
