"""Faults injected into the local runtime's participants, per (saga id, step, kind).

A fault wraps the real participant, it does not replace it: a "lost reply" runs the real domain code
and then drops the success callback, so the side effect happened and the saga must time out and
compensate it. Faults are planned by saga id before the saga starts, so tests and the demo can mix
healthy and faulty sagas in one run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from participant_toolkit import PermanentFailure, SagaCommand, SagaParticipant, TransientFailure

FaultKind = Literal["permanent", "transient", "lost_reply", "delay", "crash_after_acting"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    error: str = ""
    times: int = 1  # transient / crash_after_acting: this many attempts, then the real code runs normally
    seconds: float = 0.0  # delay: wall-clock seconds before the real code runs

    @staticmethod
    def permanent(error: str) -> Fault:
        return Fault("permanent", error)

    @staticmethod
    def transient(error: str, times: int = 1) -> Fault:
        return Fault("transient", error, times)

    @staticmethod
    def lost_reply() -> Fault:
        return Fault("lost_reply")

    @staticmethod
    def crash_after_acting(times: int = 1) -> Fault:
        """The participant's process dies right after the side effect: no reply, no more heartbeats, the message
        is redelivered after its visibility timeout (by then the saga may have compensated around it)."""
        return Fault("crash_after_acting", times=times)

    @staticmethod
    def delay(seconds: float) -> Fault:
        """A slow participant: starts its real work only after `seconds` (e.g. past the task timeout)."""
        return Fault("delay", seconds=seconds)


class ParticipantCrashed(Exception):
    """Stands for the participant's process dying: the toolkit neither replies nor acknowledges the message."""


class FaultInjector:
    def __init__(self) -> None:
        self._plan: dict[tuple[str, str, str], Fault] = {}
        self._attempts: Counter[tuple[str, str, str]] = Counter()
        self._lost_tokens: set[str] = set()
        self._lock = threading.Lock()
        self.injected: list[tuple[str, str, str, FaultKind]] = []

    def plan(self, saga_id: str, step: str, kind: str, fault: Fault) -> None:
        with self._lock:
            self._plan[(saga_id, step, kind)] = fault

    def clear(self, saga_id: str, step: str, kind: str) -> None:
        """The root cause is fixed (an operator repaired the dependency): the real code runs from now on."""
        with self._lock:
            self._plan.pop((saga_id, step, kind), None)

    def attempts(self, saga_id: str, step: str, kind: str) -> int:
        """How many times the participant's domain code was called for this command."""
        with self._lock:
            return self._attempts[(saga_id, step, kind)]

    def attach(self, participant: SagaParticipant) -> None:
        """Wrap a participant's domain functions and callbacks; idempotent per participant."""
        if getattr(participant, "_fault_injector", None) is self:
            return
        participant._fault_injector = self
        for kind, function in list(participant.domain.items()):
            participant.domain[kind] = self._wrap(function)
        participant.callbacks = _LossyCallbacks(participant.callbacks, self)

    def _wrap(self, function: Any) -> Any:
        def faulty(command: SagaCommand) -> dict[str, Any]:
            key = (command.saga_id, command.step, command.kind)
            with self._lock:
                fault = self._plan.get(key)
                self._attempts[key] += 1
                attempt = self._attempts[key]
            if fault is None:
                return function(command)
            if fault.kind == "permanent":
                self._note(key, fault)
                raise PermanentFailure(fault.error, f"injected permanent failure at {command.step}/{command.kind}")
            if fault.kind == "transient" and attempt <= fault.times:
                self._note(key, fault)
                raise TransientFailure(fault.error, f"injected transient failure {attempt}/{fault.times}")
            if fault.kind == "delay":
                self._note(key, fault)
                time.sleep(fault.seconds)
            result = function(command)
            if fault.kind == "crash_after_acting" and attempt <= fault.times:
                self._note(key, fault)
                raise ParticipantCrashed(f"injected crash after {command.step}/{command.kind} took effect")
            if fault.kind == "lost_reply":
                self._note(key, fault)
                with self._lock:
                    self._lost_tokens.add(command.task_token)
            return result

        return faulty

    def _note(self, key: tuple[str, str, str], fault: Fault) -> None:
        with self._lock:
            self.injected.append((*key, fault.kind))

    def swallows(self, task_token: str) -> bool:
        with self._lock:
            return task_token in self._lost_tokens


class _LossyCallbacks:
    """Callbacks whose success (and heartbeats) vanish for a token the plan says was lost."""

    def __init__(self, inner: Any, injector: FaultInjector) -> None:
        self._inner = inner
        self._injector = injector

    def succeed(self, task_token: str, output: dict[str, Any]) -> None:
        if not self._injector.swallows(task_token):
            self._inner.succeed(task_token, output)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
