"""Local end-to-end throughput: sagas per second on the local runtime, against a bare harness on the same moto.

    python -m bench.throughput --harness toolkit --assembly cdk.out --sagas 200
    python -m bench.throughput --harness bare --sagas 200 [--profile bare.prof]

Each harness runs in its own fresh process (the bench starts both), prints one JSON line and exits:
- `toolkit`: the synthesized stack on `LocalCloud` (participant handlers with the toolkit, saga records,
  idempotency, heartbeats, EventBridge schedules), sagas started through `SagaStarter`; the stock and money
  are reconciled afterwards, and a saga that did not complete or a reconciliation problem fails the run.
- `bare`: the same generated ASL (statemachines/sagas/*.asl.json, its `${...}` placeholders filled with queues and a
  table of the same names' roles) on the same moto with the same patches, and a minimal poller per queue that
  answers every command with SendTaskSuccess: no toolkit, no records kept, no checks. (Its table holds a bare
  record per saga, written before the clock starts: the RecordCompleted state marks the steps of the one it finds.)

Both use the same time scale, the same number of poller threads per queue, the same batch size and long-poll
wait, start the sagas one after the other from one thread, and take the wall time from the first start until a
poll (every 0.2 s, the same loop) sees every execution stopped. Both also count the requests moto serves in that
window, by service, without the waiting loop's own polls: what one saga costs each harness in API calls.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
from moto.core.botocore_stubber import BotocoreStubber

from local_runtime.cloud import DEFAULT_TIME_SCALE, FAKE_CREDENTIALS, LocalCloud
from saga_testkit.observe import wait_until_finished
from saga_testkit.sagas import LocalSagas
from statemachines import load_definition
from statemachines.compiler import substitution_keys
from tests.sagas.order_fulfillment.kit import SAGA_FILE

REPO = Path(__file__).resolve().parent.parent
GENERATED_ASL = SAGA_FILE.with_name("order_fulfillment.asl.json")
CONSUMERS_PER_QUEUE = 4  # LocalCloud's default: poller threads (warm Lambda environments) per queue
BATCH_SIZE = 10  # infra/constants.py BATCH_SIZE: messages per receive, as the event source mappings use
LONG_POLL_SECONDS = 1  # LocalCloud's ReceiveMessage WaitTimeSeconds
SKU = "SKU-BENCH"
BARE_SAGA_TABLE = "bare-sagas"
WAIT_SECONDS = 300  # give up on a run after this long: a hung saga fails the bench instead of hanging it


class RequestCounter:
    """Requests the in-process moto serves, by service (the endpoint's first label: dynamodb, sqs, states, ...).

    Requests from the thread that sets `skip_this_thread` are not counted while it is set: a harness's waiting loop
    polls as often as it likes, and what a saga costs is the starts, the state machine and the participants."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._skipped: set[int] = set()

    @contextmanager
    def installed(self) -> Iterator[RequestCounter]:
        process_request = BotocoreStubber.process_request
        counter = self

        def counted(stubber: BotocoreStubber, request: Any) -> Any:
            if threading.get_ident() not in counter._skipped:
                service = (urlsplit(request.url).hostname or "unknown").split(".")[0]
                with counter._lock:
                    counter.counts[service] += 1
            return process_request(stubber, request)

        with mock.patch.object(BotocoreStubber, "process_request", counted):
            yield self

    @contextmanager
    def skip_this_thread(self) -> Iterator[None]:
        self._skipped.add(threading.get_ident())
        try:
            yield
        finally:
            self._skipped.discard(threading.get_ident())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)


def per_saga(before: Counter[str], after: Counter[str], sagas: int) -> dict[str, float]:
    """Requests per saga by service over a window, from two snapshots of a RequestCounter."""
    return {service: round(count / sagas, 2) for service, count in sorted((after - before).items())}


