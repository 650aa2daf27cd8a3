"""`make soak BURST=N`: N healthy sagas sent at once through the signed API by many clients, far faster than the
participants drain them; the API's admission control answers what it cannot take now `429` with `Retry-After`, and the
clients honour it, as a well-behaved SDK does.

Nothing is injected, so every compensated or parked saga is one the overload caused. Per run it reports accepted,
refused (by reason), completed, compensated, parked, task timeouts (spurious, all of them: no fault explains any),
stale commands shed, the offered and drained rates and the seconds to drain, then checks the soak's evidence (every
accepted saga terminal, every command accounted for, reconciliation exact). Exits 1 on any violation, or when a
saga was compensated or parked, or a client gave up.
"""

from __future__ import annotations

import functools
import json
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_runtime.http_api import ApiAnswer, SignedApiClient
from saga_records import PARKED_STATUSES, SagaStatus

BURST_CLIENTS = 16  # concurrent API callers, none waiting for the others
GIVE_UP_SECONDS = 300.0  # a client that was refused this long reports the saga as never started
FINISH_TIMEOUT_SECONDS = 600
RETRIED_STATUSES = (429, 503)  # the answers that carry Retry-After: come back later with the same request
# API Gateway's answers when the integration failed (502) or took over 29 s (504): the start may or may not have
# happened, and the Idempotency-Key makes sending it again safe, so clients do, as SDKs retry 502 and 504.
GATEWAY_FAILURES = (502, 504)
TRANSPORT_RETRY_SECONDS = 1.0  # after a request timed out, its connection dropped, or a 502/504: the same again


@dataclass
class BurstFigures:
    """What one burst did, as its clients and the cloud saw it."""

    sagas: int
    clients: int
    accepted: list[str] = field(default_factory=list)
    requests: int = 0  # every POST sent, first tries and retries
    refused: Counter[str] = field(default_factory=Counter)  # 429 by reason, "503 deferred"
    failed: list[str] = field(default_factory=list)  # another answer, an error, or given up: a violation each
    unanswered: int = 0  # requests that timed out, lost their connection or got a 502/504, sent again (same key)
    retry_after_waited: float = 0.0  # seconds the clients slept as told, summed over clients
    started_at: float = 0.0
    first_attempts_done_at: float = 0.0  # every saga asked for once: how fast the burst was offered
    accepted_all_at: float = 0.0
    finished_at: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)  # "step kind" -> tasks timed out (none is planned)
    shed: int = 0  # stale commands the participants deleted unrun
    admitted_metric: int = 0  # SagaStartsAdmitted, as the API published it

    @property
    def offered_per_second(self) -> float:
        return self.sagas / max(self.first_attempts_done_at - self.started_at, 1e-9)

    @property
    def request_rate(self) -> float:
        return self.requests / max(self.accepted_all_at - self.started_at, 1e-9)

    @property
    def drained_per_second(self) -> float:
        return len(self.accepted) / max(self.finished_at - self.started_at, 1e-9)

    @property
    def seconds_to_drain(self) -> float:
        """From the last saga accepted to the last one terminal."""
        return self.finished_at - self.accepted_all_at

    @property
    def compensated(self) -> int:
        return self.statuses[SagaStatus.FAILED.value]

    @property
    def parked(self) -> int:
        return sum(self.statuses[status.value] for status in PARKED_STATUSES)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("sagas sent at once", f"{self.sagas} by {self.clients} clients"),
            ("offered (first requests per second)", f"{self.offered_per_second:.1f}"),
            ("requests sent, retries included (per second, until the last was accepted)", f"{self.request_rate:.1f}"),
            ("accepted (202)", f"{len(self.accepted)} ({self.admitted_metric} counted by the API's metric)"),
            *((f"refused ({reason})", str(count)) for reason, count in sorted(self.refused.items())),
            ("no answer (timed out, cut off, 502/504), sent again", str(self.unanswered)),
            ("seconds the clients waited as Retry-After told (sum)", f"{self.retry_after_waited:.0f}"),
            ("completed", str(self.statuses[SagaStatus.COMPLETED.value])),
            ("compensated (FAILED: every done step undone)", str(self.compensated)),
            ("parked", str(self.parked)),
            ("task timeouts (spurious: nothing was injected)", str(sum(self.timeouts.values()))),
            *((f"  of which {cell}", str(count)) for cell, count in sorted(self.timeouts.items())),
            ("stale commands shed", str(self.shed)),
            ("drained (sagas terminal per second, from the first request)", f"{self.drained_per_second:.1f}"),
            ("seconds to drain (last accepted to last terminal)", f"{self.seconds_to_drain:.1f}"),
            ("client failures (other answers, errors, given up)", str(len(self.failed))),
        ]


