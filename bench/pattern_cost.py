"""What a saga costs in each pattern: requests per saga by service, counted in one run, and the all-in AWS cost per
million sagas from them (prices: bench/prices.py, each with its source).

    python -m bench.pattern_cost [--sagas 20] [--assembly cdk.out]

Both order sagas (`OrderFulfillment` orchestrated, `OrderFulfillmentChoreographed` choreographed: the same steps and
participants) run their happy path on one local cloud, one pattern after the other. In each window the requests moto
serves are counted by service and operation, as AWS bills them:

- Step Functions: billed transitions, from each execution's history (its API calls are not billed per request);
- EventBridge: every PutEvents entry, and each deadline a schedule put on the bus; EventBridge Scheduler: each
  schedule fired (creating one is not billed);
- SQS: every request, those EventBridge makes to deliver to a rule's queue included; the pollers' empty receives are
  left out (they cost per queue and hour whatever the sagas, the same in both patterns);
- DynamoDB: each write and each read as one request unit (every item here is under 1 KB);
- Lambda: one request per batch handed to a function (a receive that returned messages);
- API Gateway: the saga's one POST.

The local runtime's own machinery (the schedule and execution watchers) is not counted. A saga's late marks (a
participant's record write after its answer) are waited for before each window closes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

from moto.core.botocore_stubber import BotocoreStubber
from moto.events import models as events_models

from bench.prices import PRICES, usd_per_million_sagas
from bench.throughput import RequestCounter
from local_runtime.cloud import FAKE_CREDENTIALS, LocalCloud
from saga_testkit.kit import project_definitions
from saga_testkit.sagas import LocalSagas
from statemachines import SagaDefinition

DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
DYNAMODB_READS = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
LOCAL_MACHINERY_THREADS = "lambda-events-"  # the local runtime's schedule and execution watchers
TIME_SCALE = 0.1
QUIET_SECONDS = 2.0  # after the last saga ended: its participants' late record marks land meanwhile


class OperationCounter(RequestCounter):
    """Requests the in-process moto serves, by "<service>.<operation>"; ReceiveMessage only when it returned messages
    (counted also as one Lambda request: a batch handed to a function); EventBridge's deliveries to SQS targets."""

    @contextmanager
    def installed(self) -> Iterator[OperationCounter]:
        process_request = BotocoreStubber.process_request
        send_to_sqs = events_models.Rule._send_to_sqs_queue
        counter = self

        def counted(stubber: BotocoreStubber, request: Any) -> Any:
            response = process_request(stubber, request)
            thread = threading.current_thread()
            if thread.ident in counter._skipped or thread.name.startswith(LOCAL_MACHINERY_THREADS):
                return response
            service = (urlsplit(request.url).hostname or "unknown").split(".")[0]
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else target
            operation = target.rsplit(".", 1)[-1] if target else request.method
            if operation == "ReceiveMessage":
                if not _returned_messages(response):
                    return response
                counter.add("lambda.Invoke")
            counter.add(f"{service}.{operation}")
            return response

        def delivered(rule: Any, *args: Any, **kwargs: Any) -> None:
            counter.add("sqs.SendMessage(EventBridge)")
            send_to_sqs(rule, *args, **kwargs)

        with (
            mock.patch.object(BotocoreStubber, "process_request", counted),
            mock.patch.object(events_models.Rule, "_send_to_sqs_queue", delivered),
        ):
            yield self

    def add(self, key: str, count: int = 1) -> None:
        with self._lock:
            self.counts[key] += count


def _returned_messages(response: Any) -> bool:
    try:
        _, _, body = response
        return bool(json.loads(body).get("Messages"))
    except (ValueError, TypeError, AttributeError):
        return False


def billable_units(requests: dict[str, float], *, transitions: float, schedules_fired: float) -> dict[str, float]:
    """Per saga, what each priced service bills, from the requests counted by "<service>.<operation>"."""

    def total(service: str, operations: tuple[str, ...] | None = None) -> float:
        return sum(
            count
            for key, count in requests.items()
            if key.split(".", 1)[0] == service and (operations is None or key.split(".", 1)[1] in operations)
        )

    return {
        "stepfunctions": transitions,
        "events": total("events", ("PutEvents",)) + schedules_fired,
        "scheduler": schedules_fired,
        "sqs": total("sqs"),
        "dynamodb.write": total("dynamodb", DYNAMODB_WRITES),
        "dynamodb.read": total("dynamodb", DYNAMODB_READS),
        "lambda": total("lambda", ("Invoke",)),
        "apigateway": 1.0,
    }


