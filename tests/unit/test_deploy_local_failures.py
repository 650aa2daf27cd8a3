"""`make deploy-local` fails loudly: a failing CDK CLI ends the run with a non-zero exit and says where and why.

The successful path is tests/e2e/test_deploy_local.py; here the CLI is a fake that fails, so no deploy happens.
"""

from __future__ import annotations

import io
import json
import stat

import pytest

from saga_testkit import deploy_local

pytestmark = pytest.mark.unit


@pytest.fixture
def failing_cdk_cli(tmp_path, monkeypatch):
    """A stand-in for node_modules/.bin/cdk that prints an error and exits 3."""
    cli = tmp_path / "cdk"
    cli.write_text("#!/bin/sh\necho 'Unable to resolve AWS account to use' >&2\nexit 3\n")
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(deploy_local, "CDK_CLI", cli)
    return cli


def test_a_failing_cli_command_fails_the_run_naming_the_phase_and_the_output(failing_cdk_cli, tmp_path):
    # Given a CDK CLI that fails / When deploy-local runs
    report_file = tmp_path / "report.json"
    exit_code = deploy_local.main(["--report", str(report_file)])
    # Then it exits non-zero, stops at the first CLI phase, and the report says what failed with its output
    assert exit_code == 1
    report = json.loads(report_file.read_text())
    assert report["ok"] is False
    assert [(phase["name"], phase["ok"]) for phase in report["phases"]] == [
        ("start local AWS endpoint", True),
        ("cdk bootstrap", False),
    ]
    assert "`cdk bootstrap aws://123456789012/us-east-1` exited 3" in report["error"]
    assert "Unable to resolve AWS account to use" in report["error"]


def test_an_unexpected_error_in_a_phase_is_reported_with_the_phase_name():
    # Given a run / When a phase raises something other than a deploy-local check
    runner = deploy_local.DeployLocal("DEBUG", deploy_local.Console(file=io.StringIO()))
    with (
        pytest.raises(deploy_local.DeployLocalError, match="sagas: KeyError: 'SagaTableName'"),
        runner.phase("sagas"),
    ):
        raise KeyError("SagaTableName")
    # Then the phase is recorded as failed, with its time
    (phase,) = runner.report.phases
    assert (phase.name, phase.ok) == ("sagas", False)
    assert phase.seconds >= 0
    assert runner.report.ok is False
