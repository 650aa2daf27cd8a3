"""`make new-saga`: what it refuses (nothing written), what it writes, and that what it writes is lint-clean code whose
services record each effect once in their own tables, refuse a late action and call only the granted table actions.

Each test scaffolds into a project of its own (the project's saga files copied into a temporary folder). That the
scaffolded saga runs end to end, its fault matrix included, is tests/e2e/test_add_your_own_saga.py.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.model import OperationModel
from moto import mock_aws

from infra import constants
from participant_toolkit.command import SagaCommand
from participant_toolkit.errors import PermanentFailure
from saga_scaffold.__main__ import main
from saga_scaffold.scaffold import FILES, MAX_NAME_LENGTH, SagaNames, render
from statemachines.__main__ import generated_files
from statemachines.checks import load_sagas
from statemachines.definition import DEFINITIONS_DIR, snake_case
from tests.unit.tables import create_service_table

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NAME = "GymBooking"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the repository's saga files, and participant packages of none but theirs."""
    sagas = tmp_path / "statemachines" / "sagas"
    sagas.mkdir(parents=True)
    for path in DEFINITIONS_DIR.glob("*.saga.yaml"):
        shutil.copy(path, sagas / path.name)
    (tmp_path / "lambdas" / "services").mkdir(parents=True)
    return tmp_path


def tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def scaffold(project: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([name, "--root", str(project)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(
    "name",
    ["gym_booking", "gymBooking", "Gym-Booking", "Gym Booking", "HTTPCheck", "G", "Gym_Booking", "Ünicode", "2Fast"],
)
def test_a_name_that_is_not_pascal_case_is_refused_and_nothing_is_written(project, capsys, name):
    before = tree(project)
    # When a saga is scaffolded under a name that is not PascalCase
    code, output = scaffold(project, name, capsys)
    # Then it is refused, saying what a PascalCase name is, and nothing was written
    assert code == 2
    assert f"{name!r} is not a PascalCase name" in output
    assert "nothing written" in output
    assert tree(project) == before


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("OrderFulfillment", "saga OrderFulfillment already exists: statemachines/sagas/order_fulfillment.saga.yaml"),
        ("Orders", "route /orders is already the route of saga OrderFulfillment"),
        ("Import", "is a Python keyword"),
        ("Ab" * (MAX_NAME_LENGTH // 2 + 1), f"at most {MAX_NAME_LENGTH}"),
    ],
)
def test_a_saga_that_exists_or_would_clash_is_refused_and_nothing_is_written(project, capsys, name, reason):
    before = tree(project)
    code, output = scaffold(project, name, capsys)
    assert (code, reason in output) == (2, True), output
    assert tree(project) == before


def test_a_service_that_exists_already_is_refused(project, capsys):
    # Given a package of one of the services the saga would get, and a saga that uses another of them
    (project / "lambdas" / "services" / "gym_booking_billing").mkdir()
    (project / "statemachines" / "sagas" / "loyalty.saga.yaml").write_text(
        "name: Loyalty\ndescription: points\nsteps:\n  - name: notify\n    service: GymBookingNotificationService\n"
        "    action: Notify\n    retriable: true\n    sla: {timeout_seconds: 60, heartbeat_seconds: 20}\n"
    )
    before = tree(project)
    # When the saga is scaffolded / Then both services are named, and nothing was written
    code, output = scaffold(project, NAME, capsys)
    assert code == 2
    assert "service GymBookingBillingService already exists: lambdas/services/gym_booking_billing" in output
    assert "service GymBookingNotificationService already serves saga Loyalty" in output
    assert tree(project) == before


def test_files_of_a_saga_of_that_file_name_are_refused(project, capsys):
    (project / "tests" / "sagas" / "gym_booking").mkdir(parents=True)
    before = tree(project)
    code, output = scaffold(project, NAME, capsys)
    assert (code, "tests/sagas/gym_booking already exists" in output) == (2, True)
    assert tree(project) == before


def test_no_name_is_refused_with_the_command_to_type(project, capsys):
    code, output = scaffold(project, "", capsys)
    assert (code, "make new-saga NAME=<PascalCaseName>" in output) == (2, True)


def test_a_saga_is_written_whole_and_passes_every_check_synth_runs(project, capsys):
    before = tree(project)
    # When a saga is scaffolded
    code, output = scaffold(project, NAME, capsys)
    assert code == 0, output
    # Then exactly its files are new, and no file of the project changed
    after = tree(project)
    assert {path: text for path, text in after.items() if path in before} == before
    new = set(after) - set(before)
    assert new == {render(target, SagaNames(NAME).values()) for target in FILES.values()} | {
        "statemachines/sagas/gym_booking.asl.json",
        "statemachines/sagas/gym_booking.mmd",
    }
    assert len(new) == 23
    # And its definition passes the checks across files and against its code, as synth runs them
    saga_file = project / "statemachines" / "sagas" / "gym_booking.saga.yaml"
    (definition,) = load_sagas([saga_file], code_root=project / "lambdas")
    load_sagas(sorted((project / "statemachines" / "sagas").glob("*.saga.yaml")), code_root=None)
    assert (definition.name, definition.route_path, definition.id_field) == (NAME, "gym-booking", "gym_booking_id")
    # And a realistic shape: two compensatable steps, then a retriable one, each owned by a new service of its own
    assert [(step.service, step.compensation is not None, step.retriable) for step in definition.steps] == [
        ("GymBookingReservationService", True, False),
        ("GymBookingBillingService", True, False),
        ("GymBookingNotificationService", False, True),
    ]
    assert all(step.has_retry and step.sla.heartbeat_seconds < step.sla.timeout_seconds for step in definition.steps)
    assert all(step.permanent_errors for step in definition.compensatable_steps)
    # And its ASL and diagram are the ones `make asl` generates
    for path, text in generated_files(saga_file).items():
        assert path.read_text(encoding="utf-8") == text
    assert "wrote statemachines/sagas/gym_booking.saga.yaml" in output
    assert "pytest tests/e2e/test_fault_matrix.py -k GymBooking" in output


def test_scaffolding_twice_refuses_the_second_time(project, capsys):
    assert scaffold(project, NAME, capsys)[0] == 0
    before = tree(project)
    code, output = scaffold(project, NAME, capsys)
    assert (code, "saga GymBooking already exists" in output) == (2, True)
    assert tree(project) == before


@pytest.mark.parametrize("name", ["Ab", "Ab" * (MAX_NAME_LENGTH // 2), "InternationalMoneyTransferSettlement"])
def test_the_scaffolded_code_is_lint_clean_whatever_the_name_s_length(project, capsys, name):
    # Given the saga of the shortest, the longest and a long but realistic name, scaffolded
    assert scaffold(project, name, capsys)[0] == 0
    # When the project's linter and formatter read its files, Then they find nothing to change (make lint stays clean)
    config = ["--config", str(REPO / "pyproject.toml")]
    for command in (["check", *config, "."], ["format", "--check", *config, "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- the scaffolded services, on moto ---------------------------------------------------------------------------------

TRANSACTION_PARTS = {"Put": "PutItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem"}


def _import_package(folder: Path, name: str) -> Any:
    """Import a scaffolded service package under `name` (its modules import each other relatively)."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def services(project, capsys, aws_env) -> Any:
    """The scaffolded saga's three services, each on its own moto table, and the table actions they call."""
    assert scaffold(project, NAME, capsys)[0] == 0
    packages = {}
    for role in ("reservation", "billing", "notification"):
        name = f"scaffolded_{role}"
        _import_package(project / "lambdas" / "services" / f"gym_booking_{role}", name)
        packages[role] = {
            module: importlib.import_module(f"{name}.{module}") for module in ("models", "repository", "service")
        }
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        calls: list[str] = []

        def record(params: dict[str, Any], model: OperationModel, **_: Any) -> None:
            if model.name == "TransactWriteItems":
                calls.extend(TRANSACTION_PARTS[kind] for item in params["TransactItems"] for kind in item)
            else:
                calls.append(model.name)

        dynamodb.meta.client.meta.events.register("provide-client-params.dynamodb", record)
        repositories = {
            role: modules["repository"].__dict__[f"{role.capitalize()}Repository"](
                create_service_table(role), dynamodb=dynamodb
            )
            for role, modules in packages.items()
        }
        built = {
            role: modules["service"].__dict__[f"{role.capitalize()}Service"](repositories[role])
            for role, modules in packages.items()
        }
        yield {"service": built, "repository": repositories, "calls": calls}
    for name in [module for module in sys.modules if module.startswith("scaffolded_")]:
        del sys.modules[name]


SAGA_INPUT = {
    "gym_booking_id": "gb-1",
    "customer": {"customer_id": "c-1", "email": "ana@example.com"},
    "resource_id": "spin-class",
    "units": 2,
    "payment": {"account_token": "tok_ok"},
}


def command(name: str, step: str, *, saga_id: str = "saga-1", kind: str = "action", **fields: Any) -> SagaCommand:
    return SagaCommand(
        saga_id=saga_id,
        saga_type=NAME,
        step=step,
        kind=kind,
        command=name,
        idempotency_key=f"{saga_id}#{step}#{kind}",
        task_token="token",
        heartbeat_seconds=20,
        input=fields.pop("saga_input", SAGA_INPUT),
        **fields,
    )


def test_the_hold_takes_capacity_once_releases_it_once_and_a_tombstone_refuses_a_late_hold(services):
    reservations, repository = services["service"]["reservation"], services["repository"]["reservation"]
    repository.add_capacity("spin-class", 5, 1_500)
    # When the hold is delivered twice, Then the capacity is taken once, at the service's price
    first = reservations.hold_capacity(command("HoldCapacity", "hold_capacity"))
    assert reservations.hold_capacity(command("HoldCapacity", "hold_capacity")) == first
    assert (first["units"], first["amount_cents"]) == (2, 3_000)
    assert repository.get_capacity("spin-class").available == 3
    # And released twice, it is given back once
    release = command("ReleaseCapacity", "hold_capacity", kind="compensation")
    reservations.release_capacity(release)
    assert reservations.release_capacity(release)["status"] == "RELEASED"
    assert repository.get_capacity("spin-class").available == 5
    # And a release with nothing held leaves a tombstone, so a late hold is refused and takes nothing
    reservations.release_capacity(command("ReleaseCapacity", "hold_capacity", saga_id="late", kind="compensation"))
    with pytest.raises(PermanentFailure) as refused:
        reservations.hold_capacity(command("HoldCapacity", "hold_capacity", saga_id="late"))
    assert refused.value.error == "GymBookingReservation.HoldReleased"
    assert repository.get_capacity("spin-class").available == 5


@pytest.mark.parametrize(
    ("resource", "units", "error"),
    [
        ("spin-class", 2, "GymBookingReservation.CapacityExhausted"),
        ("yoga", 1, "GymBookingReservation.UnknownResource"),
    ],
)
def test_a_hold_the_capacity_cannot_serve_is_refused_for_good(services, resource, units, error):
    services["repository"]["reservation"].add_capacity("spin-class", 1, 1_500)
    saga_input = {**SAGA_INPUT, "resource_id": resource, "units": units}
    with pytest.raises(PermanentFailure) as refused:
        services["service"]["reservation"].hold_capacity(
            command("HoldCapacity", "hold_capacity", saga_input=saga_input)
        )
    assert refused.value.error == error
    assert services["repository"]["reservation"].get_hold("saga-1") is None
    assert services["repository"]["reservation"].get_capacity("spin-class").available == 1


def test_the_charge_is_the_hold_s_price_taken_once_refunded_once_and_a_tombstone_refuses_a_late_charge(services):
    billing, repository = services["service"]["billing"], services["repository"]["billing"]
    held = {"hold_capacity": {"amount_cents": 3_000}}
    charge = command("ChargeCustomer", "charge_customer", results=held)
    # When the charge is delivered twice, Then the customer is charged the hold's price once
    assert billing.charge_customer(charge) == billing.charge_customer(charge)
    assert repository.get_ledger("saga-1").net_cents == 3_000
    # And refunded twice, once
    refund = command("RefundCustomer", "charge_customer", kind="compensation", results=held)
    billing.refund_customer(refund)
    billing.refund_customer(refund)
    assert repository.get_ledger("saga-1").net_cents == 0
    # And a refund of nothing closes the ledger to a late charge
    billing.refund_customer(command("RefundCustomer", "charge_customer", saga_id="late", kind="compensation"))
    with pytest.raises(PermanentFailure) as refused:
        billing.charge_customer(command("ChargeCustomer", "charge_customer", saga_id="late", results=held))
    assert refused.value.error == "GymBookingBilling.ChargeRefunded"
    assert repository.get_ledger("late").net_cents == 0


def test_a_declined_account_is_charged_nothing(services):
    saga_input = {**SAGA_INPUT, "payment": {"account_token": "tok_declined"}}
    charge = command(
        "ChargeCustomer", "charge_customer", saga_input=saga_input, results={"hold_capacity": {"amount_cents": 10}}
    )
    with pytest.raises(PermanentFailure) as refused:
        services["service"]["billing"].charge_customer(charge)
    assert refused.value.error == "GymBookingBilling.PaymentDeclined"
    assert services["repository"]["billing"].get_ledger("saga-1") is None


def test_the_confirmation_is_queued_once_however_often_it_is_delivered(services):
    notifications, repository = services["service"]["notification"], services["repository"]["notification"]
    send = command("SendConfirmation", "send_confirmation", retriable=True)
    first = notifications.send_confirmation(send)
    assert notifications.send_confirmation(send) == first
    assert [confirmation.recipient for confirmation in repository.list_confirmations()] == ["ana@example.com"]


def test_the_scaffolded_services_call_only_the_granted_table_actions(services):
    # Given capacity on offer (an operator's setup, not a participant's call)
    services["repository"]["reservation"].add_capacity("spin-class", 5, 1_500)
    services["calls"].clear()
    # When each service runs its action twice, its compensation twice, a tombstone and a refused late action
    held = {"hold_capacity": {"amount_cents": 3_000}}
    for role, action, compensation, step in (
        ("reservation", "HoldCapacity", "ReleaseCapacity", "hold_capacity"),
        ("billing", "ChargeCustomer", "RefundCustomer", "charge_customer"),
    ):
        service = services["service"][role]
        act, undo = (getattr(service, snake_case(name)) for name in (action, compensation))
        for _ in range(2):
            act(command(action, step, results=held))
        for _ in range(2):
            undo(command(compensation, step, kind="compensation", results=held))
        undo(command(compensation, step, saga_id="late", kind="compensation"))
        with pytest.raises(PermanentFailure):
            act(command(action, step, saga_id="late", results=held))
    for _ in range(2):
        services["service"]["notification"].send_confirmation(command("SendConfirmation", "send_confirmation"))
    # Then the DynamoDB actions they call are within what the stack grants a participant (AccessDenied on AWS else)
    assert {f"dynamodb:{name}" for name in services["calls"]} <= set(constants.DOMAIN_TABLE_ACTIONS)
    assert "GetItem" in services["calls"]
