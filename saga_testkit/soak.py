"""`make soak`: many sagas at once through the signed saga API, with random faults drawn from a printed seed.

`--burst N` (`make soak BURST=N`) runs the burst soak instead: N healthy sagas sent at once by clients that honour
Retry-After, the overload test (its figures and clients: saga_testkit.burst).

Each saga is healthy, has one fault, or a few, drawn per (saga, step, action|compensation) from every fault kind the
test kit injects (saga_testkit.faults); its input is its kit's sample input (saga_testkit.kit). Afterwards the
evidence is read back from the cloud itself (saga records, execution histories, queues, DLQs and their alarms, the
stuck-sagas queue, the saga's invariant check) and checked by saga_testkit.soak_checks. Exits 1 with the list of
violations when anything fails; replay a run with `--seed`.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import random
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from rich.console import Console
from rich.table import Table

from local_runtime.cloud import LocalCloud
from local_runtime.http_api import SignedApiClient, serving
from local_runtime.interrupt import exits_quietly_on_ctrl_c
from local_runtime.synth import synthesize
from saga_ops.deployment import Deployment
from saga_records import PARKED_STATUSES, SagaStatus, metric_names
from saga_testkit.burst import (
    BURST_CLIENTS,
    GIVE_UP_SECONDS,
    RETRIED_STATUSES,
    BurstFigures,
    emf_totals,
    retry_after,
    send_burst,
    start_until_answered,
)
from saga_testkit.command_evidence import command_evidence, command_identity
from saga_testkit.faults import Fault
from saga_testkit.kit import project_definition
from saga_testkit.observe import execution_arn, wait_until_finished
from saga_testkit.sagas import LocalSagas, named
from saga_testkit.soak_checks import (
    DeadLetter,
    DlqAlarm,
    SentCommand,
    SoakEvidence,
    SoakVerdict,
    check,
    evaluate_alarm,
)
from statemachines import SagaDefinition, Step

SOAK_TIME_SCALE = 0.25  # 1 s of SLA lasts 250 ms: a 20 s heartbeat 5 s, the 120 s carrier timeout 30 s
STARTS_PER_SECOND = 20.0  # at most; starts are also held back while the participant queues have a backlog
BACKLOG_PER_CONSUMER = 3  # commands waiting on all participant queues, per warm environment, before starts wait
BACKLOG_POLL_SECONDS = 0.05
MAX_IN_FLIGHT = 12  # sagas running at once; 40 let commands queue past their heartbeat windows (90 of 100 parked)
PROGRESS_EVERY = 100  # sagas between progress lines
CONSUMERS_PER_QUEUE = 4  # warm environments per participant function
CLIENT_THREADS = 8  # concurrent API callers
HEALTHY_SHARE, ONE_FAULT_SHARE = 0.6, 0.3  # the rest get two or three faults
FINISH_TIMEOUT_SECONDS = 600
DETECTOR_WAIT_PERIODS = 4  # detector schedule periods to wait for its reports of the parked sagas
MIN_CONSOLE_WIDTH = 120


@dataclass(frozen=True)
class FaultChoice:
    """One kind of fault the soak draws: how to make it for a step's action or compensation."""

    name: str
    make: Callable[[random.Random, Step, str, float], Fault]
    breaks_a_reply: bool = False  # the task may time out by design (no reply, a crash, a delay past its timeout)
    # The answer never comes: only the command's timeout ends the wait (a crashed command comes back, a delay ends).
    answer_lost_for_good: bool = False


def _permanent(rng: random.Random, step: Step, kind: str, time_scale: float) -> Fault:
    errors = step.permanent_errors or ["Injected.Permanent"]
    return Fault.permanent(rng.choice(errors))


def _transient(rng: random.Random, step: Step, kind: str, time_scale: float) -> Fault:
    retry = step.retry if kind == "action" else step.effective_compensation_retry
    # A participant reports its own error names; "States." ones (a compensation also retries States.Timeout) are
    # Step Functions' alone.
    errors = [error for error in retry.errors if not error.startswith("States.")]
    if not errors:  # a step without transient errors: what it raises is a permanent failure
        return _permanent(rng, step, kind, time_scale)
    # Up to one more failure than the retries allow, so some sagas run out of retries.
    return Fault.transient(rng.choice(errors), times=rng.randint(1, retry.max_attempts + 1))


def _delay(rng: random.Random, step: Step, kind: str, time_scale: float) -> Fault:
    # Either slow but within the task's timeout (heartbeats keep it alive), or past it.
    factor = rng.choice([0.5, 1.3])
    return Fault.delay(step.sla.timeout_seconds * time_scale * factor)


