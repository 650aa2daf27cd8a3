"""The operator CLI's command line: what it refuses before touching any saga."""

from __future__ import annotations

import io

import pytest
from moto import mock_aws
from rich.console import Console

from saga_ops.cli import build_parser, main
from saga_ops.operations import OperatorError, compensations_left, require_reason
from statemachines import load_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE

pytestmark = pytest.mark.unit


@pytest.fixture
def definition():
    return load_definition(SAGA_FILE)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["resume", "s-1", "--retry"], "--reason"),
        (["resume", "s-1", "--reason", "why"], "--retry"),
        (["resume", "s-1", "--retry", "--resolve", "--reason", "why"], "--resolve"),
        (["list", "--status", "DONE"], "--status"),
    ],
)
def test_a_bad_command_line_is_refused_naming_the_option(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_a_blank_reason_is_refused():
    with pytest.raises(OperatorError, match="--reason"):
        require_reason("   ")


def test_resume_compensates_from_the_failed_step_back_to_the_first(definition):
    record = {"failed_step": "create_shipment", "current_step": "create_shipment"}
    assert [step.name for step in compensations_left(definition, record)] == [
        "create_shipment",
        "process_payment",
        "reserve_inventory",
    ]


def test_resume_of_a_saga_stopped_before_any_step_compensates_every_step(definition):
    # An execution-level failure with no step recorded: nothing is known to be untouched
    names = [step.name for step in compensations_left(definition, {"failed_step": "", "current_step": None})]
    assert names == [step.name for step in reversed(definition.compensatable_steps)]


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({"AWS_DEFAULT_REGION": None, "AWS_REGION": None, "AWS_PROFILE": None}, "no AWS region"),
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "stack SagaStack not found in us-east-1"),
    ],
    ids=["no region", "no stack"],
)
def test_without_a_stack_to_read_the_cli_says_why_and_exits_2(environment, said, monkeypatch, tmp_path):
    # Given credentials for an account (moto's) that has no saga stack, and maybe no region
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    console = Console(file=io.StringIO(), width=200)
    # When an operator lists sagas
    with mock_aws():
        exit_code = main(["list"], console=console)
    # Then the CLI names what is missing, without a traceback
    assert exit_code == 2
    assert said in console.file.getvalue()
