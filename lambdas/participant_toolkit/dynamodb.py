"""DynamoDB plumbing shared by the participants' repositories.

Two translations live here, once: throttling becomes `TransientFailure("<Service>.StoreUnavailable")` (the state
machine retries it), and a failed condition becomes `ConditionFailed`, a `StateChanged` the saga-record protocol
re-reads on. `SagaTable` is a participant's table (keys `pk`, `sk`) with every call behind both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from participant_toolkit.errors import TransientFailure
from participant_toolkit.saga_record import StateChanged

Item = dict[str, Any]

THROTTLING_ERROR_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError"}
)
# Reasons a transaction is cancelled that say nothing about the data: the same write may well succeed on retry.
TRANSIENT_CANCELLATION_CODES = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"})
CONDITION_FAILED = "ConditionalCheckFailed"
ABSENT = "attribute_not_exists(pk)"


class ConditionFailed(StateChanged):
    """A conditional write (or transaction) was refused; `failed_indexes` names the transaction items that failed."""

    def __init__(self, failed_indexes: tuple[int, ...] = ()) -> None:
        super().__init__(f"condition failed (transaction items {list(failed_indexes)})")
        self.failed_indexes = failed_indexes


@contextmanager
def translate_throttling(error_prefix: str) -> Iterator[None]:
    """Raise DynamoDB throttling inside the block as `TransientFailure(f"{error_prefix}.StoreUnavailable")`."""
    try:
        yield
    except ClientError as error:
        if _is_throttling(error):
            raise TransientFailure(f"{error_prefix}.StoreUnavailable", _message(error)) from error
        raise


def _is_throttling(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    if code in THROTTLING_ERROR_CODES:
        return True
    if code == "TransactionCanceledException":
        reasons = set(_cancellation_codes(error))
        return bool(reasons & TRANSIENT_CANCELLATION_CODES) and CONDITION_FAILED not in reasons
    return False


def _cancellation_codes(error: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def _message(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}"


class SagaTable:
    """One participant's table: consistent reads, conditional writes, transactions; boto3 created on first use."""

    def __init__(self, table_name: str, *, error_prefix: str, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._error_prefix = error_prefix
        self._dynamodb = dynamodb

    @cached_property
    def _table(self) -> Any:
        return (self._dynamodb or boto3.resource("dynamodb")).Table(self.table_name)

    # --- reads (consistent: the decision to apply or compensate must see the latest write) ---

    def get(self, pk: str, sk: str) -> Item | None:
        with translate_throttling(self._error_prefix):
            return self._table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")

    def query(self, pk: str) -> list[Item]:
        return self._paginate(self._table.query, KeyConditionExpression=Key("pk").eq(pk), ConsistentRead=True)

    def scan_prefix(self, pk_prefix: str) -> list[Item]:
        """Every item whose pk starts with `pk_prefix` (reconciliation and tests; not on the command path)."""
        return self._paginate(self._table.scan, FilterExpression=Attr("pk").begins_with(pk_prefix), ConsistentRead=True)

    def _paginate(self, operation: Any, **request: Any) -> list[Item]:
        items: list[Item] = []
        with translate_throttling(self._error_prefix):
            while True:
                page = operation(**request)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- writes ---

    def put(self, item: Item, *, condition: str | None = ABSENT) -> None:
        """Put `item`, by default only where none exists; `condition=None` overwrites."""
        request: dict[str, Any] = {"Item": item}
        if condition:
            request["ConditionExpression"] = condition
        self._write(self._table.put_item, **request)

    def update(self, pk: str, sk: str, *, update: str, condition: str, names: dict[str, str], values: Item) -> None:
        self._write(
            self._table.update_item,
            Key={"pk": pk, "sk": sk},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def transact(self, *operations: Item) -> None:
        """All or nothing; a failed condition raises `ConditionFailed` naming the failed operations by index."""
        try:
            with translate_throttling(self._error_prefix):
                self._table.meta.client.transact_write_items(TransactItems=list(operations))
        except ClientError as error:
            codes = _cancellation_codes(error)
            if CONDITION_FAILED in codes:
                failed = tuple(index for index, code in enumerate(codes) if code == CONDITION_FAILED)
                raise ConditionFailed(failed) from error
            raise

    def _write(self, operation: Any, **request: Any) -> None:
        try:
            with translate_throttling(self._error_prefix):
                operation(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConditionFailed() from error
            raise

    # --- transaction operations (arguments to `transact`) ---

    def put_op(self, item: Item, *, condition: str = ABSENT) -> Item:
        return {"Put": {"TableName": self.table_name, "Item": item, "ConditionExpression": condition}}

    def absent_check_op(self, pk: str, sk: str) -> Item:
        """Guard a transaction on an item not existing (e.g. no tombstone yet)."""
        return {
            "ConditionCheck": {"TableName": self.table_name, "Key": {"pk": pk, "sk": sk}, "ConditionExpression": ABSENT}
        }

    def update_op(
        self,
        pk: str,
        sk: str,
        *,
        update: str,
        values: Item,
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Item:
        operation: Item = {
            "TableName": self.table_name,
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
        if condition:
            operation["ConditionExpression"] = condition
        if names:
            operation["ExpressionAttributeNames"] = names
        return {"Update": operation}
