"""What a saga definition gets checked for before anything deploys: across files, against the participant code and the
input models, and the retry rules (optional retry with defaults, no contradictory settings).
`python -m statemachines check PATH`."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from statemachines import SagaDefinitionError, compile_saga, parse_definition
from statemachines.checks import load_sagas
from statemachines.compiler import DELIVERY_ERRORS
from statemachines.definition import (
    DEFAULT_BACKOFF_RATE,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_DELAY_SECONDS,
    saga_files,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def saga(name: str, *steps: dict) -> dict:
    return {"name": name, "description": f"{name} for a test", "steps": list(steps)}


def step(name: str, service: str, action: str, compensation: str | None = None, **extra) -> dict:
    return {
        "name": name,
        "service": service,
        "action": action,
        **({"compensation": compensation} if compensation else {"retriable": True}),
        "sla": {"timeout_seconds": 60, "heartbeat_seconds": 20},
        **extra,
    }


INPUT_MODULE = """
from pydantic import BaseModel


class Input(BaseModel):
    invoice_id: str
    note: str | None = None
    copies: int = 1
"""


@pytest.fixture
def code_root(tmp_path):
    """A lambdas/ folder with a participant of BillingService (charge, refund) and one of MailService (send), and the
    input models of the sagas Alpha and Beta."""
    root = tmp_path / "lambdas"
    services = root / "services"
    (services / "billing").mkdir(parents=True)
    (services / "billing" / "handlers.py").write_text(
        "from toolkit import participant\ncharge = participant.handler('Charge')\n\ndef refund(event, context): ...\n"
    )
    (services / "mail").mkdir()
    (services / "mail" / "handlers.py").write_text("send: object = None\n")
    (root / "sagas").mkdir()
    for saga_module in ("alpha", "beta"):
        (root / "sagas" / f"{saga_module}.py").write_text(INPUT_MODULE)
    return root


def write(tmp_path: Path, file_name: str, definition: dict) -> Path:
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump(definition))
    return path


def test_sagas_whose_participants_define_every_handler_load(tmp_path, code_root):
    # Given two sagas whose steps' handlers all exist (one service serving both)
    first = write(tmp_path, "a.saga.yaml", saga("Alpha", step("charge", "BillingService", "Charge", "Refund")))
    second = write(tmp_path, "b.saga.yaml", saga("Beta", step("mail", "MailService", "Send")))
    # When / Then
    assert [d.name for d in load_sagas([first, second], code_root=code_root)] == ["Alpha", "Beta"]


def test_the_same_saga_name_in_two_files_names_both_files(tmp_path, code_root):
    # Given two files defining the saga Alpha
    first = write(tmp_path, "a.saga.yaml", saga("Alpha", step("charge", "BillingService", "Charge", "Refund")))
    second = write(tmp_path, "b.saga.yaml", saga("Alpha", step("mail", "MailService", "Send")))
    # When / Then
    with pytest.raises(SagaDefinitionError) as error:
        load_sagas([first, second], code_root=code_root)
    assert str(error.value) == f"{second}: field 'name': saga 'Alpha' is already defined in {first}"


def test_a_step_whose_service_has_no_participant_code_is_refused(tmp_path, code_root):
    # Given a step of ShippingService, which has no lambdas/services/shipping/handlers.py
    path = write(tmp_path, "a.saga.yaml", saga("Alpha", step("ship", "ShippingService", "Ship", "Unship")))
    # When / Then: the file, the step and the field are named
    with pytest.raises(SagaDefinitionError, match=r"a\.saga\.yaml: step 'ship': field 'service': no participant code"):
        load_sagas([path], code_root=code_root)


def test_a_command_without_a_handler_names_the_missing_function(tmp_path, code_root):
    # Given a compensation BillingService's module does not define
    path = write(tmp_path, "a.saga.yaml", saga("Alpha", step("charge", "BillingService", "Charge", "Void")))
    # When / Then
    with pytest.raises(SagaDefinitionError) as error:
        load_sagas([path], code_root=code_root)
    assert "step 'charge': field 'compensation': lambdas/services/billing/handlers.py defines no handler 'void'" in str(
        error.value
    )


def test_one_command_as_an_action_and_as_a_compensation_is_refused(tmp_path, code_root):
    # Given BillingService's Refund as a compensation in one saga and as an action in another
    first = write(tmp_path, "a.saga.yaml", saga("Alpha", step("charge", "BillingService", "Charge", "Refund")))
    second = write(tmp_path, "b.saga.yaml", saga("Beta", step("refund", "BillingService", "Refund")))
    # When / Then
    with pytest.raises(SagaDefinitionError, match=r"b\.saga\.yaml: step 'refund': field 'action': .*compensation"):
        load_sagas([first, second], code_root=code_root)


def test_a_saga_without_an_input_model_is_refused_naming_the_file_it_looks_for(tmp_path, code_root):
    # Given a saga Gamma, with no lambdas/sagas/gamma.py
    path = write(tmp_path, "g.saga.yaml", saga("Gamma", step("mail", "MailService", "Send")))
    # When / Then
    with pytest.raises(SagaDefinitionError) as error:
        load_sagas([path], code_root=code_root)
    assert f"{path}: field 'name': no input model for saga Gamma: lambdas/sagas/gamma.py does not exist" in str(
        error.value
    )


def test_an_input_module_without_input_is_refused(tmp_path, code_root):
    no_input = "from pydantic import BaseModel\n\nclass Order(BaseModel):\n    x: int\n"
    (code_root / "sagas" / "alpha.py").write_text(no_input)
    path = write(tmp_path, "a.saga.yaml", saga("Alpha", step("mail", "MailService", "Send")))
    with pytest.raises(SagaDefinitionError, match=r"field 'name': lambdas/sagas/alpha\.py defines no `Input`"):
        load_sagas([path], code_root=code_root)


def test_the_id_field_names_a_required_string_field_of_the_input_model(tmp_path, code_root):
    # Given Alpha's id field is the model's required string field
    raw = {**saga("Alpha", step("mail", "MailService", "Send")), "api": {"id_field": "invoice_id"}}
    (definition,) = load_sagas([write(tmp_path, "a.saga.yaml", raw)], code_root=code_root)
    # Then its route is its name in kebab-case, and the id comes from that field
    assert (definition.route_path, definition.id_field) == ("alpha", "invoice_id")
    assert definition.input_module == "sagas.alpha"


@pytest.mark.parametrize(
    ("id_field", "says"),
    [
        ("order_id", "Input has no field 'order_id' (fields: invoice_id, note, copies)"),
        ("note", "Input.note must be a required string"),
        ("copies", "Input.copies must be a required string"),
    ],
)
def test_an_id_field_the_input_model_cannot_give_is_refused(tmp_path, code_root, id_field, says):
    raw = {**saga("Alpha", step("mail", "MailService", "Send")), "api": {"id_field": id_field}}
    path = write(tmp_path, "a.saga.yaml", raw)
    with pytest.raises(SagaDefinitionError) as error:
        load_sagas([path], code_root=code_root)
    assert f"{path}: field 'api.id_field': lambdas/sagas/alpha.py's {says}" in str(error.value)


def test_an_input_module_that_fails_to_load_is_named_with_its_error(tmp_path, code_root):
    (code_root / "sagas" / "alpha.py").write_text("import not_a_module_here\nInput = None\n")
    raw = {**saga("Alpha", step("mail", "MailService", "Send")), "api": {"id_field": "invoice_id"}}
    path = write(tmp_path, "a.saga.yaml", raw)
    fails = r"field 'api.id_field': .*alpha\.py fails to load: ModuleNotFoundError"
    with pytest.raises(SagaDefinitionError, match=fails):
        load_sagas([path], code_root=code_root)


def test_two_sagas_on_one_route_name_both_files(tmp_path, code_root):
    # Given Beta claiming Alpha's default route
    first = write(tmp_path, "a.saga.yaml", saga("Alpha", step("mail", "MailService", "Send")))
    raw = {**saga("Beta", step("mail", "MailService", "Send")), "api": {"path": "alpha", "id_field": "invoice_id"}}
    second = write(tmp_path, "b.saga.yaml", raw)
    with pytest.raises(SagaDefinitionError) as error:
        load_sagas([first, second], code_root=code_root)
    assert str(error.value) == (
        f"{second}: field 'api.path': route /alpha is already the route of saga 'Alpha' in {first}"
    )


@pytest.mark.parametrize(
    ("api", "field"),
    [({"path": "Orders"}, "api.path"), ({"path": "a/b", "id_field": "x"}, "api.path"), ({"path": "x"}, "api.id_field")],
    ids=["upper case", "two segments", "no id field"],
)
def test_a_malformed_api_block_is_refused_naming_the_field(api, field):
    raw = {**saga("Alpha", step("mail", "MailService", "Send")), "api": api}
    with pytest.raises(SagaDefinitionError, match=rf"alpha\.saga\.yaml: field '{field}'"):
        parse_definition(raw, source="alpha.saga.yaml")


def test_a_step_without_transient_errors_needs_no_retry_block():
    # Given a step with no `retry`
    definition = parse_definition(saga("Alpha", step("charge", "BillingService", "Charge", "Refund")))
    # When compiled
    task = compile_saga(definition)["States"]["Charge"]
    # Then only the command's delivery is retried, and its compensation retries timeouts (patiently: from its
    # heartbeat window on) and the delivery
    assert [retrier["ErrorEquals"] for retrier in task["Retry"]] == [DELIVERY_ERRORS]
    undo = compile_saga(definition)["States"]["Refund"]
    assert [retrier["ErrorEquals"] for retrier in undo["Retry"]] == [["States.Timeout"], DELIVERY_ERRORS]
    assert undo["Retry"][0]["IntervalSeconds"] == definition.steps[0].sla.heartbeat_seconds


def test_a_retry_block_with_only_errors_takes_the_documented_defaults():
    # Given a retry that names its errors only
    definition = parse_definition(
        saga("Alpha", step("charge", "BillingService", "Charge", "Refund", retry={"errors": ["Billing.Busy"]}))
    )
    # Then
    retry = definition.steps[0].retry
    assert (retry.max_attempts, retry.interval_seconds, retry.backoff_rate, retry.max_delay_seconds) == (
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_INTERVAL_SECONDS,
        DEFAULT_BACKOFF_RATE,
        DEFAULT_MAX_DELAY_SECONDS,
    )


def test_a_long_interval_raises_the_default_delay_cap_instead_of_contradicting_it():
    definition = parse_definition(
        saga(
            "Alpha",
            step("charge", "BillingService", "Charge", "Refund", retry={"errors": ["B.X"], "interval_seconds": 90}),
        )
    )
    assert definition.steps[0].retry.max_delay_seconds == 90


def test_a_retriable_step_without_retry_still_retries_timeouts():
    # Given a retriable step that lists no transient errors
    definition = parse_definition(saga("Alpha", step("mail", "MailService", "Send")))
    # When compiled / Then its lost replies are retried (it must eventually succeed), with the default attempts
    retrier = compile_saga(definition)["States"]["Send"]["Retry"][0]
    assert (retrier["ErrorEquals"], retrier["MaxAttempts"]) == (["States.Timeout"], DEFAULT_MAX_ATTEMPTS)


@pytest.mark.parametrize(
    ("retry", "field", "says"),
    [
        ({"errors": ["B.X"], "max_attempts": 0, "interval_seconds": 5}, "retry.interval_seconds", "max_attempts is 0"),
        ({"errors": ["B.X"], "max_attempts": 0, "jitter": "NONE"}, "retry.jitter", "would never apply"),
        ({"errors": []}, "retry.errors", "leave `retry` out for a step that has none"),
        ({"errors": ["B.X"], "interval_seconds": 10, "max_delay_seconds": 5}, "retry.max_delay_seconds", "at least"),
    ],
    ids=["zero attempts with an interval", "zero attempts with jitter", "no errors", "cap below the interval"],
)
def test_contradictory_retry_settings_are_refused_naming_the_field(retry, field, says):
    raw = saga("Alpha", step("charge", "BillingService", "Charge", "Refund", retry=retry))
    with pytest.raises(SagaDefinitionError) as error:
        parse_definition(raw, source="alpha.saga.yaml")
    assert f"alpha.saga.yaml: step 'charge': field '{field}': " in str(error.value)
    assert says in str(error.value)


def test_check_validates_a_file_outside_the_project_without_writing_anything(tmp_path):
    # Given a valid saga file outside statemachines/, on the project's participants, its input model in a code root
    # of its own (the project's services, and lambdas/sagas/copy_of_orders.py)
    order = yaml.safe_load(saga_files()[0].read_text())
    path = write(
        tmp_path,
        "copy.saga.yaml",
        {**copy.deepcopy(order), "name": "CopyOfOrders", "api": {"path": "order-copies", "id_field": "order_id"}},
    )
    code_root = tmp_path / "lambdas"
    (code_root / "sagas").mkdir(parents=True)
    (code_root / "services").symlink_to(REPO / "lambdas" / "services")
    (code_root / "sagas" / "copy_of_orders.py").write_text((REPO / "lambdas/sagas/order_fulfillment.py").read_text())
    before = sorted(p.name for p in tmp_path.iterdir())
    # When checked
    result = subprocess.run(
        [sys.executable, "-m", "statemachines", "check", str(path), "--code-root", str(code_root)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    # Then it says what it compiles to, and writes no generated file
    assert result.returncode == 0, result.stderr
    assert f"ok {path}: saga CopyOfOrders, {len(order['steps'])} steps" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_check_refuses_a_file_that_clashes_with_a_project_saga(tmp_path):
    # Given a copy of the order saga under its own name
    path = write(tmp_path, "clash.saga.yaml", yaml.safe_load(saga_files()[0].read_text()))
    # When checked / Then exit 2, naming the clash
    result = subprocess.run(
        [sys.executable, "-m", "statemachines", "check", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "is already defined in" in result.stderr
