"""`make demo`: every saga of the project on one local cloud, its kit's scenarios interleaved (`--saga` picks some).

Synthesizes the CDK app, deploys it into moto, serves the stack's REST API on 127.0.0.1, and posts the mix of every
chosen saga's demo scenarios (its kit's, saga_testkit.kit), shuffled together, to its route over HTTP as SigV4-signed
requests, reading their status back through the API; then prints the outcomes, what each route's front door refuses,
and each saga type's invariant check. The examples: most orders succeed; some are out of stock, have their card
declined, ship to an unserviceable address, bounce their confirmation, hit a flaky payment gateway, or lose the
carrier's reply so the step times out; one order's carrier crashes right after booking and its refund then fails for
good, so it parks COMPENSATION_FAILED. Most trips are booked; some find their flight sold out or the hotel full, have
their deposit declined, or their fare expired by the time the tickets (the pivot) are issued, so everything before
is given back; a lost reply at the pivot and a flaky itinerary provider are retried; one trip's itinerary provider
stays down, so past its pivot it parks FORWARD_RECOVERY_FAILED. The stuck-saga detector flags each parked saga on its
schedule, and the demo resumes it with the operator CLI (`saga_ops resume --retry`). Exits 1 if any saga is left
unfinished, any saga ends other than its scenario predicts, the API answers a probe wrongly, a parked saga is not
flagged and resumed, or an invariant check fails; 2 for a saga name the project does not define.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from local_runtime.cloud import LocalCloud
from local_runtime.http_api import SignedApiClient, serving
from local_runtime.interrupt import exits_quietly_on_ctrl_c
from local_runtime.synth import SynthesisFailed, synthesize
from saga_ops import cli as saga_ops_cli
from saga_ops.deployment import Deployment
from saga_ops.operations import SagaOperator
from saga_records import PARKED_STATUSES
from saga_testkit.kit import project_definitions
from saga_testkit.observe import FINISHED_STATUSES
from saga_testkit.sagas import LocalSagas, named
from saga_testkit.scenario import Scenario
from statemachines import SagaDefinition

MIN_CONSOLE_WIDTH = 120  # columns; CI and pipes report 80, which folds the tables
SAGAS_PER_SECOND = 8  # a stream, not one burst: heartbeats count from the moment a command is queued
# Sagas running at once, at most. A task's timeout counts while its command waits on a queue: started faster than this
# machine finishes them (about 2 sagas/s, `make bench`), sagas would queue until healthy ones time out.
MAX_IN_FLIGHT = 10
DEMO_TIME_SCALE = 0.1  # 1 s of SLA lasts 100 ms: the 120 s carrier timeout takes 12 s
DETECTOR_WAIT_PERIODS = 3  # detector schedule periods the demo waits for its reports


class UnknownSaga(LookupError):
    """A saga name the project does not define; the message lists those it does."""


def demo_definitions(names: list[str] | None) -> list[SagaDefinition]:
    """The project's sagas named `names` (every one when None or empty), in the project's order."""
    definitions = project_definitions()
    if not names:
        return definitions
    known = [definition.name for definition in definitions]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownSaga(f"no saga {', '.join(unknown)} in statemachines/sagas/; the project has {', '.join(known)}")
    return [definition for definition in definitions if definition.name in names]


@dataclass(frozen=True)
class DemoSaga:
    sagas: LocalSagas  # its saga type on the cloud
    scenario: Scenario
    body: dict[str, Any]  # what was posted

    @property
    def path(self) -> str:
        return self.sagas.definition.route_path


def run(seed: int, time_scale: float, console: Console, names: list[str] | None = None) -> int:
    definitions = demo_definitions(names)
    console.print(f"[bold]{' and '.join(d.name for d in definitions)} on the local runtime[/] (seed {seed})")
    started = time.monotonic()
    with console.status("Synthesizing the CDK app (cdk synth)..."):
        assembly = synthesize()
    console.print(f"[green]✓[/] synthesized in {time.monotonic() - started:.1f}s → {assembly}")
    started = time.monotonic()
    with ExitStack() as running:
        with console.status("Deploying the template into moto...") as status:
            cloud = running.enter_context(
                LocalCloud(
                    assembly,
                    time_scale=time_scale,
                    progress=lambda phase: status.update(f"Deploying the template into moto: {phase}..."),
                )
            )
            status.update("Starting the local API Gateway and its warm Lambda environments...")
            api, client = running.enter_context(serving(cloud))
        console.print(
            f"[green]✓[/] deployed {len(cloud.template['Resources'])} resources in {time.monotonic() - started:.1f}s; "
            f"{len(cloud.mappings)} queues feed {len(cloud.mappings)} participant functions, "
            f"{len(cloud.events.schedules) + len(cloud.events.status_rules)} EventBridge rules run the others; "
            f"local clock runs {1 / time_scale:.0f}x faster than the SLAs"
        )
        console.print(f"  participant logs and EMF metrics: {cloud.lambda_log_path}")
        if cloud.skipped_resource_types:
            skipped = ", ".join(sorted(cloud.skipped_resource_types))
            console.print(f"  not emulated by moto (the infra tests check them on the template): {skipped}")
        fleet = []
        for definition in definitions:
            sagas = LocalSagas(cloud, definition)
            if not sagas.kit.scenarios:
                console.print(f"  {definition.name}: its kit lists no demo scenarios, so none of its sagas runs")
                continue
            sagas.kit.prepare_demo()
            fleet.append(sagas)
            console.print(
                f"  {definition.name} API (IAM: SigV4-signed requests only): POST/GET {api.url}/{definition.route_path}"
            )
        return _run_sagas(fleet, client, seed, console)


def _run_sagas(fleet: list[LocalSagas], client: SignedApiClient, seed: int, console: Console) -> int:
    rng = random.Random(seed)
    plan = [(sagas, scenario) for sagas in fleet for scenario in sagas.kit.scenarios for _ in range(scenario.count)]
    rng.shuffle(plan)  # the saga types interleaved, as on a shared production stack
    started_sagas: dict[str, DemoSaga] = {}
    refused: list[str] = []
    progress = Progress(
        TextColumn("[bold]{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        started = progress.add_task("started", total=len(plan))
        finished = progress.add_task("finished", total=len(plan))
        running = _FinishedWatch(client, lambda: progress.advance(finished))
        for number, (sagas, scenario) in enumerate(plan, start=1):
            running.wait_below(MAX_IN_FLIGHT)
            path = sagas.definition.route_path
            saga_id = f"{path}-{seed}-{number:04d}"
            for step, kind, fault in scenario.faults:
                sagas.faults.plan(saga_id, step, kind, fault)
            body, key = named(sagas.definition, saga_id, sagas.kit.scenario_input(scenario, number, rng))
            answer = client.start(path, body, idempotency_key=key)
            if answer.status != 202:
                refused.append(f"{saga_id}: POST /{path} answered {answer.status} {answer.body}")
            started_sagas[saga_id] = DemoSaga(sagas, scenario, body)
            running.add(path, saga_id)
            progress.advance(started)
            time.sleep(1 / SAGAS_PER_SECOND)
        unfinished = running.wait_below(1, timeout_seconds=180)

    api_status = {saga_id: client.get(saga.path, saga_id).body.get("status") for saga_id, saga in started_sagas.items()}
    outcomes = {saga_id: saga.sagas.outcome(saga_id) for saga_id, saga in started_sagas.items()}
    surprises = [
        f"{saga_id} ({saga.scenario.name}): expected {saga.scenario.expected_status}, GET /{saga.path}/{saga_id} says "
        f"{api_status[saga_id]} ({outcomes[saga_id].record.get('error')})"
        for saga_id, saga in started_sagas.items()
        if saga_id not in unfinished and api_status[saga_id] != saga.scenario.expected_status
    ]
    console.print(_outcome_table(started_sagas, outcomes))
    gate, gate_problems = _front_door_table(client, started_sagas, rng)
    console.print(gate)
    problems = [f"{saga_id} did not finish" for saga_id in unfinished] + refused + surprises + gate_problems
    if not problems:
        parked = {
            saga_id: saga for saga_id, saga in started_sagas.items() if saga.scenario.expected_status in PARKED_STATUSES
        }
        problems = _operate(fleet, parked, console)
    for sagas in fleet:  # after the operator: nothing may be left parked
        invariants = sagas.check()
        console.rule(f"[bold]{sagas.definition.name}: its invariant check")
        for table in invariants.tables():
            console.print(table)
        problems += invariants.problems + [f"{saga_id} is still parked" for saga_id in invariants.parked]
    if problems:
        for problem in problems:
            console.print(f"[red]✗ {problem}")
        return 1
    console.print(
        f"[bold green]✓ {len(started_sagas)} sagas finished: every one completed, compensated, or resumed by the "
        "operator; every saga type's invariant check holds."
    )
    return 0


class _FinishedWatch:
    """The demo's sagas still running, as the API lists them: one GET /<route>?status=... per route, finished status
    and round, not a GET per saga."""

    def __init__(self, client: SignedApiClient, on_finished: Callable[[], object]) -> None:
        self.client, self.on_finished = client, on_finished
        self.waiting: dict[str, str] = {}  # saga id -> its route

    def add(self, path: str, saga_id: str) -> None:
        self.waiting[saga_id] = path

    def wait_below(self, count: int, timeout_seconds: float = 180) -> list[str]:
        """Wait until fewer than `count` sagas run (or the timeout passes); return those still running."""
        deadline = time.monotonic() + timeout_seconds
        while len(self.waiting) >= count and time.monotonic() < deadline:
            self._poll()
            if len(self.waiting) >= count:
                time.sleep(0.5)  # a few listings a round: gentle on the participants sharing this process
        return sorted(self.waiting)

    def _poll(self) -> None:
        for path in sorted(set(self.waiting.values())):
            for status in sorted(FINISHED_STATUSES):
                token = None
                while True:
                    page = self.client.list(path, status, limit=100, next_token=token).body
                    for saga in page["sagas"]:
                        if self.waiting.pop(saga["saga_id"], None) is not None:
                            self.on_finished()
                    token = page["next_token"]
                    if token is None:
                        break


def _front_door_table(
    client: SignedApiClient, started: dict[str, DemoSaga], rng: random.Random
) -> tuple[Table, list[str]]:
    """What each saga's route refuses or deduplicates, shown with requests against one of its sagas that already ran."""
    table = Table(title="API front door")
    for column in ("route", "request", "status", "answer"):
        table.add_column(column)
    problems = []
    first_of: dict[str, tuple[str, DemoSaga]] = {}
    for saga_id, saga in started.items():
        first_of.setdefault(saga.path, (saga_id, saga))
    for path, (saga_id, saga) in first_of.items():
        other, _ = named(
            saga.sagas.definition, saga_id, saga.sagas.kit.scenario_input(saga.scenario, len(started) + 1, rng)
        )
        for name, expected, probe in _probes(client, saga_id, saga, other):
            answer = probe()
            errors = answer.body.get("errors") or [{}]
            detail = (
                f"{errors[0]['field']}: {errors[0]['problem']}" if "field" in errors[0] else answer.body.get("message")
            )
            if "saga_id" in answer.body:
                detail = f"saga {answer.body['saga_id']}"
            colour = "green" if answer.status == expected else "red"
            table.add_row(f"POST /{path}", name, f"[{colour}]{answer.status}", str(detail)[:60])
            if answer.status != expected:
                problems.append(f"API: POST /{path}, {name}, answered {answer.status}, expected {expected}")
    return table, problems


