"""Bring the saga record to the truth when its execution ends where no Catch runs.

Catch covers a task's errors, not an execution that fails, times out or is aborted as a whole. EventBridge
delivers "Step Functions Execution Status Change" events for those; a saga whose record still says it is in
flight is parked as EXECUTION_FAILED (a human decides, with saga_ops resume or resolve). A record the state
machine already brought to an end is left alone, so a redelivered event changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from saga_operations.records import OperationsRecords

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
UNCAUGHT_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


class ExecutionStatusDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    execution_arn: str = Field(alias="executionArn", min_length=1)
    state_machine_arn: str = Field(alias="stateMachineArn", min_length=1)
    name: str = Field(min_length=1)  # the execution is named after the saga id
    status: Literal["FAILED", "TIMED_OUT", "ABORTED"]
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChange(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionStatusDetail


def status_change_event(execution: dict[str, Any], *, region: str, account: str) -> dict[str, Any]:
    """The EventBridge event for a described execution (the local runtime delivers these itself)."""

    def millis(moment: Any) -> int | None:
        return int(moment.timestamp() * 1000) if moment is not None else None

    return {
        "version": "0",
        "id": f"{execution['name']}-{execution['status']}",
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "region": region,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": millis(execution.get("startDate")),
            "stopDate": millis(execution.get("stopDate")),
            "error": execution.get("error"),
            "cause": execution.get("cause"),
        },
    }


class ExecutionStatusReconciler:
    def __init__(self, records: OperationsRecords) -> None:
        self.records = records

    def reconcile(self, event: dict[str, Any]) -> bool:
        """True when the saga record was parked; raises ValidationError (naming the field) on a foreign event."""
        detail = ExecutionStatusChange.model_validate(event).detail
        return self.records.park_failed_execution(
            detail.name,
            execution_arn=detail.execution_arn,
            execution_status=detail.status,
            error=detail.error or f"States.{detail.status.title().replace('_', '')}",
            cause=detail.cause or f"the execution ended {detail.status} outside the state machine's Catch",
        )
