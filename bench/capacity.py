"""Capacity model: sustained sagas per second per account and region, from the saga definition and the quotas.

    python -m bench.capacity [--saga statemachines/sagas/order_fulfillment.saga.yaml] [--step-seconds 1]
                             [--failure-rate 0.1]

Per saga it counts, from the compiled state machine (the same ASL the stack deploys):
- StartExecution: one per saga (SagaStarter names the execution after the saga id);
- billed state transitions: the states a path enters (no retries on these paths);
- SendTask* calls: per callback task entered, its answer (SendTaskSuccess or SendTaskFailure) plus the
  participant toolkit's heartbeats, one every heartbeat_seconds / HEARTBEATS_PER_INTERVAL while the step runs
  (`--step-seconds`); a command that waited in its queue longer than that also beats on pick-up (a backlog,
  not the sustained state modelled here), and so does one whose beat interval is under 1.5 s (scaled
  local clocks, or a definition's heartbeat_seconds under 5).
Each quota's refill rate divided by the saga's use of it gives the sagas per second that quota allows; the
smallest is the sustained capacity and names the binding quota. A failure mix (`--failure-rate`, spread evenly
over the steps, each a permanent failure compensating what ran before) is modelled beside the happy path.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import local_runtime  # noqa: F401 - puts the Lambda code root (participant_toolkit) on the import path
from bench.quotas import REGION_CLASSES, SEND_TASK, START_EXECUTION, STATE_TRANSITIONS, Quota, RegionClass
from participant_toolkit.participant import HEARTBEATS_PER_INTERVAL, MIN_DEFERRED_BEAT_INTERVAL_SECONDS
from statemachines import SagaDefinition, compile_saga, load_definition
from statemachines.compiler import CALLBACK_RESOURCE
from tests.sagas.order_fulfillment.kit import SAGA_FILE


@dataclass(frozen=True)
class PathUse:
    """What one saga taking one path costs in each rate-limited resource."""

    label: str
    start_executions: int
    transitions: int
    send_task_calls: int

    def of(self, quota_name: str) -> float:
        return {
            START_EXECUTION: self.start_executions,
            SEND_TASK: self.send_task_calls,
            STATE_TRANSITIONS: self.transitions,
        }[quota_name]


@dataclass(frozen=True)
class QuotaLimit:
    quota: Quota
    per_saga: float
    sagas_per_s: float
    burst_sagas: float | None  # sagas the full bucket absorbs above the sustained rate


@dataclass(frozen=True)
class Capacity:
    region_class: RegionClass
    use: PathUse
    limits: list[QuotaLimit]

    @property
    def binding(self) -> QuotaLimit:
        return min(self.limits, key=lambda limit: limit.sagas_per_s)


def heartbeats_per_task(heartbeat_seconds: int, step_seconds: float) -> int:
    """The toolkit beats every heartbeat_seconds / HEARTBEATS_PER_INTERVAL until it answers; a command picked up
    within one interval (no queue backlog, the sustained case) sends its first beat one interval in."""
    interval = heartbeat_seconds / HEARTBEATS_PER_INTERVAL
    pick_up_beat = 1 if interval < MIN_DEFERRED_BEAT_INTERVAL_SECONDS else 0
    return pick_up_beat + math.floor(step_seconds / interval)


def happy_path(asl: dict[str, Any]) -> list[str]:
    """States entered when every task succeeds: StartAt, then each Next until a state ends the execution."""
    return _follow(asl, asl["StartAt"])


def failure_path(asl: dict[str, Any], failing_task: int) -> list[str]:
    """States entered when the `failing_task`-th callback task of the happy path (1-based) fails permanently.

    A permanent error is no States.Timeout and no retried error: the task's first Catch that takes it is the one
    listing States.ALL; from its target the path follows each Next to the end.
    """
    happy = happy_path(asl)
    callbacks = [name for name in happy if _is_callback(asl["States"][name])]
    if not 1 <= failing_task <= len(callbacks):
        raise ValueError(f"failing_task must be 1..{len(callbacks)}, got {failing_task}")
    failing = callbacks[failing_task - 1]
    entered = happy[: happy.index(failing) + 1]
    catcher = next(c for c in asl["States"][failing].get("Catch", []) if "States.ALL" in c["ErrorEquals"])
    return entered + _follow(asl, catcher["Next"])


def path_use(label: str, asl: dict[str, Any], states: list[str], step_seconds: float) -> PathUse:
    send_task = 0
    for name in states:
        state = asl["States"][name]
        if _is_callback(state):
            send_task += 1 + heartbeats_per_task(state["HeartbeatSeconds"], step_seconds)
    return PathUse(label=label, start_executions=1, transitions=len(states), send_task_calls=send_task)


def mix(label: str, happy: PathUse, failures: list[PathUse], failure_rate: float) -> PathUse:
    """Average use per saga when `failure_rate` of sagas fail, evenly over the steps."""
    if not 0 <= failure_rate <= 1:
        raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
    share = failure_rate / len(failures)

    def average(field: str) -> float:
        return (1 - failure_rate) * getattr(happy, field) + share * sum(getattr(f, field) for f in failures)

    return PathUse(
        label=label,
        start_executions=average("start_executions"),  # type: ignore[arg-type]
        transitions=average("transitions"),  # type: ignore[arg-type]
        send_task_calls=average("send_task_calls"),  # type: ignore[arg-type]
    )


def capacity(region_class: RegionClass, use: PathUse) -> Capacity:
    limits = []
    for quota in region_class.quotas:
        per_saga = use.of(quota.name)
        limits.append(
            QuotaLimit(
                quota=quota,
                per_saga=per_saga,
                sagas_per_s=quota.refill_per_s / per_saga,
                burst_sagas=None if quota.bucket is None else quota.bucket / per_saga,
            )
        )
    return Capacity(region_class, use, limits)


def model(definition: SagaDefinition, *, step_seconds: float, failure_rate: float) -> list[Capacity]:
    asl = compile_saga(definition)
    happy = path_use("happy path", asl, happy_path(asl), step_seconds)
    failures = [
        path_use(f"failure at step {k}", asl, failure_path(asl, k), step_seconds)
        for k in range(1, len(definition.steps) + 1)
    ]
    uses = [happy]
    if failure_rate > 0:
        uses.append(mix(f"{failure_rate:.0%} failing", happy, failures, failure_rate))
    return [capacity(region_class, use) for region_class in REGION_CLASSES for use in uses]


def table(definition: SagaDefinition, capacities: list[Capacity], step_seconds: float) -> Table:
    result = Table(
        title=f"Sustained {definition.name} sagas per second, per account and region "
        f"(Standard quotas; participants take {step_seconds:g} s per step; failures spread evenly over the steps)"
    )
    for column in ("region class", "saga mix", "quota", "refill/s (bucket)", "use per saga", "sagas/s", "burst"):
        result.add_column(column, justify="left" if column in ("region class", "saga mix", "quota") else "right")
    for entry in capacities:
        binding = entry.binding
        for limit in entry.limits:
            bound = limit is binding
            bucket = "?" if limit.quota.bucket is None else f"{limit.quota.bucket:,.0f}"
            result.add_row(
                entry.region_class.name,
                entry.use.label,
                f"[bold]{limit.quota.name} (binds)[/bold]" if bound else limit.quota.name,
                f"{limit.quota.refill_per_s:,.0f} ({bucket})",
                f"{limit.per_saga:g}",
                f"[bold]{limit.sagas_per_s:,.1f}[/bold]" if bound else f"{limit.sagas_per_s:,.1f}",
                "" if limit.burst_sagas is None else f"{limit.burst_sagas:,.0f} sagas",
            )
        result.add_section()
    return result


def _follow(asl: dict[str, Any], start: str) -> list[str]:
    states, name = [], start
    while True:
        if name in states:
            raise ValueError(f"state {name} is entered twice on a path without retries: a loop")
        states.append(name)
        state = asl["States"][name]
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            return states
        name = state["Next"]


def _is_callback(state: dict[str, Any]) -> bool:
    return state.get("Type") == "Task" and state.get("Resource") == CALLBACK_RESOURCE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--saga", type=Path, default=SAGA_FILE, help="saga definition (.saga.yaml)")
    parser.add_argument("--step-seconds", type=float, default=1.0, help="how long a participant takes per step, s")
    parser.add_argument("--failure-rate", type=float, default=0.1, help="share of sagas failing (0 for none)")
    args = parser.parse_args(argv)
    definition = load_definition(args.saga)
    capacities = model(definition, step_seconds=args.step_seconds, failure_rate=args.failure_rate)
    console = Console(width=max(shutil.get_terminal_size().columns, 120))
    console.print(table(definition, capacities, args.step_seconds))
    for entry in capacities:
        binding = entry.binding
        console.print(
            f"{entry.region_class.name}, {entry.use.label}: {binding.sagas_per_s:,.1f} sagas/s sustained, "
            f"bound by {binding.quota.name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
