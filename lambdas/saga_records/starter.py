"""Start a saga: write its record first, then the execution named after the saga id.

The record is written before StartExecution so a saga is never running without one; a saga whose start
failed stays STARTED and the same call with the same id and input finishes the job (Step Functions
answers an identical StartExecution of a running execution with the same ARN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3

from saga_records.model import SagaStatus
from saga_records.repository import SagaAlreadyExists, SagaRecordRepository


class SagaConflict(Exception):
    """The saga id is taken by a saga with a different input."""


@dataclass(frozen=True)
class StartedSaga:
    saga_id: str
    status: str
    execution_arn: str | None
    created: bool


def execution_input(saga_input: dict[str, Any]) -> dict[str, Any]:
    """The state machine's input contract: the saga input and an empty map for step results."""
    return {"input": saga_input, "results": {}}


class SagaStarter:
    def __init__(self, records: SagaRecordRepository, state_machine_arn: str, saga_type: str, steps: list[str]) -> None:
        self.records = records
        self.state_machine_arn = state_machine_arn
        self.saga_type = saga_type
        self.steps = steps

    @cached_property
    def _sfn(self) -> Any:
        return boto3.client("stepfunctions")

    def start(self, saga_id: str, saga_input: dict[str, Any]) -> StartedSaga:
        created = True
        try:
            record = self.records.create(
                saga_id=saga_id, saga_type=self.saga_type, steps=self.steps, saga_input=saga_input
            )
        except SagaAlreadyExists as exists:
            record, created = exists.record, False
            if record.get("input") != saga_input or record.get("saga_type") != self.saga_type:
                raise SagaConflict(f"saga {saga_id} exists with a different input") from None
            if record.get("status") != SagaStatus.STARTED:
                return StartedSaga(saga_id, record["status"], record.get("execution_arn"), created=False)
        response = self._sfn.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=saga_id,
            input=json.dumps(execution_input(saga_input), separators=(",", ":")),
        )
        self.records.mark_running(saga_id, response["executionArn"])
        return StartedSaga(saga_id, SagaStatus.PENDING.value, response["executionArn"], created=created)
