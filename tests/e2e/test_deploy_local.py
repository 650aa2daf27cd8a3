"""`make deploy-local` end to end: the real CDK CLI against a local moto endpoint, then sagas, then destroy.

It runs as its own process (as `make deploy-local` does): the moto server, its workarounds and the environment
it sets stay out of this worker, where the package-scoped local cloud of the other e2e tests may be running.
"""

from __future__ import annotations

import json

import pytest

from infra import constants
from statemachines import load_definition
from tests.e2e.terminal import start_in_terminal
from tests.sagas.order_fulfillment.kit import SAGA_FILE

# In no xdist group: it uses no cloud of this worker, and runs on whichever worker is free first, niced.
pytestmark = [pytest.mark.e2e]

UPDATE_LOG_LEVEL = "WARNING"  # differs from the default, so the update has something to change
DEPLOY_LOCAL_TIMEOUT_SECONDS = 300  # about 40 s alone on 2 cores
NICENESS = 10  # added to this process's: the deploy-local run yields the CPU to timing-sensitive tests


def test_cdk_cli_deploys_updates_runs_sagas_and_destroys_on_a_local_endpoint(tmp_path):
    # Given the pinned CDK CLI (`make install`) and a definition of the saga it deploys
    assert (constants.REPO_ROOT / "node_modules" / ".bin" / "cdk").exists(), "run `make install` first"
    definition = load_definition(SAGA_FILE)
    report_file = tmp_path / "report.json"
    # When the whole deploy-local path runs, updating the participants' log level
    # (in a terminal, as a user runs it: the CLI's stdin is a terminal too, and progress displays are drawn)
    run = start_in_terminal(
        "-m",
        "saga_testkit.deploy_local",
        "--update-log-level",
        UPDATE_LOG_LEVEL,
        "--report",
        str(report_file),
        # Lower priority for it and its CLI children: the scaled clocks of the e2e tests on the other worker
        # must not be starved by two CDK synths (its own sagas run on a slow clock and do not mind).
        niceness=NICENESS,
    )
    exit_code = run.wait(DEPLOY_LOCAL_TIMEOUT_SECONDS)
    # Then it ends and succeeds, every phase in order
    assert exit_code is not None, f"deploy-local hung in a terminal; it last showed:\n{run.output[-3000:]}"
    assert exit_code == 0, run.output[-6000:]
    report = json.loads(report_file.read_text())
    assert [phase["name"] for phase in report["phases"]] == [
        "start local AWS endpoint",
        "cdk bootstrap",
        "cdk deploy",
        f"cdk deploy -c {constants.LOG_LEVEL_CONTEXT}={UPDATE_LOG_LEVEL}",
        "sagas on the deployed stack",
        "cdk destroy",
    ]
    assert all(phase["ok"] for phase in report["phases"])
    assert report["endpoint"].startswith("http://127.0.0.1:")
    # And the deploy created the stack; the update changed every participant's log level and nothing else failed
    assert report["stack_status_after_deploy"] == "CREATE_COMPLETE"
    assert report["stack_status_after_update"] == "UPDATE_COMPLETE"
    functions = {command for step in definition.steps for command in step.commands}
    assert len(report["log_levels_after_deploy"]) == len(functions)
    assert set(report["log_levels_after_deploy"].values()) == {constants.LOG_LEVEL}
    assert report["log_levels_after_update"].keys() == report["log_levels_after_deploy"].keys()
    assert set(report["log_levels_after_update"].values()) == {UPDATE_LOG_LEVEL}
    # And on the deployed stack the healthy saga completed, the faulty one compensated its earlier steps in
    # reverse, and stock and money reconcile
    healthy, faulty = report["sagas"]
    # (both started by a signed POST /orders to the deployed API, their status read back through it)
    assert [saga["start_answer"] for saga in report["sagas"]] == [202, 202]
    assert [saga["status_from_api"] for saga in report["sagas"]] == [saga["status"] for saga in report["sagas"]]
    assert (healthy["status"], healthy["compensations_succeeded"]) == ("COMPLETED", [])
    assert healthy["actions_succeeded"] == [step.name for step in definition.steps]
    failed_at = [step.name for step in definition.steps].index(faulty["fault"].split(":")[0])
    assert faulty["status"] == "FAILED"
    assert faulty["compensations_succeeded"] == [step.name for step in reversed(definition.steps[:failed_at])]
    assert report["invariant_problems"] == []
    # And the stack is gone after `cdk destroy`, its retained tables left behind as on AWS
    assert report["stack_exists_after_destroy"] is False
    assert report["retained_tables"], "tables with RemovalPolicy.RETAIN should outlive the stack"
