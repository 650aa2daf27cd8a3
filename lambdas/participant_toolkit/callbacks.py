"""Task callbacks to Step Functions (the only module of the toolkit that calls the Step Functions API)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

from participant_toolkit.observability import logger

# The task already ended (timed out, or the saga moved on): the callback is refused.
# AWS answers TaskTimedOut; moto answers InvalidToken; TaskDoesNotExist once the execution is gone.
LATE_CALLBACK_ERRORS = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
MAX_CAUSE_CHARS = 32_768  # Step Functions limit on `cause`, characters
IDLE_WAIT_SECONDS = 1.0  # how often a heartbeat thread with no token left checks whether its block ended


class LateCallback(Exception):
    """Step Functions refused the callback because the task is no longer waiting for it."""


class TaskCallbacks:
    @cached_property
    def _sfn(self) -> Any:
        return boto3.client("stepfunctions")

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        self._call("send_task_success", taskToken=task_token, output=json.dumps(output, separators=(",", ":")))

    def fail(self, task_token: str, error: str, cause: str) -> None:
        self._call("send_task_failure", taskToken=task_token, error=error[:256], cause=cause[:MAX_CAUSE_CHARS])

    def heartbeat(self, task_token: str) -> None:
        self._call("send_task_heartbeat", taskToken=task_token)

    @contextmanager
    def heartbeats(self, task_token: str, every_seconds: float, *, first_beat_in: float = 0.0) -> Iterator[None]:
        """Send a heartbeat in `first_beat_in` seconds, then every `every_seconds`, until the block ends or the task
        is gone."""
        schedule = HeartbeatSchedule()
        schedule.add(task_token, every_seconds, first_beat_in=first_beat_in)
        with self.heartbeats_for(schedule):
            yield

    @contextmanager
    def heartbeats_for(self, schedule: HeartbeatSchedule) -> Iterator[None]:
        """Beat each token of `schedule` when it is due until the block ends; a token whose task is gone leaves."""
        stop = threading.Event()

        def beat() -> None:
            while True:
                due, wait_seconds = schedule.take_due(time.monotonic())
                for token in due:
                    try:
                        self.heartbeat(token)
                    except LateCallback:
                        schedule.discard(token)
                    except Exception as error:  # a lost beat is survivable (several per window); a dead thread is not
                        missed_heartbeat(error)
                if stop.wait(IDLE_WAIT_SECONDS if wait_seconds is None else wait_seconds):
                    return

        thread = threading.Thread(target=beat, name="saga-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _call(self, operation: str, **kwargs: Any) -> None:
        try:
            getattr(self._sfn, operation)(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in LATE_CALLBACK_ERRORS:
                raise LateCallback(error.response["Error"]["Code"]) from error
            raise


def missed_heartbeat(error: Exception) -> None:
    """A heartbeat call failed for another reason than the task having ended (throttled, network): keep beating."""
    logger.warning("Heartbeat failed; the next one is due within the heartbeat window", extra={"error": repr(error)})


class HeartbeatSchedule:
    """The task tokens a heartbeat thread keeps alive, each beaten every `interval` seconds from its first due time;
    one leaves when its answer is given (or its task is gone)."""

    def __init__(self) -> None:
        self._due: dict[str, tuple[float, float]] = {}  # token -> (next beat at, time.monotonic(); interval, seconds)
        self._lock = threading.Lock()

    def add(self, token: str, interval: float, *, first_beat_in: float) -> None:
        with self._lock:
            self._due[token] = (time.monotonic() + max(0.0, first_beat_in), interval)

    def discard(self, token: str | None) -> None:
        with self._lock:
            self._due.pop(token, None)  # type: ignore[arg-type]

    def take_due(self, now: float) -> tuple[list[str], float | None]:
        """The tokens due at `now` (each rescheduled one interval on), and the seconds until the next is due."""
        with self._lock:
            due = [token for token, (at, _) in self._due.items() if at <= now]
            for token in due:
                self._due[token] = (now + self._due[token][1], self._due[token][1])
            upcoming = min((at for at, _ in self._due.values()), default=None)
        return due, None if upcoming is None else max(0.0, upcoming - now)