def _probes(
    client: SignedApiClient, saga_id: str, saga: DemoSaga, other: dict[str, Any]
) -> list[tuple[str, int, Callable[[], Any]]]:
    """(request, the status it must get, how to send it) against the saga `saga_id` that ran with `saga.body`;
    `other`: another body naming the same saga."""
    path, body, id_field = saga.path, saga.body, saga.sagas.definition.id_field
    key = None if id_field else saga_id
    probes: list[tuple[str, int, Callable[[], Any]]] = [
        ("the same request again (a client retry)", 202, lambda: client.start(path, body, idempotency_key=key)),
    ]
    if id_field:
        probes += [
            ("the same body, another Idempotency-Key", 400, lambda: client.start(path, body, idempotency_key="x")),
            (f"no {id_field}", 400, lambda: client.start(path, {k: v for k, v in body.items() if k != id_field})),
        ]
    if other != body:
        probes.append(("the same saga, another body", 409, lambda: client.start(path, other, idempotency_key=key)))
    oversized = json.dumps(body)[:-1] + " " * 70_000 + "}"
    unsigned = SignedApiClient(client.base_url, client.credentials)
    return [
        *probes,
        ("body over the saga's 64 KiB budget", 413, lambda: client.start(path, oversized, idempotency_key=key)),
        ("unsigned request", 403, lambda: unsigned.request("POST", f"/{path}", body=body, signed=False)),
    ]


