"""Data access for saga records (the only module here that talks to DynamoDB).

Writers: the starter creates the record; the participant toolkit moves the current step along (so the
state machine needs no extra billed states for it); the state machine writes the terminal status.
Updates are conditional on the saga status so that a late or duplicate message never rewinds a saga.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import cached_property
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from saga_records.model import SagaStatus, StepStatus, utc_now

BY_STATUS_INDEX = "by_status"
_FORWARD = (SagaStatus.STARTED, SagaStatus.PENDING)
_UNDOING = (SagaStatus.STARTED, SagaStatus.PENDING, SagaStatus.COMPENSATING)


class SagaAlreadyExists(Exception):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(f"saga {record.get('saga_id')} already exists")
        self.record = record


class SagaRecordRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @cached_property
    def _table(self) -> Any:
        return boto3.resource("dynamodb").Table(self.table_name)

    def create(
        self,
        *,
        saga_id: str,
        saga_type: str,
        steps: list[str],
        saga_input: dict[str, Any],
        request_hash: str | None = None,
    ) -> dict[str, Any]:
        """Write the record of a new saga; `SagaAlreadyExists` (with the stored record) if the id is taken.

        `request_hash` identifies the request that asked for the saga, so that a retry of the same request is
        told apart from a different request reusing the id, however long after the saga finished.
        """
        now = utc_now()
        item = {
            "saga_id": saga_id,
            "saga_type": saga_type,
            "status": SagaStatus.STARTED.value,
            "current_step": None,
            "steps": {step: {"status": StepStatus.NOT_STARTED.value} for step in steps},
            "input": saga_input,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        if request_hash is not None:
            item["request_hash"] = request_hash
        try:
            self._table.put_item(Item=_to_dynamo(item), ConditionExpression="attribute_not_exists(saga_id)")
        except ClientError as error:
            if _is_conditional_failure(error):
                raise SagaAlreadyExists(self.get(saga_id) or {"saga_id": saga_id}) from error
            raise
        return item

    def mark_running(self, saga_id: str, execution_arn: str) -> bool:
        """Record the execution; STARTED becomes PENDING unless the first participant already said so."""
        if self._update(
            saga_id, sets={"execution_arn": execution_arn}, status=SagaStatus.PENDING, allowed=(SagaStatus.STARTED,)
        ):
            return True
        return self._update(saga_id, sets={"execution_arn": execution_arn}, allowed=tuple(SagaStatus))

    def step_started(self, saga_id: str, step: str, kind: str) -> bool:
        if kind == "action":
            return self._update(
                saga_id,
                sets={"current_step": step},
                step=(step, {"status": StepStatus.RUNNING.value}),
                status=SagaStatus.PENDING,
                allowed=_FORWARD,
            )
        return self._update(
            saga_id,
            sets={"current_step": step},
            step=(step, {"status": StepStatus.COMPENSATING.value}),
            status=SagaStatus.COMPENSATING,
            allowed=_UNDOING,
        )

    def step_finished(
        self,
        saga_id: str,
        step: str,
        status: StepStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> bool:
        fields: dict[str, Any] = {"status": status.value, "finished_at": utc_now()}
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields |= {"error": error, "cause": cause or ""}
        forward = status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
        return self._update(saga_id, step=(step, fields), allowed=_FORWARD if forward else _UNDOING)

    def get(self, saga_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"saga_id": saga_id}, ConsistentRead=True).get("Item")
        return _from_dynamo(item) if item else None

    def list_by_status(self, status: SagaStatus, *, limit: int = 50, newest_first: bool = True) -> list[dict[str, Any]]:
        response = self._table.query(
            IndexName=BY_STATUS_INDEX,
            KeyConditionExpression=Key("status").eq(status.value),
            ScanIndexForward=not newest_first,
            Limit=limit,
        )
        return [_from_dynamo(item) for item in response.get("Items", [])]

    def page_by_status(
        self, status: SagaStatus, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of sagas in `status`, newest first, and the key to continue from (None on the last page)."""
        kwargs: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        response = self._table.query(
            IndexName=BY_STATUS_INDEX,
            KeyConditionExpression=Key("status").eq(status.value),
            ScanIndexForward=False,
            Limit=limit,
            **kwargs,
        )
        return [_from_dynamo(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def in_status(self, status: SagaStatus, *, created_before: str | None = None) -> Iterator[dict[str, Any]]:
        """Every saga in `status` (oldest first), optionally only those created before an ISO timestamp."""
        condition = Key("status").eq(status.value)
        if created_before is not None:
            condition &= Key("created_at").lt(created_before)
        request: dict[str, Any] = {"IndexName": BY_STATUS_INDEX, "KeyConditionExpression": condition}
        while True:
            page = self._table.query(**request)
            yield from (_from_dynamo(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_start_failed(self, saga_id: str, error: str, cause: str) -> bool:
        """A saga whose execution never started: nothing ran, so nothing needs compensating (STARTED -> FAILED)."""
        return self._update(
            saga_id,
            sets={"error": error, "cause": cause},
            status=SagaStatus.FAILED,
            allowed=(SagaStatus.STARTED,),
        )

    def scan_all(self) -> list[dict[str, Any]]:
        items, kwargs = [], {}
        while True:
            page = self._table.scan(ConsistentRead=True, **kwargs)
            items += [_from_dynamo(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _update(
        self,
        saga_id: str,
        *,
        allowed: tuple[SagaStatus, ...],
        sets: dict[str, Any] | None = None,
        step: tuple[str, dict[str, Any]] | None = None,
        status: SagaStatus | None = None,
    ) -> bool:
        """One conditional update; False when the saga is gone or already past `allowed` (late message)."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":now": utc_now(), ":one": 1}
        assignments = ["updated_at = :now"]
        for index, (name, value) in enumerate((sets or {}).items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            assignments.append(f"#f{index} = :f{index}")
        if step is not None:
            step_name, fields = step
            names["#step"] = step_name
            for index, (name, value) in enumerate(fields.items()):
                names[f"#s{index}"] = name
                values[f":s{index}"] = value
                assignments.append(f"steps.#step.#s{index} = :s{index}")
        if status is not None:
            values[":new_status"] = status.value
            assignments.append("#status = :new_status")
        allowed_keys = []
        for index, allowed_status in enumerate(allowed):
            values[f":a{index}"] = allowed_status.value
            allowed_keys.append(f":a{index}")
        try:
            self._table.update_item(
                Key={"saga_id": saga_id},
                UpdateExpression=f"SET {', '.join(assignments)} ADD version :one",
                ConditionExpression=f"attribute_exists(saga_id) AND #status IN ({', '.join(allowed_keys)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_dynamo(values),
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _to_dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; floats are refused by boto3."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _to_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(item) for item in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value
