"""`make demo`: about fifty sagas through the project's saga on the local runtime, its kit's scenarios.

Synthesizes the CDK app, deploys it into moto, serves the stack's REST API on 127.0.0.1, and posts the mix of its
kit's scenarios (saga_testkit.kit) to it over HTTP as SigV4-signed requests, reading their status back through the
API, then prints the outcomes, what the API's front door refuses, and the saga's invariant check. For the order
example: most orders succeed; some are out of stock, have their card declined, ship to an unserviceable address,
bounce their confirmation, hit a flaky payment gateway, or lose the carrier's reply so the step times out; one needs a
human: its carrier crashes right after booking (the saga compensates the booking too) and then its refund fails for
good, so it parks; the stuck-saga detector flags it on its schedule, and the demo resumes it with the operator CLI
(`saga_ops resume`), and stock and money are reconciled. Exits 1 if any saga is left unfinished, any saga ends other
than its scenario predicts, the API answers a probe wrongly, a parked saga is not flagged and compensated, or the
invariant check fails.
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
from contextlib import ExitStack
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
from saga_testkit.kit import project_definition
from saga_testkit.observe import FINISHED_STATUSES
from saga_testkit.sagas import LocalSagas, named
from saga_testkit.scenario import Scenario

MIN_CONSOLE_WIDTH = 120  # columns; CI and pipes report 80, which folds the tables
ORDERS_PER_SECOND = 8  # an order stream, not one burst: heartbeats count from the moment a command is queued
# Sagas running at once, at most. A task's timeout counts while its command waits on a queue: started faster than this
# machine finishes them (about 2 sagas/s, `make bench`), orders would queue until healthy ones time out.
MAX_IN_FLIGHT = 10
DEMO_TIME_SCALE = 0.1  # 1 s of SLA lasts 100 ms: the 120 s carrier timeout takes 12 s
DETECTOR_WAIT_PERIODS = 3  # detector schedule periods the demo waits for its report


def run(seed: int, time_scale: float, console: Console) -> int:
    definition = project_definition()
    console.print(f"[bold]{definition.name} saga on the local runtime[/] (seed {seed})")
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
        sagas = LocalSagas(cloud, definition)
        sagas.kit.prepare_demo()
        console.print(
            f"  {definition.name} API (IAM: SigV4-signed requests only): POST/GET {api.url}/{definition.route_path}"
        )
        return _run_orders(sagas, client, seed, console)


def _run_orders(sagas: LocalSagas, client: SignedApiClient, seed: int, console: Console) -> int:
    path = sagas.definition.route_path
    rng = random.Random(seed)
    plan = [scenario for scenario in sagas.kit.scenarios for _ in range(scenario.count)]
    rng.shuffle(plan)
    scenario_of: dict[str, Scenario] = {}
    orders: dict[str, dict[str, Any]] = {}
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
        running = _FinishedWatch(client, path, lambda: progress.advance(finished))
        for number, scenario in enumerate(plan, start=1):
            running.wait_below(MAX_IN_FLIGHT)
            saga_id = f"order-{seed}-{number:04d}"
            for step, kind, fault in scenario.faults:
                sagas.faults.plan(saga_id, step, kind, fault)
            orders[saga_id], key = named(sagas.definition, saga_id, sagas.kit.scenario_input(scenario, number, rng))
            answer = client.start(path, orders[saga_id], idempotency_key=key)
            if answer.status != 202:
                refused.append(f"{saga_id}: POST /{path} answered {answer.status} {answer.body}")
            scenario_of[saga_id] = scenario
            running.add(saga_id)
            progress.advance(started)
            time.sleep(1 / ORDERS_PER_SECOND)
        unfinished = running.wait_below(1, timeout_seconds=180)

    api_status = {saga_id: client.get(path, saga_id).body.get("status") for saga_id in scenario_of}
    outcomes = {saga_id: sagas.outcome(saga_id) for saga_id in scenario_of}
    surprises = [
        f"{saga_id} ({scenario.name}): expected {scenario.expected_status}, GET /{path}/{saga_id} says "
        f"{api_status[saga_id]}"
        for saga_id, scenario in scenario_of.items()
        if saga_id not in unfinished and api_status[saga_id] != scenario.expected_status
    ]
    console.print(_outcome_table(scenario_of, outcomes))
    gate, gate_problems = _front_door_table(client, path, orders)
    console.print(gate)
    problems = [f"{saga_id} did not finish" for saga_id in unfinished] + refused + surprises + gate_problems
    if not problems:
        parked = [saga_id for saga_id, scenario in scenario_of.items() if scenario.expected_status in PARKED_STATUSES]
        problems = _operate(sagas, parked, console)
    invariants = sagas.check()  # after the operator: nothing may be left parked
    for table in invariants.tables():
        console.print(table)
    problems += invariants.problems + [f"{saga_id} is still parked" for saga_id in invariants.parked]
    if problems:
        for problem in problems:
            console.print(f"[red]✗ {problem}")
        return 1
    finished = len(scenario_of)
    console.print(
        f"[bold green]✓ {finished} sagas finished: every one completed or fully compensated; its invariant check holds."
    )
    return 0


class _FinishedWatch:
    """The demo's sagas still running, as the API lists them: one GET /<route>?status=... per finished status and
    round, not a GET per saga."""

    def __init__(self, client: SignedApiClient, path: str, on_finished: Any) -> None:
        self.client, self.path, self.on_finished = client, path, on_finished
        self.waiting: set[str] = set()

    def add(self, saga_id: str) -> None:
        self.waiting.add(saga_id)

    def wait_below(self, count: int, timeout_seconds: float = 180) -> list[str]:
        """Wait until fewer than `count` sagas run (or the timeout passes); return those still running."""
        deadline = time.monotonic() + timeout_seconds
        while len(self.waiting) >= count and time.monotonic() < deadline:
            self._poll()
            if len(self.waiting) >= count:
                time.sleep(0.5)  # four listings a round: gentle on the participants sharing this process
        return sorted(self.waiting)

    def _poll(self) -> None:
        for status in sorted(FINISHED_STATUSES):
            token = None
            while True:
                page = self.client.list(self.path, status, limit=100, next_token=token).body
                for saga in page["sagas"]:
                    if saga["saga_id"] in self.waiting:
                        self.waiting.discard(saga["saga_id"])
                        self.on_finished()
                token = page["next_token"]
                if token is None:
                    break


def _front_door_table(client: SignedApiClient, path: str, orders: dict[str, dict[str, Any]]) -> tuple[Table, list[str]]:
    """What the API refuses or deduplicates, shown with requests against a saga that already ran."""
    order = next(iter(orders.values()))
    changed = {**order, "items": [{**order["items"][0], "quantity": order["items"][0]["quantity"] + 1}]}
    unsigned = SignedApiClient(client.base_url, client.credentials)
    probes = [
        ("the same order again (a client retry)", 202, lambda: client.start(path, order)),
        ("same order, another Idempotency-Key (a replay)", 400, lambda: client.start(path, order, idempotency_key="x")),
        ("same order id, another body", 409, lambda: client.start(path, changed)),
        (
            "negative quantity",
            400,
            lambda: client.start(
                path, {**order, "order_id": "probe-1", "items": [{**order["items"][0], "quantity": -1}]}
            ),
        ),
        (
            "body over the saga's 64 KiB budget",
            413,
            lambda: client.start(path, json.dumps(order)[:-1] + " " * 70_000 + "}"),
        ),
        ("unsigned request", 403, lambda: unsigned.request("POST", f"/{path}", body=order, signed=False)),
    ]
    table = Table(title="API front door")
    for column in ("request", "status", "answer"):
        table.add_column(column)
    problems = []
    for name, expected, probe in probes:
        answer = probe()
        errors = answer.body.get("errors") or [{}]
        detail = f"{errors[0]['field']}: {errors[0]['problem']}" if "field" in errors[0] else answer.body.get("message")
        if "saga_id" in answer.body:
            detail = f"saga {answer.body['saga_id']}"
        colour = "green" if answer.status == expected else "red"
        table.add_row(name, f"[{colour}]{answer.status}", str(detail)[:70])
        if answer.status != expected:
            problems.append(f"API: {name} answered {answer.status}, expected {expected}")
    return table, problems


def _operate(sagas: LocalSagas, parked: list[str], console: Console) -> list[str]:
    """What an operator does with a parked saga: read the detector's report, fix the cause, resume it."""
    console.print()
    console.rule("[bold]Operations: a saga that needs a human")
    operator = SagaOperator(Deployment.load(sagas.cloud.stack_name))
    waiting_for = set(parked)
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + DETECTOR_WAIT_PERIODS * 60 * sagas.cloud.time_scale
    with console.status("Waiting for the stuck-saga detector (it runs every minute of the local clock)..."):
        while waiting_for - {report["saga_id"] for report in reports} and time.monotonic() < deadline:
            reports += operator.take_stuck_reports()
    console.print(saga_ops_cli.reports_table(reports))
    problems = [
        f"{saga_id} was not flagged by the detector" for saga_id in waiting_for - {r["saga_id"] for r in reports}
    ]
    for saga_id in parked:
        record = sagas.records.get(saga_id) or {}
        console.print(
            f"The cause is fixed for {saga_id}: resuming its compensation from {record.get('failed_step')} "
            "with `python -m saga_ops resume --retry`"
        )
        sagas.faults.clear(saga_id, record.get("failed_step", ""), "compensation")
        exit_code = saga_ops_cli.main(
            [
                "--stack",
                sagas.cloud.stack_name,
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


def _outcome_table(scenario_of: dict[str, Scenario], outcomes: dict[str, Any]) -> Table:
    table = Table(title="Outcomes by scenario")
    for column in (
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
            justify="left" if column in ("scenario", "status") else "right",
            no_wrap=column == "status",
        )
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for saga_id, scenario in scenario_of.items():
        groups[(scenario.name, outcomes[saga_id].status)].append(outcomes[saga_id])
    for (name, status), group in groups.items():
        durations = [outcome.duration_seconds for outcome in group]
        colour = "green" if status == "COMPLETED" else ("yellow" if status == "FAILED" else "red")
        table.add_row(
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
    parser.add_argument("--seed", type=int, default=7, help="orders and their order are drawn from this seed")
    parser.add_argument("--time-scale", type=float, default=DEMO_TIME_SCALE, help="local seconds per SLA second")
    args = parser.parse_args(argv)
    console = Console(width=max(shutil.get_terminal_size().columns, MIN_CONSOLE_WIDTH))
    try:
        return run(args.seed, args.time_scale, console)
    except SynthesisFailed as failure:
        console.print("[red]✗ cdk synth failed:")
        console.print(str(failure), markup=False, highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
