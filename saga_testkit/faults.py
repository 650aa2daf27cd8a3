"""Faults injected into the local runtime's participants, per (saga id, step, kind).

One injector per cloud (`fault_injector(cloud)`), shared by every saga type's `LocalSagas` on it: it wraps every
participant every execution environment built (found through the runtime's hooks, whatever the handler module calls
them, and those of environments warmed later too), and plans faults by saga id, so sagas of several types, healthy and
faulty, run side by side.

A fault wraps the real participant, it does not replace it: a "lost reply" runs the real domain code
and then drops the success callback, so the side effect happened and the saga must time out and
compensate it. Faults are planned by saga id before the saga starts, so tests and the demo can mix
healthy and faulty sagas in one run.

Two faults are SQS's, not the participant's, so they act where the local runtime plays the Lambda service's
SQS poller (`LocalCloud.receive_hooks`), before any handler sees the batch:
- a duplicate delivery puts copies of the command back on its queue as soon as it is received, so another
  consumer gets one while the first is still being processed (SQS's at-least-once delivery);
- a poison message replaces the command in its queue by an unparseable one (truncated JSON), as a corrupt
  producer would have sent it: every receive fails, and after maxReceiveCount SQS moves it to the DLQ.

A message the injector put on a queue for no handler to use (a poisoned command, `send_unusable`) is made visible
again POISON_REDELIVERY_SECONDS after each receive instead of after the queue's visibility timeout: the handler's
refusal is all that receive can lead to, and what the tests prove of it (every receive refused, SQS's receive count,
its move to the DLQ after maxReceiveCount, the alarm, the saga timing out meanwhile) is moto's either way. Five
visibility timeouts were most of the fault matrix's and the soak's wall time.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from participant_toolkit import PermanentFailure, SagaCommand, SagaParticipant, TransientFailure

if TYPE_CHECKING:
    from local_runtime.cloud import DeployedFunction, EventSourceMapping, ExecutionEnvironment, LocalCloud

FaultKind = Literal[
    "permanent", "transient", "lost_reply", "delay", "crash_after_acting", "duplicate_delivery", "poison_message"
]
DELIVERY_FAULTS = frozenset({"duplicate_delivery", "poison_message"})  # injected at the SQS poller
# Seconds until a received unusable message is visible again: the least SQS takes above 0 (0 would have every idle
# poller receive it again while its first receiver still refuses it).
POISON_REDELIVERY_SECONDS = 1


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    error: str = ""
    # transient / crash_after_acting: this many attempts, then the real code runs normally;
    # duplicate_delivery: this many extra copies of the command
    times: int = 1
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

    @staticmethod
    def duplicate_delivery(copies: int = 1) -> Fault:
        """SQS delivers the command `copies` more times, while the first delivery is being processed."""
        if copies < 1:
            raise ValueError(f"copies must be at least 1, got {copies}")
        return Fault("duplicate_delivery", times=copies)

    @staticmethod
    def poison_message() -> Fault:
        """The command on the queue is unparseable: it fails every receive and is dead-lettered; the task waiting
        for it hears nothing and times out (heartbeat)."""
        return Fault("poison_message")


_INJECTORS: weakref.WeakKeyDictionary[Any, FaultInjector] = weakref.WeakKeyDictionary()  # LocalCloud -> its injector
_INJECTORS_LOCK = threading.Lock()


class ParticipantCrashed(Exception):
    """Stands for the participant's process dying: the toolkit neither replies nor acknowledges the message."""


def fault_injector(cloud: LocalCloud) -> FaultInjector:
    """The fault injector of `cloud`, attached to it on first use."""
    with _INJECTORS_LOCK:
        injector = _INJECTORS.get(cloud)
        if injector is None:
            injector = _INJECTORS[cloud] = FaultInjector()
            injector.attach_to_cloud(cloud)
    return injector


