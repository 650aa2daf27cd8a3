"""What the API does, free of HTTP: start a saga from a request body, read a saga, list sagas by status.

Every refusal happens before anything is written: the size is checked before the body is parsed, the body
and the key are validated before the saga record is created.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Protocol

from pydantic import ValidationError

from saga_api.errors import FieldProblem, InvalidBody, InvalidParameter, MalformedBody, RequestTooLarge, SagaNotFound
from saga_api.models import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, SAGA_ID_PATTERN, OrderRequest
from saga_records import SagaStatus
from saga_records.starter import StartedSaga

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
_SAGA_ID = re.compile(SAGA_ID_PATTERN)
# What GET /orders/{id} shows of a saga record (not its input, which holds the customer's details).
VISIBLE_FIELDS = (
    "saga_id",
    "saga_type",
    "status",
    "current_step",
    "steps",
    "error",
    "cause",
    "failed_step",
    "compensation_error",
    "compensation_cause",
    "created_at",
    "updated_at",
)
STEP_FIELDS = ("status", "error", "cause", "finished_at")  # not a step's result: it echoes customer details
_PAGE_KEY_FIELDS = {"saga_id", "status", "created_at"}  # the by_status index's LastEvaluatedKey


class Starter(Protocol):
    def start(self, saga_id: str, saga_input: dict[str, Any]) -> StartedSaga: ...


class Records(Protocol):
    def get(self, saga_id: str) -> dict[str, Any] | None: ...

    def page_by_status(
        self, status: SagaStatus, *, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]: ...


class OrderSagas:
    def __init__(self, starter: Starter, records: Records, *, max_request_bytes: int) -> None:
        self.starter = starter
        self.records = records
        self.max_request_bytes = max_request_bytes

    def start(self, body: bytes, idempotency_key: str | None) -> StartedSaga:
        """Start (or find) the saga this request names: the idempotency key, else the order id, is its id."""
        if len(body) > self.max_request_bytes:
            raise RequestTooLarge(
                f"body is {len(body)} bytes; the saga carries at most {self.max_request_bytes}",
                [FieldProblem("body", f"larger than {self.max_request_bytes} bytes")],
            )
        if idempotency_key is not None:
            check_saga_id(idempotency_key, IDEMPOTENCY_KEY_HEADER)
        order = parse_order(body)
        saga_id = idempotency_key or order.order_id
        return self.starter.start(saga_id, order.model_dump(mode="json"))

    def status(self, saga_id: str) -> dict[str, Any]:
        check_saga_id(saga_id, "id")
        record = self.records.get(saga_id)
        if record is None:
            raise SagaNotFound(f"no saga {saga_id}", [FieldProblem("id", "unknown saga id")])
        return view(record)

    def list(self, status: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        wanted = _status(status)
        page_size = _limit(limit)
        start_key = decode_page_token(next_token, wanted) if next_token is not None else None
        items, last_key = self.records.page_by_status(wanted, limit=page_size, start_key=start_key)
        return {
            "sagas": [view(item) for item in items],
            "next_token": encode_page_token(last_key) if last_key else None,
        }


def view(record: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a saga record."""
    shown = {field: record[field] for field in VISIBLE_FIELDS if field in record}
    shown["steps"] = {
        step: {field: value for field, value in fields.items() if field in STEP_FIELDS}
        for step, fields in record.get("steps", {}).items()
    }
    return shown


def parse_order(body: bytes) -> OrderRequest:
    try:
        # From the JSON text, so strict mode takes JSON's own types (a JSON integer, not "2", is a quantity).
        return OrderRequest.model_validate_json(body)
    except ValidationError as error:
        issues = error.errors(include_url=False)
        if any(issue["type"] == "json_invalid" for issue in issues):
            raise MalformedBody("body is not a JSON document", [FieldProblem("body", issues[0]["msg"])]) from None
        problems = [
            FieldProblem(".".join(str(part) for part in issue["loc"]) or "body", issue["msg"]) for issue in issues
        ]
        raise InvalidBody("body does not match the order model", problems) from None


def check_saga_id(value: str, field: str) -> None:
    if not _SAGA_ID.fullmatch(value):
        raise InvalidParameter(
            f"{field} is not a valid saga id",
            [FieldProblem(field, "1-80 characters, letters, digits, '-' and '_' only")],
        )


def _status(value: str | None) -> SagaStatus:
    allowed = ", ".join(status.value for status in SagaStatus)
    if value is None:
        raise InvalidParameter("status is required", [FieldProblem("status", f"required, one of {allowed}")])
    try:
        return SagaStatus(value)
    except ValueError:
        raise InvalidParameter(f"unknown status {value!r}", [FieldProblem("status", f"one of {allowed}")]) from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIST_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIST_LIMIT:
        raise InvalidParameter(
            f"limit {value!r} is out of range", [FieldProblem("limit", f"an integer from 1 to {MAX_LIST_LIMIT}")]
        )
    return int(value)


def encode_page_token(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode().rstrip("=")


def decode_page_token(token: str, status: SagaStatus) -> dict[str, Any]:
    """The opaque next_token back into the index key it stands for; refused unless it is one, for this status."""
    invalid = InvalidParameter("next_token is not valid", [FieldProblem("next_token", "not a token of this listing")])
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != _PAGE_KEY_FIELDS or key.get("status") != status.value:
        raise invalid
    if not all(isinstance(value, str) for value in key.values()):
        raise invalid
    return key