def emf_totals(log_path: Path, offset: int = 0) -> Counter[str]:
    """The sum of every metric the functions published (Powertools' EMF lines) in their log from `offset` on."""
    totals: Counter[str] = Counter()
    with log_path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            if b'"_aws"' not in raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    value = line.get(metric["Name"], 0)
                    totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return totals


def retry_after(answer: ApiAnswer) -> float:
    """The seconds an answer tells the client to wait (1 if it names none)."""
    value = next((v for k, v in answer.headers.items() if k.lower() == "retry-after"), "1")
    return float(value) if value.isascii() and value.isdigit() else 1.0


def start_until_answered(
    client: SignedApiClient,
    path: str,
    body: Any,
    key: str | None,
    give_up_at: float,
    *,
    on_attempt: Callable[[], None] = lambda: None,
    on_unanswered: Callable[[], None] = lambda: None,
) -> ApiAnswer | str:
    """POST a start until it gets an answer: one that timed out, lost its connection, or was answered 502 or 504 is
    sent again TRANSPORT_RETRY_SECONDS later with the same key, as SDKs retry them. `on_attempt` is told of every
    request sent, `on_unanswered` of each sent again. Returns the answer, or why there is none: the last failure once
    `give_up_at` has passed, or at once an error that is not the network's (the client's own)."""
    while True:
        on_attempt()
        try:
            answer = client.start(path, body, idempotency_key=key)
        except OSError as error:
            problem = f"failed: {error!r}"
        except Exception as error:
            return f"failed: {error!r}"
        else:
            if answer.status not in GATEWAY_FAILURES:
                return answer
            problem = f"answered {answer.status}"
        if time.monotonic() + TRANSPORT_RETRY_SECONDS > give_up_at:
            return f"{problem}, given up"
        on_unanswered()
        time.sleep(TRANSPORT_RETRY_SECONDS)


def send_burst(
    client: SignedApiClient,
    path: str,
    requests: dict[str, tuple[Any, str | None]],
    figures: BurstFigures,
    *,
    give_up_seconds: float = GIVE_UP_SECONDS,
) -> None:
    """Every request sent by `figures.clients` clients at once; a 429 or 503 is sent again after its Retry-After
    (with up to a second of jitter, as SDKs spread their retries)."""
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for saga_id in requests:
        pending.put(saga_id)
    lock = threading.Lock()
    first_attempts = [0]

    def sent(first: list[bool]) -> None:
        """A request went out; the saga's first one counts toward how fast the burst was offered."""
        with lock:
            figures.requests += 1
            if first[0]:
                first[0] = False
                first_attempts[0] += 1
                if first_attempts[0] == len(requests):
                    figures.first_attempts_done_at = time.monotonic()

    def unanswered() -> None:
        with lock:
            figures.unanswered += 1

    def one_client(seed: int) -> None:
        rng = random.Random(seed)
        while True:
            try:
                saga_id = pending.get_nowait()
            except queue.Empty:
                return
            body, key = requests[saga_id]
            give_up_at = time.monotonic() + give_up_seconds
            on_attempt = functools.partial(sent, [True])
            while True:
                answer = start_until_answered(
                    client, path, body, key, give_up_at, on_attempt=on_attempt, on_unanswered=unanswered
                )
                if isinstance(answer, str):
                    with lock:
                        figures.failed.append(f"{saga_id}: POST /{path} {answer}")
                    break
                if answer.status == 202:
                    with lock:
                        figures.accepted.append(saga_id)
                        figures.accepted_all_at = time.monotonic()
                    break
                if answer.status not in RETRIED_STATUSES:
                    with lock:
                        figures.failed.append(f"{saga_id}: POST /{path} answered {answer.status} {answer.body}")
                    break
                reason = (answer.body or {}).get("reason", "deferred") if answer.status == 429 else "deferred"
                wait = retry_after(answer) + rng.random()
                with lock:
                    figures.refused[f"{answer.status} {reason}"] += 1
                    figures.retry_after_waited += wait
                if time.monotonic() + wait > give_up_at:
                    with lock:
                        figures.failed.append(f"{saga_id}: still refused after {give_up_seconds:g} s, given up")
                    break
                time.sleep(wait)

    figures.started_at = time.monotonic()
    threads = [threading.Thread(target=one_client, args=(n,), name=f"burst-client-{n}") for n in range(figures.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
