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
from pathlib import Path

from rich.console import Console
from rich.table import Table

from local_runtime.cloud import LocalCloud
from local_runtime.faults import Fault
from local_runtime.sagas import LocalSagas
from local_runtime.synth import synthesize
from statemachines import load_definition

ORDER_SAGA = Path(__file__).resolve().parent.parent / "statemachines" / "order_fulfillment.saga.yaml"
USD_PER_TRANSITION = 0.025 / 1000  # Step Functions Standard, most regions
ORDER = {
    "order_id": "bench-1",
    "customer": {"customer_id": "c-1", "email": "bench@example.com"},
    "items": [{"sku": "SKU-BENCH", "quantity": 1, "unit_price_cents": 1000}],
    "payment": {"card_token": "tok_visa"},
    "shipping_address": {"name": "B", "line1": "1 St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
}


def main() -> int:
    console = Console(width=max(shutil.get_terminal_size().columns, 120))
    definition = load_definition(ORDER_SAGA)
    with console.status("synthesizing and deploying into moto..."), LocalCloud(synthesize()) as cloud:
        sagas = LocalSagas(cloud, definition)
        sagas.seed_stock({"SKU-BENCH": 1000})
        paths = [("happy path", None, len(definition.steps) + 1)]
        paths += [
            (f"permanent failure at step {k} ({step.name})", step, 2 * k) for k, step in enumerate(definition.steps, 1)
        ]
        rows = []
        for label, failing, target in paths:
            saga_id = f"bench-{uuid.uuid4().hex[:8]}"
            if failing is not None:
                sagas.faults.plan(saga_id, failing.name, "action", Fault.permanent(failing.permanent_errors[0]))
            sagas.start(saga_id, ORDER)
            if sagas.wait([saga_id], timeout_seconds=60):
                console.print(f"[red]{label}: did not finish")
                return 1
            outcome = sagas.outcome(saga_id)
            rows.append((label, outcome.status, outcome.transitions, target))
    table = Table(title=f"Billed state transitions per saga ({definition.name}, measured)")
    for column in ("path", "saga status", "transitions", "target (at most)", "USD per million sagas"):
        table.add_column(column, justify="left" if column in ("path", "saga status") else "right")
    for label, status, transitions, target in rows:
        mark = "[green]✓" if transitions <= target else "[red]✗"
        cost = transitions * USD_PER_TRANSITION * 1_000_000
        table.add_row(label, status, f"{transitions} {mark}", str(target), f"{cost:,.2f}")
    console.print(table)
    return 0 if all(transitions <= target for _, _, transitions, target in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
