"""Task callbacks to Step Functions (the only module of the toolkit that calls the Step Functions API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
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
    def heartbeats(self, task_token: str, every_seconds: float, *, beat_now: bool = True) -> Iterator[None]:
        """Send a heartbeat every `every_seconds` (and now, unless `beat_now` is False) until the block ends or the
        task is gone."""
        with self.heartbeats_for(BeatingTokens([task_token]), every_seconds, beat_now=beat_now):
            yield

    @contextmanager
    def heartbeats_for(self, tokens: BeatingTokens, every_seconds: float, *, beat_now: bool = True) -> Iterator[None]:
        """Heartbeat each token in `tokens` (as it is at each beat) until the block ends; a task that is gone leaves."""
        stop = threading.Event()

        def beat() -> None:
            if not beat_now and stop.wait(every_seconds):
                return
            while True:
                for token in tokens.current():
                    try:
                        self.heartbeat(token)
                    except LateCallback:
                        tokens.discard(token)
                    except Exception as error:  # a lost beat is survivable (several per window); a dead thread is not
                        missed_heartbeat(error)
                if stop.wait(every_seconds):
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


class BeatingTokens:
    """The task tokens a heartbeat thread keeps alive; one leaves when its own work takes over or its task is gone."""

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        self._tokens = set(tokens)
        self._lock = threading.Lock()

    def replace(self, tokens: Iterable[str]) -> None:
        with self._lock:
            self._tokens = set(tokens)

    def discard(self, token: str | None) -> None:
        with self._lock:
            self._tokens.discard(token)

    def current(self) -> list[str]:
        with self._lock:
            return list(self._tokens)