def order(number: int) -> dict[str, Any]:
    return {
        "order_id": f"bench-{number:05d}",
        "customer": {"customer_id": f"c-{number}", "email": f"bench{number}@example.com"},
        "items": [{"sku": SKU, "quantity": 1}],
        "payment": {"card_token": "tok_visa"},
        "shipping_address": {"name": "B", "line1": "1 St", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    }


def run_toolkit(assembly: Path, sagas: int, time_scale: float) -> dict[str, Any]:
    definition = load_definition(SAGA_FILE)
    counter = RequestCounter()
    with (
        counter.installed(),
        LocalCloud(assembly, time_scale=time_scale, consumers_per_queue=CONSUMERS_PER_QUEUE) as cloud,
    ):
        local = LocalSagas(cloud, definition)
        local.kit.seed_stock({SKU: sagas})
        saga_ids = [f"tp-{uuid.uuid4().hex[:12]}" for _ in range(sagas)]
        before = counter.snapshot()
        started = time.perf_counter()
        for number, saga_id in enumerate(saga_ids):
            local.start(saga_id, order(number))
        with counter.skip_this_thread():
            unfinished = local.wait(saga_ids, timeout_seconds=WAIT_SECONDS)
        wall = time.perf_counter() - started
        requests = per_saga(before, counter.snapshot(), sagas)
        if unfinished:
            raise RuntimeError(f"{len(unfinished)} of {sagas} sagas did not finish, e.g. {unfinished[:3]}")
        not_completed = [s for s in saga_ids if local.records.get(s)["status"] != "COMPLETED"]  # type: ignore[index]
        if not_completed:
            raise RuntimeError(f"{len(not_completed)} sagas did not complete, e.g. {not_completed[:3]}")
        invariants = local.check()
        if not invariants.ok:
            raise RuntimeError("the invariant check failed: " + "; ".join(invariants.problems[:5]))
    return {"harness": "toolkit", "sagas": sagas, "wall_s": wall, "reconciled": True, "requests_per_saga": requests}


def run_bare(sagas: int, time_scale: float) -> dict[str, Any]:
    from moto import mock_aws

    from local_runtime.moto_workarounds import all_workarounds

    counter = RequestCounter()
    with ExitStack() as stack:
        stack.enter_context(counter.installed())
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        stack.enter_context(all_workarounds(time_scale))
        state_machine_arn, queue_urls = _deploy_bare(load_definition(SAGA_FILE))
        stop = threading.Event()
        stack.enter_context(_bare_pollers(queue_urls, stop))
        sfn = boto3.client("stepfunctions")
        saga_ids = [f"tp-{uuid.uuid4().hex[:12]}" for _ in range(sagas)]
        _seed_bare_records(saga_ids, load_definition(SAGA_FILE))
        before = counter.snapshot()
        started = time.perf_counter()
        for number, saga_id in enumerate(saga_ids):
            sfn.start_execution(
                stateMachineArn=state_machine_arn,
                name=saga_id,
                input=json.dumps({"input": order(number), "results": {}}, separators=(",", ":")),
            )
        # The bare harness keeps no records: an execution that stopped is finished.
        with counter.skip_this_thread():
            unfinished = wait_until_finished(
                lambda _: {"status": "COMPLETED"}, state_machine_arn, saga_ids, timeout_seconds=WAIT_SECONDS
            )
        wall = time.perf_counter() - started
        requests = per_saga(before, counter.snapshot(), sagas)
        stop.set()
        if unfinished:
            raise RuntimeError(f"{len(unfinished)} of {sagas} bare executions did not finish")
    return {"harness": "bare", "sagas": sagas, "wall_s": wall, "reconciled": False, "requests_per_saga": requests}


def _deploy_bare(definition: Any) -> tuple[str, list[str]]:
    """The generated ASL with its placeholders filled: one queue per command, one table for the record states."""
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    asl = GENERATED_ASL.read_text(encoding="utf-8")
    queue_urls = []
    for key in substitution_keys(definition):
        if key.endswith("QueueUrl"):
            url = sqs.create_queue(QueueName=f"bare-{key.removesuffix('QueueUrl')}")["QueueUrl"]
            queue_urls.append(url)
            value = url
        else:
            value = BARE_SAGA_TABLE
            dynamodb.create_table(
                TableName=value,
                KeySchema=[{"AttributeName": "saga_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "saga_id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        asl = asl.replace(f"${{{key}}}", value)
    arn = boto3.client("stepfunctions").create_state_machine(
        name="BareOrderFulfillment", definition=asl, roleArn="arn:aws:iam::123456789012:role/bare"
    )["stateMachineArn"]
    return arn, queue_urls


def _seed_bare_records(saga_ids: list[str], definition: Any) -> None:
    """A record per saga with nothing but its steps, as RecordCompleted expects to find (it marks each SUCCEEDED)."""
    table = boto3.resource("dynamodb").Table(BARE_SAGA_TABLE)
    with table.batch_writer() as batch:
        for saga_id in saga_ids:
            batch.put_item(Item={"saga_id": saga_id, "steps": {step.name: {} for step in definition.steps}})


@contextmanager
def _bare_pollers(queue_urls: list[str], stop: threading.Event) -> Iterator[None]:
    def poll(queue_url: str) -> None:
        sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
        while not stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=BATCH_SIZE, WaitTimeSeconds=LONG_POLL_SECONDS
            ).get("Messages", [])
            for message in messages:
                sfn.send_task_success(taskToken=json.loads(message["Body"])["task_token"], output="{}")
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )

    threads = [
        threading.Thread(target=poll, args=(url,), name=f"bare-{index}", daemon=True)
        for url in queue_urls
        for index in range(CONSUMERS_PER_QUEUE)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=LONG_POLL_SECONDS + 5)


def measure_in_fresh_process(
    harness: str, *, sagas: int, time_scale: float, assembly: Path | None = None, profile: Path | None = None
) -> dict[str, Any]:
    """Run one harness in a new interpreter (no state shared with the other run) and return its JSON line."""
    import subprocess

    command = [sys.executable, "-m", "bench.throughput", "--harness", harness, "--sagas", str(sagas)]
    command += ["--time-scale", str(time_scale)]
    if assembly is not None:
        command += ["--assembly", str(assembly)]
    if profile is not None:
        command += ["--profile", str(profile)]
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, **FAKE_CREDENTIALS}, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{harness} throughput run failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--harness", choices=("toolkit", "bare"), required=True)
    parser.add_argument("--sagas", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE)
    parser.add_argument("--assembly", type=Path, help="cloud assembly (cdk.out) for the toolkit harness")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run to this file")
    args = parser.parse_args(argv)
    os.environ.update(FAKE_CREDENTIALS)  # moto is in-process: no call may reach AWS
    if args.harness == "toolkit" and args.assembly is None:
        from local_runtime.synth import synthesize

        args.assembly = synthesize()
    run: Callable[[], dict[str, Any]] = (
        (lambda: run_toolkit(args.assembly, args.sagas, args.time_scale))
        if args.harness == "toolkit"
        else (lambda: run_bare(args.sagas, args.time_scale))
    )
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = run()
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
