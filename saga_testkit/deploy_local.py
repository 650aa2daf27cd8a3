"""`make deploy-local`: the path users take to AWS, with the real CDK CLI, against a local AWS endpoint.

A moto server starts on 127.0.0.1 in this process (local_runtime/moto_server.py). The pinned CDK CLI (node_modules,
on the Node 24 of requirements.txt) then bootstraps the account, deploys the stack (synthesizing app.py, as
`make deploy` does), deploys a change to it (the participants' log level, through the `logLevel` context
value) and checks that the update landed. Two sagas of the project's first saga then run on the deployed stack
(its kit's sample inputs; one meets a permanent failure): started by SigV4-signed POST /<route> to its API (served
locally from the deployed template, as in the local runtime), their participants fed from the deployed queues by
LocalCloud attached to the stack; the saga's invariant check must hold. Last,
`cdk destroy` removes the stack. Every phase is timed; any failure exits non-zero.

    python -m saga_testkit.deploy_local [--update-log-level DEBUG] [--report report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

import infra  # noqa: F401 - sets JSII_NODE to the supported Node before anything loads aws_cdk
from infra import constants
from local_runtime.cloud import ACCOUNT_ID, REGION, LocalCloud, provide_public_parameters, skipped_resource_types
from local_runtime.cloud import read_template as read_stack_template
from local_runtime.http_api import serving
from local_runtime.interrupt import exits_quietly_on_ctrl_c
from local_runtime.moto_server import LocalEndpoint, local_aws_endpoint
from saga_testkit.fault_matrix import INJECTED_PERMANENT_ERROR
from saga_testkit.faults import Fault
from saga_testkit.kit import project_definition
from saga_testkit.sagas import LocalSagas, named
from statemachines import SagaDefinition, Step

CDK_CLI = constants.REPO_ROOT / "node_modules" / ".bin" / "cdk"
# Local seconds per SLA second. Slower than the e2e tests' 0.04: these two sagas never wait on a timer, so the
# clock costs nothing here, and a 60 s task timeout of 15 s (heartbeat 5 s) holds on a machine loaded by synths.
TIME_SCALE = 0.25
CLI_TIMEOUT_SECONDS = 240
SAGA_TIMEOUT_SECONDS = 60


class DeployLocalError(RuntimeError):
    """A phase did not do what it must (the message says what was expected and what was found)."""


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    ok: bool = False
    detail: str = ""


@dataclass
class Report:
    endpoint: str = ""
    phases: list[Phase] = field(default_factory=list)
    stack_status_after_deploy: str = ""
    stack_status_after_update: str = ""
    log_levels_after_deploy: dict[str, str] = field(default_factory=dict)  # function name -> LOG_LEVEL
    log_levels_after_update: dict[str, str] = field(default_factory=dict)
    sagas: list[dict[str, Any]] = field(default_factory=list)
    invariant_problems: list[str] = field(default_factory=list)
    stack_exists_after_destroy: bool = True
    retained_tables: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(phase.ok for phase in self.phases)


class CdkCli:
    """The pinned CDK CLI as a subprocess, pointed at the local endpoint."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        node_bin = Path(os.environ["JSII_NODE"]).parent
        # cdk.json runs `python3 app.py`: this interpreter's folder (the venv) first, as `make` arranges.
        path = os.pathsep.join([str(node_bin), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.environment = {
            **os.environ,
            **endpoint.environment(),
            "PATH": path,
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }

    def run(self, *arguments: str, cwd: Path = constants.REPO_ROOT) -> str:
        command = [str(CDK_CLI), *arguments, "--no-notices"]
        result = subprocess.run(
            command,
            cwd=cwd,
            env=self.environment,
            stdin=subprocess.DEVNULL,  # never a prompt: in a terminal the CLI would otherwise wait for an answer
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise DeployLocalError(f"`cdk {' '.join(arguments)}` exited {result.returncode}:\n{output}")
        return result.stdout + result.stderr


class DeployLocal:
    workdir: Path  # the run's cloud assemblies: a fresh temporary folder per run, removed after it

    def __init__(self, update_log_level: str, console: Console) -> None:
        self.update_log_level = update_log_level
        self.console = console
        self.report = Report()
        self.definition = project_definition()
        # The update changes the participants' log level: their functions run the saga steps' handlers.
        self.participant_handlers = {step.handler(c) for step in self.definition.steps for c in step.commands}

    def run(self) -> Report:
        self.workdir = Path(tempfile.mkdtemp(prefix="saga-deploy-local-"))
        try:
            with ExitStack() as stack:
                stack.enter_context(skipped_resource_types())
                with self.phase("start local AWS endpoint") as phase:
                    endpoint = stack.enter_context(local_aws_endpoint(TIME_SCALE))
                    self.report.endpoint = phase.detail = endpoint.url
                cli = CdkCli(endpoint)
                self._bootstrap(cli)
                self._deploy(cli)
                updated = self._update(cli)
                self._run_sagas(updated)
                self._destroy(cli, updated)
        except DeployLocalError as error:
            self.report.error = str(error)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.report

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        phase = Phase(name)
        self.report.phases.append(phase)
        started = time.monotonic()
        with self.console.status(f"{name}..."):
            try:
                yield phase
            except DeployLocalError:
                raise
            except Exception as error:
                raise DeployLocalError(f"{name}: {type(error).__name__}: {error}") from error
            finally:
                phase.seconds = round(time.monotonic() - started, 2)
        phase.ok = True

    # -- the CLI path ------------------------------------------------------------------------------------
    def _bootstrap(self, cli: CdkCli) -> None:
        with self.phase("cdk bootstrap") as phase:
            # Outside the project folder: next to cdk.json the CLI first synthesizes the app (10 s here) only
            # to learn the environment that the aws:// argument names anyway.
            cli.run("bootstrap", f"aws://{ACCOUNT_ID}/{REGION}", cwd=self.workdir)
            phase.detail = _stack_status("CDKToolkit")
            _expect("CDKToolkit stack", phase.detail, "CREATE_COMPLETE")

    def _deploy(self, cli: CdkCli) -> Path:
        assembly = self.workdir / "cdk.out"
        with self.phase("cdk deploy") as phase:
            # AWS publishes the Powertools layer ARN as a public parameter in every region; moto does not.
            provide_public_parameters([constants.POWERTOOLS_LAYER_PARAMETER])
            cli.run("deploy", "--require-approval", "never", "--output", str(assembly))
            self.report.stack_status_after_deploy = _stack_status(constants.STACK_NAME)
            _expect(constants.STACK_NAME, self.report.stack_status_after_deploy, "CREATE_COMPLETE")
            self.report.log_levels_after_deploy = _participant_log_levels(self.participant_handlers)
            _expect("participants' LOG_LEVEL", set(self.report.log_levels_after_deploy.values()), {constants.LOG_LEVEL})
            resources = len(read_stack_template(assembly)["Resources"])
            phase.detail = f"{self.report.stack_status_after_deploy}, {resources} resources"
        return assembly

    def _update(self, cli: CdkCli) -> Path:
        assembly = self.workdir / "cdk.out.update"
        context = f"{constants.LOG_LEVEL_CONTEXT}={self.update_log_level}"
        with self.phase(f"cdk deploy -c {context}") as phase:
            cli.run("deploy", "--require-approval", "never", "--output", str(assembly), "-c", context)
            self.report.stack_status_after_update = _stack_status(constants.STACK_NAME)
            _expect(constants.STACK_NAME, self.report.stack_status_after_update, "UPDATE_COMPLETE")
            self.report.log_levels_after_update = _participant_log_levels(self.participant_handlers)
            levels = set(self.report.log_levels_after_update.values())
            _expect("participants' LOG_LEVEL after the update", levels, {self.update_log_level.upper()})
            phase.detail = f"{self.report.stack_status_after_update}, LOG_LEVEL {sorted(levels)[0]}"
        return assembly

    def _run_sagas(self, assembly: Path) -> None:
        with self.phase("sagas on the deployed stack") as phase:
            definition = self.definition
            with (
                LocalCloud(assembly, time_scale=TIME_SCALE, consumers_per_queue=1, deploy=False) as cloud,
                # The deployed API's routes, IAM auth and request model, served locally (API Gateway's part).
                serving(cloud) as (_, client),
            ):
                sagas = LocalSagas(cloud, definition)
                sagas.kit.prepare(2)
                happy, compensated = (f"deploy-local-{uuid.uuid4().hex[:10]}" for _ in range(2))
                failing = failing_step(definition)
                error = (failing.permanent_errors or [INJECTED_PERMANENT_ERROR])[0]
                sagas.faults.plan(compensated, failing.name, "action", Fault.permanent(error))
                # Started as the README shows: a SigV4-signed POST /<route>, the saga named by its id field.
                rng = random.Random(len(definition.steps))
                path = definition.route_path
                started = {}
                for number, saga_id in enumerate((happy, compensated), start=1):
                    body, key = named(definition, saga_id, sagas.kit.sample_input(number, rng))
                    started[saga_id] = client.start(path, body, idempotency_key=key).status
                _expect(f"POST /{path} answers", list(started.values()), [202, 202])
                unfinished = sagas.wait([happy, compensated], timeout_seconds=SAGA_TIMEOUT_SECONDS)
                if unfinished:
                    raise DeployLocalError(f"sagas still running after {SAGA_TIMEOUT_SECONDS} s: {unfinished}")
                for saga_id in (happy, compensated):
                    outcome = sagas.outcome(saga_id)
                    self.report.sagas.append(
                        {
                            "saga_id": saga_id,
                            "start_answer": started[saga_id],
                            "status": outcome.status,
                            "status_from_api": client.get(path, saga_id).body["status"],
                            "execution_status": outcome.execution_status,
                            "actions_succeeded": list(outcome.actions_succeeded),
                            "compensations_succeeded": list(outcome.compensations_succeeded),
                            "fault": f"{failing.name}: permanent failure" if saga_id == compensated else "",
                        }
                    )
                self.report.invariant_problems = sagas.check().problems
            statuses = [saga["status"] for saga in self.report.sagas]
            _expect("saga statuses (healthy, faulty)", statuses, ["COMPLETED", "FAILED"])
            _expect(
                f"statuses GET /{definition.route_path}/{{id}} answers",
                [saga["status_from_api"] for saga in self.report.sagas],
                statuses,
            )
            before_failure = [step.name for step in definition.steps[: definition.steps.index(failing)]]
            _expect("compensated steps", self.report.sagas[1]["compensations_succeeded"], before_failure[::-1])
            _expect("invariant check problems", self.report.invariant_problems, [])
            phase.detail = f"2 signed POST /{definition.route_path}: completed 1, compensated 1, invariants hold"

    def _destroy(self, cli: CdkCli, assembly: Path) -> None:
        with self.phase("cdk destroy") as phase:
            tables_before = set(boto3.client("dynamodb").list_tables()["TableNames"])
            cli.run("destroy", "--app", str(assembly), "--force")
            stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
            self.report.stack_exists_after_destroy = any(
                stack["StackName"] == constants.STACK_NAME and stack["StackStatus"] != "DELETE_COMPLETE"
                for stack in stacks
            )
            _expect(f"{constants.STACK_NAME} still there", self.report.stack_exists_after_destroy, False)
            # Tables with RemovalPolicy.RETAIN (saga records, business data) outlive the stack, as on AWS.
            tables_after = set(boto3.client("dynamodb").list_tables()["TableNames"])
            self.report.retained_tables = sorted(tables_before & tables_after)
            phase.detail = f"stack gone; {len(self.report.retained_tables)} tables retained"


def failing_step(definition: SagaDefinition) -> Step:
    """The step whose permanent failure the second saga meets: the last one that fails into compensations (a
    compensatable step after the first), else the first step."""
    candidates = [step for index, step in enumerate(definition.steps) if index > 0 and not step.retriable]
    return candidates[-1] if candidates else definition.steps[0]


def _stack_status(name: str) -> str:
    return boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


def _participant_log_levels(handlers: set[str]) -> dict[str, str]:
    """LOG_LEVEL of every participant function of the stack (one whose handler is in `handlers`), from Lambda."""
    cloudformation, lambda_client = boto3.client("cloudformation"), boto3.client("lambda")
    resources = cloudformation.list_stack_resources(StackName=constants.STACK_NAME)["StackResourceSummaries"]
    levels = {}
    for resource in resources:
        if resource["ResourceType"] == "AWS::Lambda::Function":
            config = lambda_client.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
            if config["Handler"] not in handlers:
                continue
            levels[config["FunctionName"]] = config.get("Environment", {}).get("Variables", {}).get("LOG_LEVEL", "")
    if not levels:
        raise DeployLocalError(f"{constants.STACK_NAME} has no participant functions (handlers {sorted(handlers)})")
    return levels


def _expect(what: str, found: object, expected: object) -> None:
    if found != expected:
        raise DeployLocalError(f"{what}: expected {expected!r}, found {found!r}")


def render(report: Report, console: Console) -> None:
    table = Table(title=f"deploy-local against {report.endpoint or 'a local endpoint'}")
    table.add_column("Phase")
    table.add_column("Seconds", justify="right")
    table.add_column("Result")
    for phase in report.phases:
        result = f"[green]ok[/green] {phase.detail}" if phase.ok else "[red]FAILED[/red]"
        table.add_row(phase.name, f"{phase.seconds:.1f}", result)
    table.add_row("[bold]total[/bold]", f"{sum(phase.seconds for phase in report.phases):.1f}", "")
    console.print(table)
    if report.sagas:
        sagas = Table(title="Sagas on the deployed stack")
        for column in ("Saga", "Fault", "Status", "Compensated"):
            sagas.add_column(column)
        for saga in report.sagas:
            compensated = ", ".join(saga["compensations_succeeded"]) or "-"
            sagas.add_row(saga["saga_id"], saga["fault"] or "-", saga["status"], compensated)
        console.print(sagas)
    if report.error:
        console.print(f"[red]deploy-local failed:[/red] {report.error}", markup=True, highlight=False)
    else:
        console.print("[green]deploy-local: bootstrap, deploy, update, sagas and destroy all passed[/green]")


@exits_quietly_on_ctrl_c
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update-log-level",
        default="DEBUG",
        choices=[level for level in constants.LOG_LEVELS if level != constants.LOG_LEVEL],
        help="the participants' log level the update deploys (the change the second `cdk deploy` makes)",
    )
    parser.add_argument("--report", type=Path, help="also write the report as JSON to this file")
    arguments = parser.parse_args(argv)
    console = Console()
    report = DeployLocal(arguments.update_log_level, console).run()
    render(report, console)
    if arguments.report:
        arguments.report.write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