FAULT_MENU: list[FaultChoice] = [
    FaultChoice("permanent", _permanent),
    FaultChoice("transient", _transient),
    FaultChoice(
        "lost_reply", lambda rng, step, kind, scale: Fault.lost_reply(), breaks_a_reply=True, answer_lost_for_good=True
    ),
    FaultChoice("crash_after_acting", lambda rng, step, kind, scale: Fault.crash_after_acting(), breaks_a_reply=True),
    FaultChoice("delay", _delay, breaks_a_reply=True),
    FaultChoice(
        "duplicate_delivery", lambda rng, step, kind, scale: Fault.duplicate_delivery(copies=rng.randint(1, 2))
    ),
    FaultChoice(
        "poison_message",
        lambda rng, step, kind, scale: Fault.poison_message(),
        breaks_a_reply=True,
        answer_lost_for_good=True,
    ),
]


def fault_menu(definition: SagaDefinition, kind: str) -> list[FaultChoice]:
    """The faults an (action|compensation) cell draws from: all, but for a choreographed saga's compensation those
    whose answer is lost for good. A choreographed compensation has no deadline (README: Orchestration or
    choreography, Heartbeats), so its saga would stay COMPENSATING until the stuck-saga detector reports it past the
    saga's deadline, hours of SLA later, not an outcome the soak can wait for."""
    if definition.pattern == "choreography" and kind == "compensation":
        return [choice for choice in FAULT_MENU if not choice.answer_lost_for_good]
    return FAULT_MENU


@dataclass(frozen=True)
class PlannedFault:
    step: str
    kind: str
    choice: str
    fault: Fault


def plan_faults(
    rng: random.Random, definition: SagaDefinition, saga_ids: list[str], time_scale: float
) -> dict[str, list[PlannedFault]]:
    """Per saga: none (most), one, or two or three faults on distinct (step, action|compensation) cells."""
    cells = [(step, kind) for step in definition.steps for kind in ("action", "compensation") if step.compensation]
    plan: dict[str, list[PlannedFault]] = {}
    for saga_id in saga_ids:
        draw = rng.random()
        count = 0 if draw < HEALTHY_SHARE else 1 if draw < HEALTHY_SHARE + ONE_FAULT_SHARE else rng.randint(2, 3)
        plan[saga_id] = []
        for step, kind in rng.sample(cells, count):
            choice = rng.choice(fault_menu(definition, kind))
            plan[saga_id].append(PlannedFault(step.name, kind, choice.name, choice.make(rng, step, kind, time_scale)))
    return plan


# A crashed participant's command is accounted for only once it came back, a visibility timeout after its delivery
# (18 s at the test's clock), and a poisoned one once it reached its DLQ, maxReceiveCount receives after its first (a
# second apart: saga_testkit.faults): the longest waits of any fault, whenever their saga ran.
SLOWEST_TO_ACCOUNT_FOR = frozenset({"crash_after_acting", "poison_message"})


def start_order(saga_ids: list[str], plan: dict[str, list[PlannedFault]]) -> list[str]:
    """The sagas in the order the soak starts them: those with a fault slowest to account for first, so that wait
    overlaps the other sagas' runs instead of following the last of them. Otherwise in plan order (stable)."""
    return sorted(saga_ids, key=lambda saga_id: not any(p.choice in SLOWEST_TO_ACCOUNT_FOR for p in plan[saga_id]))


@dataclass
class Measurements:
    started_at: float = 0.0
    starts_done_at: float = 0.0
    finished_at: float = 0.0
    max_running: int = 0
    held_back_seconds: float = 0.0  # starts waited this long for the consumers to catch up
    refused: list[str] = field(default_factory=list)
    transport_retries: int = 0  # starts sent again after a timeout, a dropped connection, a 502 or a 504
    retried: int = 0  # starts answered 429 or 503 and sent again after their Retry-After
    max_backlog: Counter[str] = field(default_factory=Counter)  # queue label -> most messages seen waiting


