"""The operator CLI as an operator runs it: another process, talking to the local runtime over HTTP with the same
code it uses against AWS; only the endpoint and the credentials differ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_runtime.cloud import FAKE_CREDENTIALS
from local_runtime.moto_server import serving_this_process

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

REPO = Path(__file__).resolve().parents[2]


def _saga_ops(endpoint_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **FAKE_CREDENTIALS, "COLUMNS": "200"}
    environment.pop("AWS_ENDPOINT_URL", None)  # the endpoint comes from the command line, as documented
    return subprocess.run(
        [sys.executable, "-m", "saga_ops", "--endpoint-url", endpoint_url, *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_in_another_process_reads_the_local_runtimes_sagas(run_saga, saga_id):
    # Given a saga that completed on the local runtime
    assert run_saga(saga_id).status == "COMPLETED"
    with serving_this_process() as endpoint:
        # When an operator shows it from another process, through the endpoint that shares the local stack
        shown = _saga_ops(endpoint.url, "show", saga_id)
        listed = _saga_ops(endpoint.url, "list", "--status", "COMPLETED", "--limit", "1000")
        missing = _saga_ops(endpoint.url, "show", f"{saga_id}-missing")
    # Then it reads the record and the execution history the local runtime wrote
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"Saga {saga_id}" in shown.stdout
    assert "COMPLETED" in shown.stdout
    assert "ExecutionSucceeded" in shown.stdout
    # And it lists the saga among the completed ones
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert saga_id in listed.stdout
    # And a saga that does not exist is an error that names it, not a traceback
    assert missing.returncode != 0
    assert f"{saga_id}-missing" in missing.stdout
    assert "Traceback" not in missing.stderr
