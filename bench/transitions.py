"""Billed state transitions per saga path, measured from execution histories on the local runtime.

    python -m bench.transitions

Runs the happy path and a permanent failure at each step of OrderFulfillment on the synthesized stack,
counts the transitions Step Functions would bill (states entered plus retry attempts) from each
execution's history, and prints them against the targets: at most one per step plus one on the happy
path, at most 2k for a failure at step k. Also prints the Step Functions cost per million sagas.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.figures import usd_per_million_sagas
from local_runtime.cloud import LocalCloud
from local_runtime.synth import synthesize
from saga_testkit.faults import Fault
from saga_testkit.sagas import LocalSagas
from statemachines import load_definition
from tests.sagas.order_fulfillment.kit import SAGA_FILE

ORDER = {
    "order_id": "bench-1",
    "customer": {"customer_id": "c-1", "email": "bench@example.com"},
    "items": [{"sku": "SKU-BENCH", "quantity": 1}],
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {"name": "B", "line1": "1 St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
}


@dataclass(frozen=True)
class PathTransitions:
    label: str
    failing_step: str | None  # None on the happy path
    status: str  # the saga record's status at the end
    transitions: int  # billed, counted from the execution history
    target: int  # at most: steps + 1 on the happy path, 2k for a failure at step k


def measure(assembly: Path | None = None, time_scale: float = 1.0) -> list[PathTransitions]:
    """Run the happy path and a permanent failure at each step on the stack in `assembly` (synthesized if None).

    Real SLA time by default: none of these paths waits on a timer, and on a loaded machine a scaled-down
    heartbeat window could time a step out and add a retry that is not the path's cost.
    """
    definition = load_definition(SAGA_FILE)
    paths: list[PathTransitions] = []
    with LocalCloud(assembly or synthesize(), time_scale=time_scale) as cloud:
        sagas = LocalSagas(cloud, definition)
        sagas.kit.seed_stock({"SKU-BENCH": 1000})
        plans = [("happy path", None, len(definition.steps) + 1)]
        plans += [
            (f"permanent failure at step {k} ({step.name})", step, 2 * k) for k, step in enumerate(definition.steps, 1)
        ]
        for label, failing, target in plans:
            saga_id = f"bench-{uuid.uuid4().hex[:8]}"
            if failing is not None:
                sagas.faults.plan(saga_id, failing.name, "action", Fault.permanent(failing.permanent_errors[0]))
            sagas.start(saga_id, ORDER)
            if sagas.wait([saga_id], timeout_seconds=60):
                raise RuntimeError(f"{label}: saga {saga_id} did not finish")
            outcome = sagas.outcome(saga_id)
            name = failing.name if failing is not None else None
            paths.append(PathTransitions(label, name, outcome.status, outcome.transitions, target))
    return paths


def table(paths: list[PathTransitions]) -> Table:
    result = Table(title="Billed state transitions per saga (OrderFulfillment, measured from execution histories)")
    for column in ("path", "saga status", "transitions", "target (at most)", "USD per million sagas"):
        result.add_column(column, justify="left" if column in ("path", "saga status") else "right")
    for path in paths:
        mark = "[green]✓" if path.transitions <= path.target else "[red]✗"
        cost = usd_per_million_sagas(path.transitions)
        result.add_row(path.label, path.status, f"{path.transitions} {mark}", str(path.target), f"{cost:,.2f}")
    return result


def main() -> int:
    console = Console(width=max(shutil.get_terminal_size().columns, 120))
    with console.status("synthesizing and deploying into moto..."):
        paths = measure()
    console.print(table(paths))
    return 0 if all(path.transitions <= path.target for path in paths) else 1


if __name__ == "__main__":
    sys.exit(main())