def _operate(fleet: list[LocalSagas], parked: dict[str, DemoSaga], console: Console) -> list[str]:
    """What an operator does with a parked saga: read the detector's report, fix the cause, resume it."""
    if not parked:
        return []
    console.print()
    console.rule("[bold]Operations: sagas that need a human")
    cloud = fleet[0].cloud
    operator = SagaOperator(Deployment.load(cloud.stack_name))
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + DETECTOR_WAIT_PERIODS * 60 * cloud.time_scale
    with console.status("Waiting for the stuck-saga detector (it runs every minute of the local clock)..."):
        while set(parked) - {report["saga_id"] for report in reports} and time.monotonic() < deadline:
            reports += operator.take_stuck_reports()
    console.print(saga_ops_cli.reports_table(reports))
    problems = [
        f"{saga_id} was not flagged by the detector" for saga_id in set(parked) - {r["saga_id"] for r in reports}
    ]
    for saga_id, saga in parked.items():
        record = saga.sagas.records.get(saga_id) or {}
        pending = record.get("pending", [])
        what = "its forward steps" if record.get("status") == "FORWARD_RECOVERY_FAILED" else "its compensation"
        console.print(
            f"The cause is fixed for {saga_id} ({saga.sagas.definition.name}): resuming {what} from "
            f"{record.get('failed_step')} with `python -m saga_ops resume --retry`"
        )
        for item in pending:
            saga.sagas.faults.clear(saga_id, item["step"], item["kind"])
        exit_code = saga_ops_cli.main(
            [
                "--stack",
                cloud.stack_name,
                "resume",
                saga_id,
                "--retry",
                "--reason",
                "the cause is fixed",
                "--by",
                "demo-operator",
                "--wait-seconds",
                "30",
            ],
            console=console,
        )
        if exit_code != 0:
            problems.append(f"{saga_id} could not be resumed")
    return problems


