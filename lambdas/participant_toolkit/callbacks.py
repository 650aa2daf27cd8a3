"""Task callbacks to Step Functions (the only module of the toolkit that calls the Step Functions API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

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
    def heartbeats(self, task_token: str, every_seconds: float) -> Iterator[None]:
        """Send a heartbeat now and every `every_seconds` until the block ends or the task is gone."""
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    self.heartbeat(task_token)
                except LateCallback:
                    return
                if stop.wait(every_seconds):
                    return

        thread = threading.Thread(target=beat, name="saga-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    @contextmanager
    def heartbeats_while_waiting(self, task_tokens: list[str], every_seconds: float) -> Iterator[WaitingCommands]:
        """Heartbeat the tasks of a batch's commands that wait behind earlier ones in this invocation, now and every
        `every_seconds`, each until it is taken up (`WaitingCommands.taken`) or the block ends."""
        waiting = WaitingCommands(task_tokens)
        if not task_tokens:
            yield waiting  # nothing waits (a batch of one): no thread
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                for task_token in waiting.pending():
                    try:
                        self.heartbeat(task_token)
                    except LateCallback:
                        waiting.taken(task_token)  # its task already ended: nothing left to keep alive
                if stop.wait(every_seconds):
                    return

        thread = threading.Thread(target=beat, name="saga-heartbeat", daemon=True)
        thread.start()
        try:
            yield waiting
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


class WaitingCommands:
    """Task tokens of a batch's commands not yet taken up by this invocation."""

    def __init__(self, task_tokens: list[str]) -> None:
        self._tokens = set(task_tokens)
        self._lock = threading.Lock()

    def taken(self, task_token: str | None) -> None:
        with self._lock:
            self._tokens.discard(task_token)

    def pending(self) -> list[str]:
        with self._lock:
            return sorted(self._tokens)