class FaultInjector:
    def __init__(self) -> None:
        self._plan: dict[tuple[str, str, str], Fault] = {}
        self._attempts: Counter[tuple[str, str, str]] = Counter()
        self._effects: Counter[tuple[str, str, str]] = Counter()
        self._lost_tokens: set[str] = set()
        self._lost_claims: set[tuple[str, str, str]] = set()  # choreographed actions whose claim is lost once
        self._delivery_faults: Counter[tuple[str, str, str]] = Counter()
        self._unusable: set[str] = set()  # bodies this injector put on queues for no handler to use
        self._lock = threading.Lock()
        self._attached: weakref.WeakSet[SagaParticipant] = weakref.WeakSet()
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

    def effects(self, saga_id: str, step: str, kind: str) -> int:
        """How many times the participant's real domain code returned for this command (took effect, or found it
        already taken: the domain is idempotent too). The toolkit's idempotency keeps it at one per command, but for a
        participant that crashed before it stored the outcome: the command's next delivery runs the domain again."""
        with self._lock:
            return self._effects[(saga_id, step, kind)]

    def attach_to_cloud(self, cloud: LocalCloud) -> None:
        """Wrap every participant of the cloud, now and in environments warmed later, and inject the delivery faults
        where the local Lambda service receives from SQS; idempotent per cloud."""
        if self.on_receive in cloud.receive_hooks:
            return
        for participant in cloud.built(SagaParticipant):
            self.attach(participant)
        cloud.environment_hooks.append(self._on_environment)
        cloud.receive_hooks.append(self.on_receive)

    def _on_environment(self, function: DeployedFunction, environment: ExecutionEnvironment) -> None:
        for built in environment.built:
            if isinstance(built, SagaParticipant):
                self.attach(built)

    def delivery_faults(self, saga_id: str, step: str, kind: str) -> int:
        """How many duplicate copies or poisoned messages were put on the queue for this command."""
        with self._lock:
            return self._delivery_faults[(saga_id, step, kind)]

    def on_receive(self, sqs: Any, mapping: EventSourceMapping, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The cloud's receive hook: play SQS's part of a delivery fault on a received batch; returns the messages the
        handler gets."""
        delivered = []
        for message in messages:
            with self._lock:
                unusable = message["Body"] in self._unusable
            if unusable:  # its handler refuses it: it comes back soon, for its next receive
                sqs.change_message_visibility(
                    QueueUrl=mapping.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=POISON_REDELIVERY_SECONDS,
                )
            key = _command_key(message["Body"])
            with self._lock:
                fault = self._plan.get(key) if key else None
                first = fault is not None and fault.kind in DELIVERY_FAULTS and self._delivery_faults[key] == 0
                if first:
                    self._delivery_faults[key] = fault.times if fault.kind == "duplicate_delivery" else 1
            if not first:
                delivered.append(message)
                continue
            self._note(key, fault)
            if fault.kind == "duplicate_delivery":
                for _ in range(fault.times):
                    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=message["Body"])
                delivered.append(message)
            else:  # poison: what sits on the queue from now on is a truncated, unparseable command
                self.send_unusable(sqs, mapping.queue_url, message["Body"][:-1])
                sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered

    def send_unusable(self, sqs: Any, queue_url: str, body: str) -> None:
        """Put a message no handler can use on a queue: refused at every receive, it cycles to the queue's DLQ."""
        with self._lock:
            self._unusable.add(body)
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    def attach(self, participant: SagaParticipant) -> None:
        """Wrap a participant's domain functions and callbacks; idempotent per participant."""
        with self._lock:
            if participant in self._attached:
                return
            self._attached.add(participant)
        for name, function in list(participant.commands.items()):
            participant.commands[name] = self._wrap(function)
        participant.callbacks = _LossyCallbacks(participant.callbacks, self)
        participant.records = _LossyClaims(participant.records, self)
        participant.bus = _LossyBus(participant.bus, self)

    def _wrap(self, function: Any) -> Any:
        def faulty(command: SagaCommand) -> dict[str, Any]:
            key = (command.saga_id, command.step, command.kind)
            with self._lock:
                fault = self._plan.get(key)
                self._attempts[key] += 1
                attempt = self._attempts[key]
            if fault is None:
                return self._effect(key, function, command)
            if fault.kind == "permanent":
                self._note(key, fault)
                raise PermanentFailure(fault.error, f"injected permanent failure at {command.step}/{command.kind}")
            if fault.kind == "transient" and attempt <= fault.times:
                self._note(key, fault)
                raise TransientFailure(fault.error, f"injected transient failure {attempt}/{fault.times}")
            if fault.kind == "delay":
                self._note(key, fault)
                time.sleep(fault.seconds)
            result = self._effect(key, function, command)
            if fault.kind == "crash_after_acting" and attempt <= fault.times:
                self._note(key, fault)
                raise ParticipantCrashed(f"injected crash after {command.step}/{command.kind} took effect")
            if fault.kind == "lost_reply":
                self._note(key, fault)
                with self._lock:
                    if command.reply == "bus":
                        self._lost_claims.add(key)  # under choreography the answer is the claim, then the event
                    else:
                        self._lost_tokens.add(command.task_token)
            return result

        return faulty

    def _effect(self, key: tuple[str, str, str], function: Any, command: SagaCommand) -> dict[str, Any]:
        result = function(command)
        with self._lock:
            self._effects[key] += 1
        return result

    def _note(self, key: tuple[str, str, str], fault: Fault) -> None:
        with self._lock:
            self.injected.append((*key, fault.kind))

    def swallows(self, task_token: str) -> bool:
        with self._lock:
            return task_token in self._lost_tokens

    def loses_claim(self, saga_id: str, step: str) -> bool:
        """Whether this choreographed action's answer is lost: its claim, and then the event it publishes."""
        with self._lock:
            return (saga_id, step, "action") in self._lost_claims

    def loses_event(self, saga_id: str, step: str | None, kind: str) -> bool:
        with self._lock:
            if (saga_id, step, kind) in self._lost_claims:
                self._lost_claims.discard((saga_id, step, kind))  # once: a later answer goes through
                return True
            return False


def _command_key(body: str) -> tuple[str, str, str] | None:
    """(saga id, step, kind) of a command message; None for anything else (e.g. an already poisoned one)."""
    try:
        command = json.loads(body)
        # A choreographed command carries its saga id in the event its rule put under `event`
        saga_id = command["event"]["saga_id"] if "event" in command else command["saga_id"]
        return (saga_id, command["step"], command["kind"])
    except (ValueError, TypeError, KeyError):
        return None


class _LossyClaims:
    """Saga records on which a choreographed answer's claim vanishes where the plan lost the reply: the participant
    believes it claimed (as a participant whose callback was lost believes it answered), the record still shows the
    step running, and the step's deadline decides."""

    def __init__(self, inner: Any, injector: FaultInjector) -> None:
        self._inner = inner
        self._injector = injector

    def action_claimed(self, saga_id: str, step: str, *args: Any, **kwargs: Any) -> bool:
        if self._injector.loses_claim(saga_id, step):
            return True
        return self._inner.action_claimed(saga_id, step, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _LossyBus:
    """The saga bus, as a participant publishes on it: the event of a lost answer vanishes."""

    def __init__(self, inner: Any, injector: FaultInjector) -> None:
        self._inner = inner
        self._injector = injector

    def publish(self, detail: Any) -> None:
        if not self._injector.loses_event(detail.saga_id, detail.step, detail.kind):
            self._inner.publish(detail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


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
