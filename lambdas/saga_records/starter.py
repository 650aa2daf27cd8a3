"""Start a saga: write its record first, then the execution named after the saga id.

The record is written before StartExecution so a saga is never running without one. If StartExecution then
fails (throttled, service error), the record stays STARTED and `SagaStartDeferred` tells the caller to retry:
the same call with the same id and request starts it (an execution of that name already existing means this
saga's execution, since executions are named after saga ids), and the API's reconciler starts, or after a
while fails, whatever is left STARTED.

A choreographed saga (its spec names the saga bus) starts with a `Saga.Started` event on the bus instead of an
execution: the record is written first, the event put, then the record marked running, the same way; a failed
PutEvents leaves the record STARTED for the same retries and reconciler (a second `Saga.Started` is harmless: its
consumers are idempotent on the saga id).

Its Step Functions client is `step_functions` (given, or built on first use): a host that runs the starter in its own
process reaches it there (e.g. botocore event hooks on `client.meta.events` that make StartExecution fail on demand),
having found the starter through host_hooks, which every starter is announced to when built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

import host_hooks
from saga_records.events import SagaEventDetail
from saga_records.model import SagaStatus
from saga_records.repository import SagaAlreadyExists, SagaRecordRepository

# What a choreographed saga's record holds where an orchestrated one names its execution: no execution runs it.
CHOREOGRAPHY_EXECUTION_PREFIX = "choreography:"


class SagaConflict(Exception):
    """The saga id is taken by a saga started from a different request."""


class SagaStartDeferred(Exception):
    """The record is written but the execution could not be started now; retrying the same request is safe."""

    def __init__(self, saga_id: str, reason: str) -> None:
        super().__init__(f"saga {saga_id} not started yet: {reason}")
        self.saga_id = saga_id
        self.reason = reason


@dataclass(frozen=True)
class SagaSpec:
    """What starting a saga of one type takes: its state machine and its steps (the record lists them all)."""

    saga_type: str
    state_machine_arn: str | None
    steps: tuple[str, ...]
    bus_name: str | None = None  # a choreographed saga: started by an event on this bus, not by an execution


@dataclass(frozen=True)
class StartedSaga:
    saga_id: str
    status: str
    execution_arn: str | None
    created: bool


def execution_input(saga_input: dict[str, Any]) -> dict[str, Any]:
    """The state machine's input contract: the saga input and an empty map for step results."""
    return {"input": saga_input, "results": {}}


def request_hash(saga_input: dict[str, Any]) -> str:
    """Fingerprint of a request: SHA-256 of its canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(saga_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def execution_arn_of(state_machine_arn: str, saga_id: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{saga_id}"


class SagaStarter:
    """Starts sagas of every type it is given (saga ids are unique across types: one table, one record per id)."""

    def __init__(self, records: SagaRecordRepository, sagas: Iterable[SagaSpec], *, sfn_client: Any = None) -> None:
        self.records = records
        self.sagas = {saga.saga_type: saga for saga in sagas}
        self._client = sfn_client
        host_hooks.announce(self)

    @cached_property
    def events(self) -> Any:
        """The EventBridge client every choreographed saga's start goes through."""
        return boto3.client("events")

    @cached_property
    def step_functions(self) -> Any:
        """The Step Functions client every StartExecution goes through."""
        return self._client or boto3.client("stepfunctions")

    def start(self, saga_type: str, saga_id: str, saga_input: dict[str, Any]) -> StartedSaga:
        saga = self.sagas[saga_type]
        fingerprint = request_hash(saga_input)
        created = True
        try:
            record = self.records.create(
                saga_id=saga_id,
                saga_type=saga_type,
                steps=list(saga.steps),
                saga_input=saga_input,
                request_hash=fingerprint,
            )
        except SagaAlreadyExists as exists:
            record, created = exists.record, False
            if not _same_request(record, saga_type, saga_input, fingerprint):
                raise SagaConflict(f"saga {saga_id} exists with a different input") from None
            if record.get("status") != SagaStatus.STARTED:
                return StartedSaga(saga_id, record["status"], record.get("execution_arn"), created=False)
        arn = self._start_execution(saga, saga_id, saga_input)
        return StartedSaga(saga_id, SagaStatus.PENDING.value, arn, created=created)

    def resume(self, record: dict[str, Any]) -> StartedSaga:
        """Start the execution of a saga left STARTED (its record is written); `SagaStartDeferred` if it still fails,
        or if its type is none this starter knows (the give-up period then fails it)."""
        saga = self.sagas.get(record.get("saga_type", ""))
        if saga is None:
            raise SagaStartDeferred(record["saga_id"], f"no state machine for saga type {record.get('saga_type')!r}")
        arn = self._start_execution(saga, record["saga_id"], record["input"])
        return StartedSaga(record["saga_id"], SagaStatus.PENDING.value, arn, created=False)

    def _start_execution(self, saga: SagaSpec, saga_id: str, saga_input: dict[str, Any]) -> str:
        if saga.bus_name is not None:
            return self._publish_started(saga, saga_id, saga_input)
        assert saga.state_machine_arn is not None
        try:
            arn = self.step_functions.start_execution(
                stateMachineArn=saga.state_machine_arn,
                name=saga_id,
                input=json.dumps(execution_input(saga_input), separators=(",", ":")),
            )["executionArn"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code != "ExecutionAlreadyExists":
                raise SagaStartDeferred(saga_id, code or str(error)) from error
            # Executions are named after saga ids and only this starter starts them: it is this saga's.
            arn = execution_arn_of(saga.state_machine_arn, saga_id)
        except BotoCoreError as error:  # no answer at all (connection, timeout): as retryable as a throttle
            raise SagaStartDeferred(saga_id, type(error).__name__) from error
        self.records.mark_running(saga_id, arn, first_step=saga.steps[0] if saga.steps else None)
        return arn

    def _publish_started(self, saga: SagaSpec, saga_id: str, saga_input: dict[str, Any]) -> str:
        assert saga.bus_name is not None
        started = SagaEventDetail(
            saga_id=saga_id,
            saga_type=saga.saga_type,
            kind="saga",
            outcome="Started",
            idempotency_key=f"{saga_id}#saga",
            input=saga_input,
        )
        try:
            response = self.events.put_events(Entries=[started.entry(saga.bus_name)])
        except ClientError as error:
            raise SagaStartDeferred(saga_id, error.response.get("Error", {}).get("Code") or str(error)) from error
        except BotoCoreError as error:
            raise SagaStartDeferred(saga_id, type(error).__name__) from error
        if response.get("FailedEntryCount"):
            raise SagaStartDeferred(saga_id, response["Entries"][0].get("ErrorCode") or "PutEvents failed")
        marker = f"{CHOREOGRAPHY_EXECUTION_PREFIX}{saga.bus_name}/{saga_id}"
        self.records.mark_running(saga_id, marker, first_step=saga.steps[0] if saga.steps else None)
        return marker


def _same_request(record: dict[str, Any], saga_type: str, saga_input: dict[str, Any], fingerprint: str) -> bool:
    """Whether a stored saga is the one this request asks for: same type, same canonical input."""
    if record.get("saga_type") != saga_type:
        return False
    if "request_hash" in record:
        return record["request_hash"] == fingerprint
    return record.get("input") == saga_input  # a record written before request hashes were stored
