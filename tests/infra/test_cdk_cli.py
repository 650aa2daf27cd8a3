"""The path users take: the pinned CDK CLI (package.json) synthesizing app.py on a supported Node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import infra  # noqa: F401 - sets JSII_NODE to the supported Node
from statemachines import load_definition, saga_files

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"


def test_cdk_cli_synthesizes_the_stack(tmp_path):
    # Given the CLI that `make install` puts in node_modules (package-lock.json pins it)
    assert CDK_CLI.exists(), "node_modules/.bin/cdk is missing: run `make install` (or `make test`, which does)"
    node = Path(os.environ["JSII_NODE"])
    # cdk.json runs `python3 app.py`: this interpreter's folder (the venv) first, as `make` arranges.
    path = os.pathsep.join([str(node.parent), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {**os.environ, "PATH": path, "CDK_DISABLE_VERSION_CHECK": "1"}
    # When it synthesizes app.py as `make synth` does
    result = subprocess.run(
        [str(CDK_CLI), "synth", "--quiet", "--output", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # Then it succeeds on the supported Node, cdk-nag included, and writes the stack's template
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "SagaStack.template.json").read_text())
    machines = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    # one per orchestrated saga of statemachines/sagas/ (a choreographed one has none)
    orchestrated = [path for path in saga_files() if load_definition(path).pattern == "orchestration"]
    assert len(machines) == len(orchestrated) >= 2


def test_a_bad_saga_definition_fails_synth_naming_file_step_and_field(tmp_path):
    # Given a copy of the app whose saga definition has a heartbeat above its timeout
    import shutil

    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("app.py", "cdk.json", "infra", "statemachines", "lambdas"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    saga = copy / "statemachines" / "sagas" / "order_fulfillment.saga.yaml"
    saga.write_text(saga.read_text().replace("heartbeat_seconds: 30", "heartbeat_seconds: 300", 1))
    # When the app is synthesized / Then it exits non-zero with the file, step and field named, no traceback
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=copy, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "order_fulfillment.saga.yaml: step 'process_payment': field 'sla.heartbeat_seconds'" in result.stderr
    assert "Traceback" not in result.stderr
