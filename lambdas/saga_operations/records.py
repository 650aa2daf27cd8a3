"""Saga-record access for operations (the detector, the reconciler, the operator CLI): the only DynamoDB code here.

Lists go through the `by_status` index, never a scan. Every write is conditional on the status just read, so an
operator or a detector acting on a stale view changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from saga_records import IN_FLIGHT_STATUSES, SagaRecordRepository, SagaStatus, utc_now
from saga_records.repository import BY_STATUS_INDEX, is_conditional_failure, to_dynamo


class OperationsRecords(SagaRecordRepository):
    # --- reads ---

    def count_in_status(self, status: SagaStatus) -> int:
        request: dict[str, Any] = {
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": Key("status").eq(status.value),
            "Select": "COUNT",
        }
        count = 0
        while True:
            page = self._table.query(**request)
            count += page["Count"]
            if "LastEvaluatedKey" not in page:
                return count
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- the detector: one report per incident ---

    def claim_incident(self, saga_id: str, status: str, incident: str) -> bool:
        """Mark `incident` reported; False when it already was (or the saga moved on since it was read)."""
        return self._conditional_update(
            saga_id,
            update="SET reported_incident = :incident, reported_at = :now",
            condition="#status = :status AND "
            "(attribute_not_exists(reported_incident) OR reported_incident <> :incident)",
            names={"#status": "status"},
            values={":incident": incident, ":now": utc_now(), ":status": status},
        )

    def release_incident(self, saga_id: str, incident: str) -> None:
        """Undo a claim whose report could not be sent, so that the next run reports it."""
        self._conditional_update(
            saga_id,
            update="REMOVE reported_incident, reported_at",
            condition="reported_incident = :incident",
            names={},
            values={":incident": incident},
        )

    # --- the execution-status reconciler ---

    def park_failed_execution(
        self, saga_id: str, *, execution_arn: str, execution_status: str, error: str, cause: str
    ) -> bool:
        """A saga whose execution ended without the state machine recording it: park it as EXECUTION_FAILED.

        False (nothing written) when there is no record, it belongs to another execution, the state machine already
        brought it to an end (completed, compensated, parked), or an operator took it over: a resume runs a parked
        saga whose execution had ended, so a late event of that execution does not park the operator's run.
        """
        record = self.get(saga_id)
        if record is None or record.get("execution_arn") not in (None, execution_arn):
            return False
        if record["status"] not in IN_FLIGHT_STATUSES or record.get("operator_actions"):
            return False
        return self._update(
            saga_id,
            allowed=IN_FLIGHT_STATUSES,
            status=SagaStatus.EXECUTION_FAILED,
            sets={
                "execution_arn": execution_arn,
                "execution_status": execution_status,
                "failed_step": record.get("current_step") or "",
                "error": error,
                "cause": cause,
            },
        )

    # --- operator actions (saga_ops resume / resolve): audited on the record ---

    def record_operator_action(
        self,
        saga_id: str,
        *,
        expected: Iterable[str],
        new_status: SagaStatus,
        entry: dict[str, Any],
        sets: dict[str, Any] | None = None,
    ) -> bool:
        """Move the saga to `new_status` if it is in one of `expected`, appending `entry` to its operator_actions."""
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":new": new_status.value,
            ":entry": [entry],
            ":empty": [],
            ":now": utc_now(),
            ":one": 1,
        }
        assignments = [
            "#status = :new",
            "updated_at = :now",
            "operator_actions = list_append(if_not_exists(operator_actions, :empty), :entry)",
        ]
        for index, (name, value) in enumerate((sets or {}).items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            assignments.append(f"#f{index} = :f{index}")
        expected_keys = []
        for index, status in enumerate(expected):
            values[f":e{index}"] = str(status)
            expected_keys.append(f":e{index}")
        return self._conditional_update(
            saga_id,
            update=f"SET {', '.join(assignments)} ADD version :one",
            condition=f"#status IN ({', '.join(expected_keys)})",
            names=names,
            values=values,
        )

    def mark_step(
        self, saga_id: str, step: str, step_status: str, *, saga_status: SagaStatus, current: bool = False
    ) -> bool:
        """Set one step's status while the saga is in `saga_status` (the resume marks the step it is about to run),
        and make it the current step if `current`."""
        current_step = ", current_step = :step" if current else ""
        return self._conditional_update(
            saga_id,
            # The failed attempt's outcome goes: the step's error and end are those of the attempt about to run.
            update=f"SET steps.#step.#step_status = :step_status, updated_at = :now{current_step} "
            "REMOVE steps.#step.#error, steps.#step.#cause, steps.#step.finished_at",
            condition="#status = :saga_status",
            names={"#step": step, "#step_status": "status", "#status": "status", "#error": "error", "#cause": "cause"},
            values={
                ":step_status": step_status,
                ":now": utc_now(),
                ":saga_status": saga_status.value,
                **({":step": step} if current else {}),
            },
        )

    def _conditional_update(
        self, saga_id: str, *, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        request: dict[str, Any] = {
            "Key": {"saga_id": saga_id},
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(saga_id) AND {condition}",
            "ExpressionAttributeValues": to_dynamo(values),
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._table.update_item(**request)
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True