class BacklogSampler:
    """Samples the participant queues' depth while the soak runs: how far the consumers fall behind.

    A command's heartbeat clock runs while it waits on its queue, where no participant can beat for it, so the soak
    holds new starts back while the backlog is above what the warm environments take up at once."""

    def __init__(
        self,
        queues: dict[str, str],
        running: Callable[[], int],
        into: Counter[str],
        submitted: Callable[[], int],
        every_seconds: float = 0.25,
    ) -> None:
        """`running`: how many sagas of the type are in flight now (its pattern's evidence source says)."""
        self.queues, self.into, self.every = queues, into, every_seconds
        self._running, self._submitted = running, submitted
        self.submitted_at_sample = 0  # starts submitted when the last sample began: later ones it cannot have seen
        self.backlog = 0  # messages on all participant queues, at the last sample
        self.running = 0  # executions running, at the last sample
        self.max_running = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-backlog", daemon=True)

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.wait(self.every):
            total = 0
            for label, url in self.queues.items():
                # Waiting to be received: no participant beats for these. Taken ones beat (their batch's too), and
                # one waiting out a visibility timeout (poisoned, or its consumer crashed) costs nothing until then.
                depth = _waiting(sqs, url)
                self.into[label] = max(self.into[label], depth)
                total += depth
            self.backlog = total
            submitted_now = self._submitted()
            self.running = self._running()
            self.submitted_at_sample = submitted_now
            self.max_running = max(self.max_running, self.running)

    def running_at_least(self, submitted: int) -> int:
        """Sagas running now, counting the starts submitted since the last sample (a sample can take seconds)."""
        return self.running + max(0, submitted - self.submitted_at_sample)


@contextmanager
def local_api(
    definition: SagaDefinition, *, time_scale: float, consumers: int, console: Console
) -> Iterator[tuple[LocalSagas, SignedApiClient]]:
    """The synthesized stack on a local cloud with its signed API up: the saga's harness and an API client."""
    with local_apis([definition], time_scale=time_scale, consumers=consumers, console=console) as ([sagas], client):
        yield sagas, client


@contextmanager
def local_apis(
    definitions: list[SagaDefinition], *, time_scale: float, consumers: int, console: Console
) -> Iterator[tuple[list[LocalSagas], SignedApiClient]]:
    """Several sagas' harnesses on one local cloud (each choreographed one's bus observer in place before any saga
    starts), and an API client."""
    with console.status("Synthesizing the CDK app (cdk synth)...") as status:
        cloud = LocalCloud(
            synthesize(),
            time_scale=time_scale,
            consumers_per_queue=consumers,
            progress=lambda phase: status.update(f"Deploying the template into moto: {phase}..."),
        )
        cloud.start()
    try:
        with serving(cloud) as (_api, client):
            yield [LocalSagas(cloud, definition) for definition in definitions], client
    finally:
        cloud.stop()


def run(
    counts: list[tuple[SagaDefinition, int]],
    seed: int,
    *,
    time_scale: float,
    rate: float,
    consumers: int,
    max_in_flight: int,
    console: Console,
) -> int:
    """`make soak`: its own synth and cloud, then each saga's soak in turn on it (`counts`: the saga and how many),
    each with its own verdict; 0 when every check of every saga held."""
    several = len(counts) > 1
    for definition, count in counts:
        console.print(
            f"[bold]Random-fault soak:[/] {count} {definition.name} sagas, seed {seed} (replay with --seed {seed})"
        )
    failed = 0
    definitions = [definition for definition, _ in counts]
    with local_apis(definitions, time_scale=time_scale, consumers=consumers, console=console) as (harnesses, client):
        for sagas, (definition, count) in zip(harnesses, counts, strict=True):
            prefix = f"soak-{definition.name}" if several else "soak"
            outcome = soak(
                sagas, client, count, seed, rate=rate, max_in_flight=max_in_flight, console=console, id_prefix=prefix
            )
            if outcome.violations:
                failed += 1
                console.print(f"[bold red]✗ {len(outcome.violations)} violation(s) ({definition.name}, seed {seed}):")
                for violation in outcome.violations:
                    console.print(f"[red]  ✗ {violation}", soft_wrap=True)
                continue
            console.print(
                f"[bold green]✓ soak seed {seed}: {count} {definition.name} sagas terminal or parked and flagged; the "
                f"invariant check holds; every command accounted for ({outcome.fault_injections} fault injections).",
                soft_wrap=True,  # one line, for whoever greps the output
            )
    return 1 if failed else 0


@dataclass(frozen=True)
class SoakOutcome:
    violations: list[str]  # empty: every check held
    fault_injections: int