def _outcome_table(started: dict[str, DemoSaga], outcomes: dict[str, Any]) -> Table:
    table = Table(title="Outcomes by scenario")
    for column in (
        "saga",
        "scenario",
        "sagas",
        "status",
        "steps completed",
        "compensations run",
        "transitions",
        "p50 s",
        "max s",
    ):
        table.add_column(
            column,
            justify="left" if column in ("saga", "scenario", "status") else "right",
            no_wrap=column == "status",
        )
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for saga_id, saga in started.items():
        key = (saga.sagas.definition.name, saga.scenario.name, outcomes[saga_id].status)
        groups[key].append(outcomes[saga_id])
    for (saga_type, name, status), group in sorted(groups.items(), key=lambda item: item[0][0]):
        durations = [outcome.duration_seconds for outcome in group]
        colour = "green" if status == "COMPLETED" else ("yellow" if status == "FAILED" else "red")
        table.add_row(
            saga_type,
            name,
            str(len(group)),
            f"[{colour}]{status}",
            _spread(len(outcome.actions_succeeded) for outcome in group),
            _spread(len(outcome.compensations_succeeded) for outcome in group),
            _spread(outcome.transitions for outcome in group),
            f"{statistics.median(durations):.2f}",
            f"{max(durations):.2f}",
        )
    return table


def _spread(values: Any) -> str:
    values = sorted(set(values))
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


@exits_quietly_on_ctrl_c
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m saga_testkit.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--saga",
        action="append",
        metavar="NAME",
        help="run this saga's scenarios only (repeatable; e.g. TripBooking); every saga of the project by default",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="the sagas' inputs and their order are drawn from this seed"
    )
    parser.add_argument("--time-scale", type=float, default=DEMO_TIME_SCALE, help="local seconds per SLA second")
    args = parser.parse_args(argv)
    console = Console(width=max(shutil.get_terminal_size().columns, MIN_CONSOLE_WIDTH))
    try:
        return run(args.seed, args.time_scale, console, args.saga)
    except UnknownSaga as unknown:
        console.print(f"[red]✗ {unknown}", highlight=False)
        return 2
    except SynthesisFailed as failure:
        console.print("[red]✗ cdk synth failed:")
        console.print(str(failure), markup=False, highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