def measure(assembly: Path, sagas: int) -> dict[str, Any]:
    definitions = project_definitions()
    pair = [
        next(d for d in definitions if d.pattern == "orchestration" and d.name == "OrderFulfillment"),
        next(d for d in definitions if d.pattern == "choreography"),
    ]
    counter = OperationCounter()
    results: dict[str, Any] = {}
    with counter.installed(), LocalCloud(assembly, time_scale=TIME_SCALE) as cloud:
        for definition in pair:
            results[definition.pattern] = _window(cloud, definition, counter, sagas)
    return {"sagas": sagas, "time_scale": TIME_SCALE, "patterns": results}


def _window(cloud: LocalCloud, definition: SagaDefinition, counter: OperationCounter, sagas: int) -> dict[str, Any]:
    local = LocalSagas(cloud, definition, observe=False)
    local.kit.prepare(sagas)
    inputs = [local.kit.sample_input(number, random.Random(number)) for number in range(sagas)]
    fired_before = len(cloud.events.fired)
    before = counter.snapshot()
    for saga_input in inputs:
        local.start(saga_input["order_id"], saga_input)
    ids = [saga_input["order_id"] for saga_input in inputs]
    with counter.skip_this_thread():
        unfinished = local.wait(ids, timeout_seconds=300)
        if unfinished:
            raise RuntimeError(f"{definition.name}: {len(unfinished)} sagas did not finish")
        if definition.pattern == "choreography":
            # The last steps' deadlines fire after the saga completed: they are billed too
            longest = max(step.sla.timeout_seconds for step in definition.steps) * TIME_SCALE
            time.sleep(longest + 1.0)
        time.sleep(QUIET_SECONDS)
        statuses = {local.records.get(saga_id)["status"] for saga_id in ids}  # type: ignore[index]
        transitions = 0 if local.choreographed else sum(local.outcome(saga_id).transitions for saga_id in ids)
    if statuses != {"COMPLETED"}:
        raise RuntimeError(f"{definition.name}: sagas ended {statuses}, not all COMPLETED")
    counted = counter.snapshot() - before
    requests = {key: round(count / sagas, 2) for key, count in sorted(counted.items())}
    fired = (len(cloud.events.fired) - fired_before) / sagas
    units = billable_units(requests, transitions=transitions / sagas, schedules_fired=fired)
    cost = usd_per_million_sagas(units)
    return {
        "saga": definition.name,
        "requests_per_saga": requests,
        "billable_units_per_saga": {key: round(value, 2) for key, value in units.items()},
        "usd_per_million_sagas": {key: round(value, 2) for key, value in cost.items()},
        "usd_per_million_sagas_total": round(sum(cost.values()), 2),
    }


def measure_in_fresh_process(assembly: Path, sagas: int) -> dict[str, Any]:
    """Run the measurement in a new interpreter (its own moto, no state shared with the bench's other runs)."""
    import subprocess

    command = [sys.executable, "-m", "bench.pattern_cost", "--json", "--sagas", str(sagas), "--assembly", str(assembly)]
    completed = subprocess.run(
        command,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **FAKE_CREDENTIALS},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"pattern cost run failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def print_report(result: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    patterns = result["patterns"]
    table = Table(
        title=f"Happy order saga, per pattern ({result['sagas']} sagas each, one run): units and USD per saga"
    )
    table.add_column("service: unit")
    for pattern in patterns:
        table.add_column(f"{pattern} units/saga", justify="right")
        table.add_column(f"{pattern} USD/1M sagas", justify="right")
    for price in PRICES:
        row = [f"{price.service}: {price.unit}"]
        for figures in patterns.values():
            row += [f"{figures['billable_units_per_saga'][price.service]:g}"]
            row += [f"{figures['usd_per_million_sagas'][price.service]:.2f}"]
        table.add_row(*row)
    table.add_row(
        "total", *[cell for f in patterns.values() for cell in ("", f"{f['usd_per_million_sagas_total']:.2f}")]
    )
    console.print(table)
    prices = Table(title="Prices (us-east-1, on-demand)")
    for column in ("service", "unit", "USD", "per", "source"):
        prices.add_column(column)
    for price in PRICES:
        prices.add_row(price.service, price.unit, f"{price.usd:g}", f"{price.per:,}", price.source)
    console.print(prices)
    for pattern, figures in patterns.items():
        console.print(f"{pattern}: requests per saga by operation: {figures['requests_per_saga']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pattern_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=20)
    parser.add_argument("--assembly", type=Path, help="cloud assembly (cdk.out); synthesized when absent")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    os.environ.update(FAKE_CREDENTIALS)  # moto is in-process: no call may reach AWS
    if args.assembly is None:
        from local_runtime.synth import synthesize

        args.assembly = synthesize()
    result = measure(args.assembly, args.sagas)
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