def soak(
    sagas: LocalSagas,
    client: SignedApiClient,
    count: int,
    seed: int,
    *,
    rate: float = STARTS_PER_SECOND,
    max_in_flight: int = MAX_IN_FLIGHT,
    console: Console,
    id_prefix: str = "soak",
) -> SoakOutcome:
    """Run `count` sagas with faults drawn from `seed` through the API on a running cloud, then check the evidence.

    The checks cover this soak's sagas (the cloud may have run others before) and the whole cloud's stock, money,
    queues and DLQs."""
    sagas.kit.prepare(count)  # the soak is about faults: its sample inputs never run out of anything
    rng = random.Random(seed)
    saga_ids = [f"{id_prefix}-{seed}-{number:05d}" for number in range(1, count + 1)]
    plan = plan_faults(rng, sagas.definition, saga_ids, sagas.cloud.time_scale)
    for saga_id, faults in plan.items():
        for planned in faults:
            sagas.faults.plan(saga_id, planned.step, planned.kind, planned.fault)
    inputs = {
        saga_id: named(sagas.definition, saga_id, sagas.kit.sample_input(number, rng))
        for number, saga_id in enumerate(saga_ids, start=1)
    }
    path = sagas.definition.route_path
    queues = {mapping.function.name: mapping.queue_url for mapping in sagas.cloud.mappings}
    measured = Measurements()
    accepted: list[str] = []
    accepted_answers: dict[str, Any] = {}  # saga id -> the body of its 202, for a violation's evidence
    submitted: list[str] = []
    finished: list[str] = []

    def on_finished(saga_id: str) -> None:
        finished.append(saga_id)
        if len(finished) % PROGRESS_EVERY == 0:
            console.log(f"{len(finished)}/{count} finished")

    lock = threading.Lock()

    def start(saga_id: str) -> None:
        body, key = inputs[saga_id]
        give_up_at = time.monotonic() + GIVE_UP_SECONDS

        def unanswered() -> None:
            with lock:
                measured.transport_retries += 1

        while True:
            answer = start_until_answered(client, path, body, key, give_up_at, on_unanswered=unanswered)
            if isinstance(answer, str):  # a violation to report, not a lost start slot
                with lock:
                    measured.refused.append(f"{saga_id}: POST /{path} {answer}")
                return
            if answer.status not in RETRIED_STATUSES or time.monotonic() > give_up_at:
                break
            # The front door cannot take it now (429) or could not start it yet (503): come back as told.
            with lock:
                measured.retried += 1
            time.sleep(retry_after(answer))
        with lock:
            if answer.status == 202:
                accepted.append(saga_id)
                accepted_answers[saga_id] = answer.body
            else:
                measured.refused.append(f"{saga_id}: POST /{path} answered {answer.status} {answer.body}")

    max_backlog = BACKLOG_PER_CONSUMER * sagas.cloud.consumers_per_queue
    source = command_evidence(sagas)
    with BacklogSampler(queues, source.running, measured.max_backlog, lambda: len(submitted)) as sampler:
        measured.started_at = time.monotonic()
        with (
            console.status(f"Starting {count} sagas through the API, at most {rate:g}/s..."),
            ThreadPoolExecutor(CLIENT_THREADS) as pool,
        ):
            next_start = measured.started_at
            for number, saga_id in enumerate(start_order(saga_ids, plan)):
                if number % PROGRESS_EVERY == 0:
                    console.log(
                        f"starting saga {number + 1}/{count}: {sampler.running} running, backlog {sampler.backlog}"
                    )
                # Back-pressure: the consumers are behind, or enough sagas run already (each one's threads share
                # this process's CPU with the consumers; a task's heartbeat clock does not wait for them).
                while sampler.backlog > max_backlog or sampler.running_at_least(len(submitted)) >= max_in_flight:
                    measured.held_back_seconds += BACKLOG_POLL_SECONDS
                    time.sleep(BACKLOG_POLL_SECONDS)
                time.sleep(max(0.0, next_start - time.monotonic()))
                next_start = max(next_start, time.monotonic() - 1.0) + 1 / rate
                with lock:
                    submitted.append(saga_id)
                pool.submit(start, saga_id)
        measured.starts_done_at = time.monotonic()
        with console.status("Waiting for every saga to finish..."):
            unfinished = wait_until_finished(
                sagas.records.get,
                sagas.state_machine_arn,
                list(accepted),  # a saga never accepted cannot finish: its refusal is the violation
                timeout_seconds=FINISH_TIMEOUT_SECONDS,
                poll_seconds=1.0,
                on_finished=on_finished,
            )
        measured.finished_at = time.monotonic()
        measured.max_running = sampler.max_running
    with console.status("Waiting for the queues to drain and the detector to flag the parked sagas..."):
        _wait_until_drained(list(queues.values()), sagas.cloud)
        reports = _stuck_reports(sagas, saga_ids)
    evidence = gather_evidence(sagas, accepted, saga_ids, reports)
    verdict = check(evidence)
    violations = measured.refused + [f"saga {saga_id} did not finish in time" for saga_id in unfinished]
    violations += verdict.violations
    violations += _lost_after_acceptance(sagas, set(accepted) - set(evidence.statuses), accepted_answers)
    _print_summary(console, sagas, plan, evidence, verdict, measured, queues, count, seed)
    # The cloud's injector counts every saga it ran (an earlier soak's on the same cloud too): this soak's only.
    return SoakOutcome(violations, sum(1 for saga_id, *_ in sagas.faults.injected if saga_id in plan))


