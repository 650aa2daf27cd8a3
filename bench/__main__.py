"""`make bench`: every figure of issue 5 measured in one run, each beside its baseline; writes bench/results.json.

    python -m bench [--sagas 200] [--skip-suite]   (Node on PATH for the CDK CLI: use `make bench`)

1. synth: `cdk synth` with the pinned CLI (timed); its cloud assembly is what every other step deploys.
2. billed transitions: happy path and a permanent failure at each step, counted from execution histories.
3. throughput: the bare harness, then the local runtime, each in a fresh process (bench/throughput.py); then the
   sustained rate at which a burst through the signed API still ends with every saga completed (bench/burst.py).
4. cold init: each participant handler module's import against `import boto3` plus one client.
4b. cost per pattern: requests per saga by service for the orchestrated and the choreographed order saga, and the
    all-in USD per million sagas from them (bench/pattern_cost.py, prices in bench/prices.py).
5. test suite: the `make test` command, timed (skipped with --skip-suite; results.json then says so).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import burst, cold_init, pattern_cost, report, throughput, timings, transitions
from bench.figures import RESULTS_FILE, results, sagas_per_second, write_results
from local_runtime.interrupt import exits_quietly_on_ctrl_c

# The throughput runs keep real SLA time: the happy path waits on no timer, and 200 sagas at once on 2 shared
# cores would otherwise miss heartbeats scaled down to a fraction of a second (a timeout, not a throughput).
THROUGHPUT_TIME_SCALE = 1.0
PATTERN_COST_SAGAS = 20  # happy sagas per pattern whose requests are counted


@exits_quietly_on_ctrl_c
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=200, help="sagas run concurrently per throughput harness")
    parser.add_argument("--cold-init-repetitions", type=int, default=cold_init.REPETITIONS)
    parser.add_argument("--skip-suite", action="store_true", help="do not run the test suite (figure left null)")
    args = parser.parse_args(argv)
    console = Console(width=max(shutil.get_terminal_size().columns, 120))
    load_before = os.getloadavg()

    with console.status("cdk synth (pinned CLI)..."):
        synth_s, assembly = timings.synth_with_cdk_cli()
    with console.status("billed transitions per path..."):
        paths = transitions.measure(assembly)
    console.print(transitions.table(paths))
    runs: dict[str, dict[str, Any]] = {}
    for harness in ("bare", "toolkit"):
        with console.status(f"throughput: {args.sagas} sagas on the {harness} harness..."):
            runs[harness] = throughput.measure_in_fresh_process(
                harness, sagas=args.sagas, time_scale=THROUGHPUT_TIME_SCALE, assembly=assembly
            )
    with console.status(f"burst: {burst.SAGAS} healthy sagas at once through the signed API..."):
        burst_run = burst.measure_in_fresh_process()
    with console.status("cold init of the participant handlers..."):
        cold = cold_init.measure(assembly, args.cold_init_repetitions)
    with console.status("cost per pattern: orchestrated and choreographed order sagas..."):
        costs = pattern_cost.measure_in_fresh_process(assembly, PATTERN_COST_SAGAS)
    pattern_cost.print_report(costs, console)
    suite_s, suite_passed, suite_summary, suite_failures = None, None, "skipped (--skip-suite)", []
    if not args.skip_suite:
        with console.status("test suite (make test's command)..."):
            suite_s, suite_passed, suite_summary, suite_failures = timings.run_test_suite()

    happy = next(path for path in paths if path.failing_step is None)
    document = results(
        throughput=sagas_per_second(runs["toolkit"]["sagas"], runs["toolkit"]["wall_s"]),
        baseline_throughput=sagas_per_second(runs["bare"]["sagas"], runs["bare"]["wall_s"]),
        transitions_happy=happy.transitions,
        transitions_failed_at_step=[path.transitions for path in paths if path.failing_step is not None],
        cold_init_ratios={cold_init.service_name(module): value for module, value in cold["ratios"].items()},
        synth_s=synth_s,
        test_suite_s=suite_s,
        extra={
            "throughput_sagas": args.sagas,
            "throughput_time_scale": THROUGHPUT_TIME_SCALE,
            "throughput_reconciled": runs["toolkit"]["reconciled"],
            "burst": burst_run,
            "requests_per_saga": runs["toolkit"]["requests_per_saga"],
            "baseline_requests_per_saga": runs["bare"]["requests_per_saga"],
            "cold_init_baseline_s": round(cold["baseline_s"], 4),
            "cold_init_handler_s": {
                cold_init.service_name(module): round(s, 4) for module, s in cold["handler_s"].items()
            },
            "cold_init_ratio_max_without_xray": round(max(cold["untraced_ratios"].values()), 3),
            "cold_init_layers": [
                {
                    "layer": layer["layer"],
                    "cumulative_s": round(layer["cumulative_s"], 4),
                    "adds_s": round(layer["adds_s"], 4),
                }
                for layer in cold["layers"]
            ],
            "pattern_cost": costs,
            "synth_method": "cdk synth --quiet (pinned CDK CLI, app.py)",
            "test_suite_passed": suite_passed,
            "test_suite_summary": suite_summary,
            "test_suite_failures": suite_failures,
            "load_average_at_start": [round(value, 2) for value in load_before],
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
    )
    write_results(document)
    report.write_page()
    console.print(summary_table(document, paths))
    console.print(layers_table(document["cold_init_layers"]))
    for failure in suite_failures:
        console.print(f"[red]{failure}")
    console.print(f"wrote {RESULTS_FILE.relative_to(RESULTS_FILE.parent.parent)} and docs/benchmarks.md")
    return 0 if suite_passed in (None, True) else 1


def summary_table(document: dict[str, Any], paths: list[transitions.PathTransitions]) -> Table:
    table = Table(title="make bench: each figure beside its baseline or target, measured in this run")
    for column in ("figure", "measured", "baseline / target", "ratio / verdict"):
        table.add_column(column, justify="left" if column == "figure" else "right")

    def verdict(ok: bool) -> str:
        return "[green]✓ meets target" if ok else "[red]✗ misses target"

    ratio = document["throughput_ratio"]
    table.add_row(
        f"local throughput, sagas/s ({document['throughput_sagas']} sagas, reconciled)",
        f"{document['throughput_sagas_per_s']:.2f}",
        f"bare harness {document['baseline_throughput_sagas_per_s']:.2f}",
        f"{ratio:.2f} (target ≥ 1.0) {verdict(ratio >= 1.0)}",
    )

    def requests(per_service: dict[str, float]) -> str:
        return f"{sum(per_service.values()):.1f} (" + ", ".join(f"{k} {v:g}" for k, v in per_service.items()) + ")"

    table.add_row(
        "moto requests per saga in that run (by service)",
        requests(document["requests_per_saga"]),
        "bare " + requests(document["baseline_requests_per_saga"]),
        f"{ratio_of_sums(document['requests_per_saga'], document['baseline_requests_per_saga']):.2f}",
    )
    happy = next(path for path in paths if path.failing_step is None)
    table.add_row(
        "billed transitions, happy path",
        str(document["transitions_happy"]),
        f"target ≤ {happy.target}",
        verdict(happy.transitions <= happy.target),
    )
    for k, path in enumerate((p for p in paths if p.failing_step is not None), 1):
        table.add_row(
            f"billed transitions, permanent failure at step {k}",
            str(path.transitions),
            f"target ≤ {path.target}",
            verdict(path.transitions <= path.target),
        )
    if "burst" in document:
        table.add_row(*report.burst_row(document["burst"]))
    table.add_row("Step Functions USD per million happy sagas", f"{document['usd_per_million_happy']:.2f}", "", "")
    for service, value in document["cold_init_ratio_by_handler"].items():
        table.add_row(
            f"cold init, {service} handler (median s)",
            f"{document['cold_init_handler_s'][service]:.3f}",
            f"import boto3 + 1 client {document['cold_init_baseline_s']:.3f}",
            f"{value:.2f} (target ≤ 1.5) {verdict(value <= 1.5)}",
        )
    table.add_row(
        "cold init, worst handler with tracing disabled",
        "",
        "",
        f"{document['cold_init_ratio_max_without_xray']:.2f} (X-Ray off, for comparison)",
    )
    table.add_row("synth, s (cdk synth, pinned CLI)", f"{document['synth_s']:.1f}", "", "")
    suite = document["test_suite_s"]
    table.add_row(
        "test suite, s (make test's pytest command)",
        "not measured" if suite is None else f"{suite:.0f}",
        "target < 300",
        "" if suite is None else f"{document['test_suite_summary']} {verdict(suite < 300)}",
    )
    return table


def ratio_of_sums(measured: dict[str, float], baseline: dict[str, float]) -> float:
    return sum(measured.values()) / max(sum(baseline.values()), 1e-9)


def layers_table(layers: list[dict[str, Any]]) -> Table:
    table = Table(title="cold init of one handler, layer by layer (each row adds one layer to the one above; medians)")
    for column in ("layer", "cumulative s", "adds s"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in layers:
        table.add_row(layer["layer"], f"{layer['cumulative_s']:.3f}", f"{layer['adds_s']:+.3f}")
    return table


if __name__ == "__main__":
    sys.exit(main())
