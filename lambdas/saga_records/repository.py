"""Data access for saga records (the only module here that talks to DynamoDB).

Writers: the starter creates the record and marks the first step running; the participant toolkit moves the current
step along (so the state machine needs no extra billed states for it); the state machine writes the terminal status.
Updates are conditional on the saga's and the step's status so that a late or duplicate message never rewinds a saga.

What participants write, and when: an action's step is marked only once Step Functions took its answer
(`action_answered`: SUCCEEDED and the next step RUNNING, or FAILED), so a step recorded SUCCEEDED is one its saga kept;
a compensation's step is marked COMPENSATING before it runs and COMPENSATED (or COMPENSATION_FAILED) when it has.
Top-level attributes a participant writes: `status`, `current_step`, `steps`, `updated_at`, `version`.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import cached_property
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from saga_records.access import PARTICIPANT_READ_ATTRIBUTES
from saga_records.model import SagaStatus, StepStatus, utc_now

BY_STATUS_INDEX = "by_status"
# A listing of one saga type reads the by_status index (all types) through a filter: each read evaluates at most this
# many items, and one listing request makes at most this many reads (bounded latency and read capacity); short of its
# limit then, it answers what it found and where to go on.
TYPED_LIST_READ_ITEMS = 100
TYPED_LIST_MAX_READS = 10
INDEX_KEY_FIELDS = ("saga_id", "status", "created_at")  # an item's position in the by_status index
_FORWARD = (SagaStatus.STARTED, SagaStatus.PENDING)
_UNDOING = (SagaStatus.STARTED, SagaStatus.PENDING, SagaStatus.COMPENSATING)
# A step an action's answer may still mark: neither its own answer nor a compensation marked it yet. The state
# machine's RecordCompleted marks every step SUCCEEDED too, without a finished_at: an answer still adds its own.
_UNANSWERED_STEP = (
    "(steps.{step}.#status IN (:not_started, :running)"
    " OR (steps.{step}.#status = :succeeded AND attribute_not_exists(steps.{step}.finished_at)))"
)


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
            self._table.put_item(Item=to_dynamo(item), ConditionExpression="attribute_not_exists(saga_id)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise SagaAlreadyExists(self.get(saga_id) or {"saga_id": saga_id}) from error
            raise
        return item

    def mark_running(self, saga_id: str, execution_arn: str, first_step: str | None = None) -> bool:
        """Record the execution; STARTED becomes PENDING (with `first_step` RUNNING, the current step) unless the
        first participant already moved the saga on."""
        sets = {"execution_arn": execution_arn}
        if first_step is not None and self._update(
            saga_id,
            sets={**sets, "current_step": first_step},
            step=(first_step, {"status": StepStatus.RUNNING.value}),
            status=SagaStatus.PENDING,
            allowed=(SagaStatus.STARTED,),
            step_in=(first_step, (StepStatus.NOT_STARTED,)),
        ):
            return True
        if self._update(saga_id, sets=sets, status=SagaStatus.PENDING, allowed=(SagaStatus.STARTED,)):
            return True
        return self._update(saga_id, sets=sets, allowed=tuple(SagaStatus))

    def action_answered(
        self,
        saga_id: str,
        step: str,
        status: StepStatus,
        *,
        next_step: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> bool:
        """Step Functions took the answer of `step`'s action: mark it SUCCEEDED (and `next_step` RUNNING, the current
        step) or FAILED. Only a step no answer or compensation has marked yet changes; False when none did."""
        fields = _finished_fields(status, result, error, cause)
        # One request: the saga moves on to the next step, unless that step was marked already (its own answer, or
        # a compensation, came first) or the saga is past running forward.
        if (
            next_step is not None
            and status == StepStatus.SUCCEEDED
            and self._update(
                saga_id,
                sets={"current_step": next_step},
                step=(step, fields),
                status=SagaStatus.PENDING,
                allowed=_FORWARD,
                unanswered=step,
                also_step=(next_step, {"status": StepStatus.RUNNING.value}),
                also_step_in=(next_step, (StepStatus.NOT_STARTED,)),
            )
        ):
            return True
        # The last step (the saga may already be COMPLETED), a failure, or a saga that moved on: this step only.
        return self._update(saga_id, step=(step, fields), allowed=tuple(SagaStatus), unanswered=step)

    def action_claimed(
        self,
        saga_id: str,
        step: str,
        status: StepStatus,
        *,
        next_step: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> bool:
        """Choreography: a participant claims its step's outcome before it publishes it, RUNNING -> SUCCEEDED (and
        `next_step` RUNNING, the current step) or FAILED, on a saga still running forward. The tracker marks a step
        whose deadline passed the same way (`step_timed_out`), so exactly one of them wins; False when this lost."""
        fields = _finished_fields(status, result, error, cause)
        # NOT_STARTED too: the starter marks the first step RUNNING only after it put Saga.Started on the bus.
        running = (step, (StepStatus.NOT_STARTED, StepStatus.RUNNING))
        if next_step is not None and status == StepStatus.SUCCEEDED:
            return self._update(
                saga_id,
                sets={"current_step": next_step},
                step=(step, fields),
                status=SagaStatus.PENDING,
                allowed=_FORWARD,
                step_in=running,
                also_step=(next_step, {"status": StepStatus.RUNNING.value}),
                also_step_in=(next_step, (StepStatus.NOT_STARTED,)),
            )
        return self._update(saga_id, step=(step, fields), allowed=_FORWARD, step_in=running)

    def step_timed_out(self, saga_id: str, step: str, *, error: str, cause: str) -> bool:
        """Choreography: the step's deadline passed while it was RUNNING; it is FAILED with the timeout error (the
        participant's claim of an answer now loses). False when its answer was claimed first."""
        return self._update(
            saga_id,
            step=(step, _finished_fields(StepStatus.FAILED, None, error, cause)),
            allowed=_FORWARD,
            step_in=(step, (StepStatus.RUNNING,)),
        )

    def step_retried(self, saga_id: str, step: str, attempt: int) -> bool:
        """Choreography: a forward-recovered step's deadline passed while it was RUNNING, and its action is requested
        again as `attempt` (counted on the step). False when it answered first, or this attempt was requested already
        (the deadline's event came twice)."""
        return self._update(
            saga_id,
            step=(step, {"attempt": attempt}),
            allowed=_FORWARD,
            step_in=(step, (StepStatus.RUNNING,)),
            attempt_below=(step, attempt),
        )

    def forward_recovery_parked(
        self, saga_id: str, *, failed_step: str, error: str, cause: str, pending: list[dict[str, str]]
    ) -> bool:
        """Choreography: the pivot or a retriable step ran out of retries; the saga is parked FORWARD_RECOVERY_FAILED,
        as the orchestrated park state writes it (the step FAILED with the error, and what a resume runs)."""
        return self._update(
            saga_id,
            sets={"failed_step": failed_step, "error": error, "cause": cause, "pending": pending},
            step=(failed_step, _finished_fields(StepStatus.FAILED, None, error, cause)),
            status=SagaStatus.FORWARD_RECOVERY_FAILED,
            allowed=_FORWARD,
        )

    def completed(self, saga_id: str, steps: list[str]) -> bool:
        """Choreography: the last step succeeded; the saga is COMPLETED, every step SUCCEEDED, the last one current."""
        return self._update(
            saga_id,
            sets={"current_step": steps[-1]},
            status=SagaStatus.COMPLETED,
            allowed=_FORWARD,
            succeeded_steps=steps,
        )

    def ended_failed(self, saga_id: str, *, error: str, cause: str) -> bool:
        """Choreography: nothing is left to compensate; the saga is FAILED with the failure that started it."""
        return self._update(saga_id, sets={"error": error, "cause": cause}, status=SagaStatus.FAILED, allowed=_UNDOING)

    def compensation_parked(
        self,
        saga_id: str,
        *,
        failed_step: str,
        compensation_error: str,
        compensation_cause: str,
        error: str,
        cause: str,
        pending: list[dict[str, str]],
    ) -> bool:
        """Choreography: a compensation failed for good; the saga is parked COMPENSATION_FAILED, as the orchestrated
        park state writes it (the step, both errors, and what a resume runs)."""
        return self._update(
            saga_id,
            sets={
                "failed_step": failed_step,
                "compensation_error": compensation_error,
                "compensation_cause": compensation_cause,
                "error": error,
                "cause": cause,
                "pending": pending,
            },
            status=SagaStatus.COMPENSATION_FAILED,
            allowed=_UNDOING,
        )

    def compensation_started(self, saga_id: str, step: str) -> bool:
        """A compensation begins: the step is COMPENSATING, the current step, and the saga is COMPENSATING."""
        return self._update(
            saga_id,
            sets={"current_step": step},
            step=(step, {"status": StepStatus.COMPENSATING.value}),
            status=SagaStatus.COMPENSATING,
            allowed=_UNDOING,
        )

    def compensation_finished(
        self,
        saga_id: str,
        step: str,
        status: StepStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> bool:
        """A compensation ran: the step is COMPENSATED (with the result) or COMPENSATION_FAILED (with the error)."""
        return self._update(saga_id, step=(step, _finished_fields(status, result, error, cause)), allowed=_UNDOING)

    def get(self, saga_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"saga_id": saga_id}, ConsistentRead=True).get("Item")
        return _from_dynamo(item) if item else None

    def progress(self, saga_id: str) -> dict[str, Any] | None:
        """What a participant may read of a saga: its status, current step and steps (never its input: a
        participant's role is held to PARTICIPANT_READ_ATTRIBUTES, and a read without a projection would be denied)."""
        item = self._table.get_item(
            Key={"saga_id": saga_id},
            ConsistentRead=True,
            ProjectionExpression=", ".join(f"#a{index}" for index in range(len(PARTICIPANT_READ_ATTRIBUTES))),
            ExpressionAttributeNames={f"#a{index}": name for index, name in enumerate(PARTICIPANT_READ_ATTRIBUTES)},
        ).get("Item")
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
        self,
        status: SagaStatus,
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        saga_type: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of sagas in `status` (of `saga_type` only, if given), newest first, and the index key to continue
        from (None on the last page).

        Of one type, the index is read through a filter until `limit` sagas or its end, at most TYPED_LIST_MAX_READS
        reads: a page may then hold fewer than `limit` sagas (none, even) and still a key to go on from."""
        request: dict[str, Any] = {
            "IndexName": BY_STATUS_INDEX,
            "KeyConditionExpression": Key("status").eq(status.value),
            "ScanIndexForward": False,
        }
        if saga_type is None:
            response = self._table.query(
                **request, Limit=limit, **({"ExclusiveStartKey": start_key} if start_key else {})
            )
            return [_from_dynamo(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")
        request |= {"FilterExpression": Attr("saga_type").eq(saga_type), "Limit": max(limit, TYPED_LIST_READ_ITEMS)}
        found: list[dict[str, Any]] = []
        key = start_key
        for _ in range(TYPED_LIST_MAX_READS):
            response = self._table.query(**request, **({"ExclusiveStartKey": key} if key else {}))
            items = response.get("Items", [])
            key = response.get("LastEvaluatedKey")
            for index, item in enumerate(items):
                found.append(_from_dynamo(item))
                if len(found) == limit:
                    if key is None and index == len(items) - 1:
                        return found, None  # the last item there is
                    return found, {field: item[field] for field in INDEX_KEY_FIELDS}
            if key is None:
                return found, None
        return found, key

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
        step_in: tuple[str, tuple[StepStatus, ...]] | None = None,
        also_step: tuple[str, dict[str, Any]] | None = None,
        also_step_in: tuple[str, tuple[StepStatus, ...]] | None = None,
        unanswered: str | None = None,
        succeeded_steps: list[str] | None = None,
        attempt_below: tuple[str, int] | None = None,
    ) -> bool:
        """One conditional update; False when the saga is gone, already past `allowed` (late message), a step named
        in `step_in` / `also_step_in` is in none of the statuses listed, the `unanswered` step was marked already, or
        the step of `attempt_below` counts that attempt already."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":now": utc_now(), ":one": 1}
        assignments = ["updated_at = :now"]
        for index, name in enumerate(succeeded_steps or []):
            names[f"#done{index}"] = name
            values[":succeeded_step"] = StepStatus.SUCCEEDED.value
            assignments.append(f"steps.#done{index}.#status = :succeeded_step")
        for index, (name, value) in enumerate((sets or {}).items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            assignments.append(f"#f{index} = :f{index}")
        for prefix, changed in (("s", step), ("n", also_step)):
            if changed is None:
                continue
            step_name, fields = changed
            names[f"#{prefix}step"] = step_name
            for index, (name, value) in enumerate(fields.items()):
                names[f"#{prefix}{index}"] = name
                values[f":{prefix}{index}"] = value
                assignments.append(f"steps.#{prefix}step.#{prefix}{index} = :{prefix}{index}")
        if status is not None:
            values[":new_status"] = status.value
            assignments.append("#status = :new_status")
        conditions = ["attribute_exists(saga_id)", f"#status IN ({_listed(values, 'a', allowed)})"]
        for index, required in enumerate((step_in, also_step_in)):
            if required is None:
                continue
            step_name, statuses = required
            names[f"#c{index}step"] = step_name
            conditions.append(f"steps.#c{index}step.#status IN ({_listed(values, f'c{index}_', statuses)})")
        if unanswered is not None:
            names["#ustep"] = unanswered
            values |= {
                ":not_started": StepStatus.NOT_STARTED.value,
                ":running": StepStatus.RUNNING.value,
                ":succeeded": StepStatus.SUCCEEDED.value,
            }
            conditions.append(_UNANSWERED_STEP.format(step="#ustep"))
        if attempt_below is not None:
            names["#astep"] = attempt_below[0]
            names["#attempt"] = "attempt"
            values[":attempt"] = attempt_below[1]
            conditions.append("(attribute_not_exists(steps.#astep.#attempt) OR steps.#astep.#attempt < :attempt)")
        try:
            self._table.update_item(
                Key={"saga_id": saga_id},
                UpdateExpression=f"SET {', '.join(assignments)} ADD version :one",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(values),
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True


def _listed(values: dict[str, Any], prefix: str, options: tuple[Any, ...]) -> str:
    """Add `options` to the expression values under `:<prefix><n>`; returns the comma-separated placeholders."""
    keys = []
    for index, option in enumerate(options):
        values[f":{prefix}{index}"] = option.value
        keys.append(f":{prefix}{index}")
    return ", ".join(keys)


def _finished_fields(
    status: StepStatus, result: dict[str, Any] | None, error: str | None, cause: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": status.value, "finished_at": utc_now()}
    if result is not None:
        fields["result"] = result
    if error is not None:
        fields |= {"error": error, "cause": cause or ""}
    return fields


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def to_dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; floats are refused by boto3."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: to_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_dynamo(item) for item in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value