def _lost_after_acceptance(sagas: LocalSagas, saga_ids: set[str], answers: dict[str, Any]) -> list[str]:
    """Where each accepted saga without a record got to: its 202's body and its execution (orchestrated), the
    evidence of whether it was started and its record lost afterwards, or never written."""
    found = []
    sfn = boto3.client("stepfunctions")
    for saga_id in sorted(saga_ids):
        execution = "no execution (choreographed)"
        if sagas.state_machine_arn is not None:
            try:
                described = sfn.describe_execution(executionArn=execution_arn(sagas.state_machine_arn, saga_id))
                execution = f"execution {described['status']}, started {described['startDate']:%H:%M:%S.%f}"
            except sfn.exceptions.ExecutionDoesNotExist:
                execution = "no execution"
        found.append(f"saga {saga_id}: its 202 answered {answers.get(saga_id)!r}; {execution}")
    return found


def _wait_until_drained(queue_urls: list[str], cloud: LocalCloud) -> None:
    """A crashed participant's message comes back after its visibility timeout, and a choreographed step's deadline
    schedule fires up to the step's timeout after it started, whether or not the step answered (the tracker then
    consumes a TimedOut that changes nothing): wait for the last redeliveries and the last deadlines."""
    sqs, scheduler = boto3.client("sqs"), boto3.client("scheduler")
    visibility = max(mapping.visibility_timeout_seconds for mapping in cloud.mappings) * cloud.time_scale
    deadline = time.monotonic() + visibility * 6
    while time.monotonic() < deadline:
        if not _pending_schedules(scheduler) and not any(_depth(sqs, url) for url in queue_urls):
            return
        time.sleep(0.5)


def _pending_schedules(scheduler: Any) -> int:
    return sum(len(page.get("Schedules", [])) for page in scheduler.get_paginator("list_schedules").paginate())


def _waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _stuck_reports(sagas: LocalSagas, saga_ids: list[str]) -> list[dict[str, Any]]:
    """Drain the stuck-sagas queue until every parked saga of this soak has a report, or the detector had its
    chances."""
    deployment = Deployment.load(sagas.cloud.stack_name)
    sqs = boto3.client("sqs")
    ours = set(saga_ids)
    parked = {
        record["saga_id"]: record["status"]
        for status in PARKED_STATUSES
        for record in sagas.records.in_status(status)
        if record["saga_id"] in ours
    }
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + DETECTOR_WAIT_PERIODS * 60 * sagas.cloud.time_scale
    while True:
        messages = sqs.receive_message(
            QueueUrl=deployment.stuck_sagas_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            reports.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=deployment.stuck_sagas_queue_url, ReceiptHandle=message["ReceiptHandle"])
        reported = {(report["saga_id"], report["status"]) for report in reports}
        if not messages and (set(parked.items()) <= reported or time.monotonic() > deadline):
            return reports


def gather_evidence(
    sagas: LocalSagas, accepted: list[str], saga_ids: list[str], reports: list[dict[str, Any]]
) -> SoakEvidence:
    """Read what happened from the cloud: records, the commands sent (execution histories, or the saga bus), queues,
    DLQs and alarms, reconciliation."""
    ours = set(saga_ids)
    statuses = {record["saga_id"]: record["status"] for record in sagas.records.scan_all() if record["saga_id"] in ours}
    commands = command_evidence(sagas).commands(saga_id for saga_id in saga_ids if saga_id in statuses)
    sqs = boto3.client("sqs")
    deployment = Deployment.load(sagas.cloud.stack_name)
    dlq_alarms = evaluate_dlq_alarms(sagas.cloud, deployment, sqs)
    stuck: dict[str, set[str]] = {}
    for report in reports:
        stuck.setdefault(report["saga_id"], set()).add(report["status"])
    return SoakEvidence(
        accepted=accepted,
        statuses=statuses,
        commands=commands,
        left_on_queues={mapping.queue_url: _depth(sqs, mapping.queue_url) for mapping in sagas.cloud.mappings},
        dead_letters=[letter for queue in deployment.dead_letter_queues for letter in _dead_letters(sqs, queue)],
        dlq_alarms=dlq_alarms,
        stuck_reports=stuck,
        invariant_problems=sagas.check().problems,
    )


def evaluate_dlq_alarms(cloud: LocalCloud, deployment: Deployment, sqs: Any) -> list[DlqAlarm]:
    """moto deploys no CloudWatch alarms: evaluate the template's DLQ depth alarms on the queues' depths now."""
    resources = boto3.client("cloudformation").list_stack_resources(StackName=cloud.stack_name)[
        "StackResourceSummaries"
    ]
    url_of = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::SQS::Queue"
    }
    alarm_of_url: dict[str, tuple[str, dict[str, Any]]] = {}
    for logical_id, resource in cloud.template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] != "AWS::CloudWatch::Alarm" or properties.get("Namespace") != "AWS/SQS":
            continue
        if properties.get("MetricName") == "ApproximateAgeOfOldestMessage":  # a command queue's, not a DLQ's
            continue
        for dimension in properties.get("Dimensions", []):
            queue_ref = (
                dimension["Value"].get("Fn::GetAtt", [None])[0] if isinstance(dimension["Value"], dict) else None
            )
            if dimension["Name"] == "QueueName" and queue_ref in url_of:
                alarm_of_url[url_of[queue_ref]] = (logical_id, properties)
    alarms = []
    for queue in deployment.dead_letter_queues:
        depth = int(
            sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        if queue.url not in alarm_of_url:
            alarms.append(DlqAlarm(queue.label, depth, None, "MISSING"))
            continue
        logical_id, properties = alarm_of_url[queue.url]
        if properties.get("MetricName") != "ApproximateNumberOfMessagesVisible":
            alarms.append(DlqAlarm(queue.label, depth, logical_id, "MISSING"))
            continue
        alarms.append(DlqAlarm(queue.label, depth, logical_id, evaluate_alarm(properties, depth)))
    return alarms


def _dead_letters(sqs: Any, queue: Any) -> list[DeadLetter]:
    """Every message of a DLQ, read without deleting it (each stays invisible until the soak ends)."""
    letters = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=3600, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return letters
        for message in messages:
            try:
                body = json.loads(message["Body"])
            except json.JSONDecodeError:
                body = None
            identity = command_identity(body)
            if identity is not None:
                letters.append(DeadLetter(queue.label, queue.source_url, *identity))
            else:
                letters.append(DeadLetter(queue.label, queue.source_url, None))


def spurious_timeouts(evidence: SoakEvidence, plan: dict[str, list[PlannedFault]]) -> list[SentCommand]:
    """Tasks that timed out although no fault planned for them breaks a reply: the consumers fell behind."""
    breaking = {choice.name for choice in FAULT_MENU if choice.breaks_a_reply}
    expected = {(saga_id, p.step, p.kind) for saga_id, faults in plan.items() for p in faults if p.choice in breaking}
    return [
        command
        for command in evidence.commands
        if command.answer == "timed_out" and (command.saga_id, command.step, command.kind) not in expected
    ]


def _print_summary(
    console: Console,
    sagas: LocalSagas,
    plan: dict[str, list[PlannedFault]],
    evidence: SoakEvidence,
    verdict: SoakVerdict,
    measured: Measurements,
    queues: dict[str, str],
    count: int,
    seed: int,
) -> None:
    outcomes = Table(title="Outcomes by number of faults (from the saga records)")
    statuses = sorted(set(evidence.statuses.values()))
    outcomes.add_column("faults")
    for status in statuses:
        outcomes.add_column(status, justify="right")
    by_faults: Counter[tuple[int, str]] = Counter(
        (len(plan[saga_id]), status) for saga_id, status in evidence.statuses.items() if saga_id in plan
    )
    for faults in sorted({n for n, _ in by_faults}):
        outcomes.add_row(str(faults), *(str(by_faults[(faults, status)]) for status in statuses))
    console.print(outcomes)

    injected = Table(title="Faults planned and injected")
    for column in ("fault", "action cells", "compensation cells", "injections seen"):
        injected.add_column(column, justify="left" if column == "fault" else "right")
    planned = Counter((p.choice, p.kind) for faults in plan.values() for p in faults)
    seen = Counter(kind for saga_id, *_, kind in sagas.faults.injected if saga_id in plan)
    for choice in FAULT_MENU:
        injected.add_row(
            choice.name,
            str(planned[(choice.name, "action")]),
            str(planned[(choice.name, "compensation")]),
            str(seen[choice.name]),
        )
    console.print(injected)

    accounting = Table(title=f"Every command accounted for ({command_evidence(sagas).description}, queues, DLQs)")
    label_of = {url: label for label, url in queues.items()}
    hows = sorted({how for _, how in verdict.accounting})
    accounting.add_column("queue")
    for how in hows:
        accounting.add_column(how, justify="right")
    for url in sorted({url for url, _ in verdict.accounting}):
        accounting.add_row(label_of.get(url, url), *(str(verdict.accounting[(url, how)]) for how in hows))
    console.print(accounting)

    alarms = Table(title="Dead-letter queues and their alarms (template alarm evaluated on the depth)")
    for column in ("DLQ", "depth", "alarm state"):
        alarms.add_column(column, justify="right" if column == "depth" else "left")
    for alarm in evidence.dlq_alarms:
        colour = "red" if alarm.state == "ALARM" else "green" if alarm.state == "OK" else "bold red"
        alarms.add_row(alarm.queue_label, str(alarm.depth), f"[{colour}]{alarm.state}")
    console.print(alarms)

    invariants = sagas.check()
    figures = Table(title=f"Soak figures: {sagas.definition.name} (seed {seed})")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    elapsed = measured.finished_at - measured.started_at
    spurious = spurious_timeouts(evidence, plan)
    parked = sum(1 for status in evidence.statuses.values() if status in {s.value for s in PARKED_STATUSES})
    for name, value in (
        ("sagas started (API 202)", str(len(evidence.accepted))),
        ("sagas parked and flagged", f"{parked} / {sum(1 for s in evidence.stuck_reports.values() if s)} reports"),
        ("commands sent", str(len(evidence.commands))),
        *invariants.figures(),
        ("wall time, first start to last finish (s)", f"{elapsed:.1f}"),
        ("throughput (sagas/s)", f"{count / elapsed:.1f}" if elapsed > 0 else "-"),
        ("starts held back for the backlog (s)", f"{measured.held_back_seconds:.1f}"),
        ("starts refused (429/503) and sent again after Retry-After", str(measured.retried)),
        ("starts with no answer (timed out, cut off, 502/504) and sent again", str(measured.transport_retries)),
        ("start rate (sagas/s, paced)", f"{count / max(measured.starts_done_at - measured.started_at, 1e-9):.1f}"),
        ("most sagas running at once", str(measured.max_running)),
        ("most commands waiting on a participant queue", str(max(measured.max_backlog.values(), default=0))),
        ("task timeouts no fault explains (spurious)", str(len(spurious))),
        ("local clock (s per SLA s)", f"{sagas.cloud.time_scale:g}"),
    ):
        figures.add_row(name, value)
    console.print(figures)


def burst_soak(
    sagas: LocalSagas,
    client: SignedApiClient,
    count: int,
    seed: int,
    *,
    clients: int = BURST_CLIENTS,
    console: Console,
    id_prefix: str = "burst",
) -> tuple[BurstFigures, list[str]]:
    """Send `count` healthy sagas at once, wait for every accepted one to finish, and check the evidence; returns the
    figures and the violations (empty: the burst degraded to delay only)."""
    sagas.kit.prepare(count)
    rng = random.Random(seed)
    saga_ids = [f"{id_prefix}-{seed}-{number:05d}" for number in range(1, count + 1)]
    requests = {
        saga_id: named(sagas.definition, saga_id, sagas.kit.sample_input(number, rng))
        for number, saga_id in enumerate(saga_ids, start=1)
    }
    figures = BurstFigures(sagas=count, clients=clients)
    log_offset = sagas.cloud.lambda_log_path.stat().st_size
    with console.status(f"Sending {count} sagas at once from {clients} clients (honouring Retry-After)..."):
        send_burst(client, sagas.definition.route_path, requests, figures)
    with console.status("Waiting for every accepted saga to finish..."):
        unfinished = wait_until_finished(
            sagas.records.get,
            sagas.state_machine_arn,
            figures.accepted,
            timeout_seconds=FINISH_TIMEOUT_SECONDS,
            poll_seconds=0.5,
        )
    figures.finished_at = time.monotonic()
    queues = [mapping.queue_url for mapping in sagas.cloud.mappings]
    with console.status("Waiting for the queues to drain and the detector to flag any parked saga..."):
        _wait_until_drained(queues, sagas.cloud)
        reports = _stuck_reports(sagas, saga_ids)
    evidence = gather_evidence(sagas, figures.accepted, saga_ids, reports)
    figures.statuses = Counter(evidence.statuses.values())
    figures.timeouts = Counter(f"{command.step} {command.kind}" for command in spurious_timeouts(evidence, {}))
    published = emf_totals(sagas.cloud.lambda_log_path, log_offset)
    figures.shed = int(published[metric_names.STALE_COMMANDS_SHED])
    figures.admitted_metric = int(published[metric_names.STARTS_ADMITTED])
    violations = list(figures.failed)
    violations += [f"saga {saga_id} did not finish in time" for saga_id in unfinished]
    violations += check(evidence).violations

    for saga_id, status in sorted(evidence.statuses.items()):
        if status == SagaStatus.FAILED.value or status in {s.value for s in PARKED_STATUSES}:
            violations.append(f"saga {saga_id}: {status}, and no fault was injected (the overload did it)")
    clock = sagas.cloud.time_scale
    table = Table(title=f"Burst figures: {sagas.definition.name} (seed {seed}, local clock {clock:g} s per SLA s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.rows():
        table.add_row(name, value)
    console.print(table)
    return figures, violations


def run_burst(
    count: int,
    seed: int,
    *,
    definitions: list[SagaDefinition],
    time_scale: float,
    consumers: int,
    clients: int,
    console: Console,
) -> int:
    """`make soak BURST=N`: its own synth and cloud, then each saga's burst in turn on it, each with its verdict; 0 when
    every burst degraded to delay."""
    several = len(definitions) > 1
    for definition in definitions:
        console.print(
            f"[bold]Burst soak:[/] {count} {definition.name} sagas at once from {clients} clients, seed {seed} "
            f"(replay with --burst {count} --seed {seed})"
        )
    failed = 0
    with local_apis(definitions, time_scale=time_scale, consumers=consumers, console=console) as (harnesses, client):
        for sagas in harnesses:
            name = sagas.definition.name
            prefix = f"burst-{name}" if several else "burst"
            figures, violations = burst_soak(
                sagas, client, count, seed, clients=clients, console=console, id_prefix=prefix
            )
            if violations:
                failed += 1
                console.print(f"[bold red]✗ {len(violations)} violation(s) ({name} burst {count}, seed {seed}):")
                for violation in violations:
                    console.print(f"[red]  ✗ {violation}", soft_wrap=True)
                continue
            console.print(
                f"[bold green]✓ burst seed {seed}: {len(figures.accepted)} of {count} {name} sagas accepted, "
                f"{sum(figures.refused.values())} requests refused and retried, 0 compensated, 0 parked, "
                f"every accepted saga terminal, every command accounted for, reconciliation exact; "
                f"drained in {figures.seconds_to_drain:.1f} s.",
                soft_wrap=True,
            )
    return 1 if failed else 0


@exits_quietly_on_ctrl_c
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m saga_testkit.soak", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sagas",
        type=int,
        action="append",
        help="how many sagas to run (default 1000); once per --saga, in the same order, or once for all",
    )
    parser.add_argument(
        "--saga",
        action="append",
        help="the saga to run, by name (default: the project's first saga definition); again for another saga, run "
        "after it on the same cloud",
    )
    parser.add_argument("--seed", type=int, default=None, help="faults and inputs are drawn from it (default: random)")
    parser.add_argument("--rate", type=float, default=STARTS_PER_SECOND, help="saga starts per second")
    parser.add_argument(
        "--max-in-flight", type=int, default=MAX_IN_FLIGHT, help="sagas running at once, at most (back-pressure)"
    )
    parser.add_argument("--consumers", type=int, default=CONSUMERS_PER_QUEUE, help="warm environments per queue")
    parser.add_argument("--time-scale", type=float, default=SOAK_TIME_SCALE, help="local seconds per SLA second")
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        metavar="N",
        help="instead: N healthy sagas at once through the API from --clients clients that honour Retry-After",
    )
    parser.add_argument("--clients", type=int, default=BURST_CLIENTS, help="concurrent API clients of --burst")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack: where a soak hangs
    try:
        definitions = [project_definition(name) for name in args.saga or [None]]
    except KeyError as error:
        parser.error(f"--saga: {error.args[0]}")
    counts = args.sagas or [1000]
    if len(counts) == 1:
        counts = counts * len(definitions)
    if len(counts) != len(definitions):
        parser.error(f"--sagas: {len(counts)} counts for {len(definitions)} sagas (give one, or one per --saga)")
    if min(counts) < 1:
        parser.error("--sagas: at least 1")
    if len({definition.name for definition in definitions}) < len(definitions):
        parser.error("--saga: each saga once")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    console = Console(width=max(shutil.get_terminal_size().columns, MIN_CONSOLE_WIDTH))
    if args.burst is not None:
        if args.burst < 1 or args.clients < 1:
            parser.error("--burst and --clients: at least 1")
        return run_burst(
            args.burst,
            seed,
            definitions=definitions,
            time_scale=args.time_scale,
            consumers=args.consumers,
            clients=args.clients,
            console=console,
        )
    return run(
        list(zip(definitions, counts, strict=True)),
        seed,
        time_scale=args.time_scale,
        rate=args.rate,
        consumers=args.consumers,
        max_in_flight=args.max_in_flight,
        console=console,
    )


if __name__ == "__main__":
    sys.exit(main())
