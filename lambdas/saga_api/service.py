"""What the API does, free of HTTP: start a saga of a route's type from a request body, read one, list them by status.

Every refusal happens before anything is written: the size is checked before the body is parsed, the body, the saga
id and the key are validated, and the saga type's admission control is asked, before the saga record is created.

Identity: API Gateway drops a SigV4 Authorization header before the Lambda, so the handler cannot tell a signed header
from one added to a replayed request. A saga whose definition names `api.id_field` is named by that field of the
(signed) body, whatever the headers say: an Idempotency-Key header is accepted only when it equals that id. A saga
without one is named by the Idempotency-Key header, which it then requires.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from saga_api.admission import Admission, StartRefused
from saga_api.errors import (
    FieldProblem,
    InvalidBody,
    InvalidParameter,
    MalformedBody,
    RequestTooLarge,
    SagaNotFound,
    quoted,
)
from saga_api.json_body import parse_json_document
from saga_api.models import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, SAGA_ID_PATTERN
from saga_api.page_tokens import PageTokens
from saga_api.settings import SagaSetting
from saga_records import SagaStatus
from saga_records.starter import StartedSaga

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
INPUT_MODEL = "Input"  # the class a saga's input module defines (statemachines.definition.INPUT_MODEL)
_SAGA_ID = re.compile(SAGA_ID_PATTERN)
# What GET /<route>/{id} shows of a saga record (not its input, which holds the customer's details).
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
    "pending",
    "created_at",
    "updated_at",
)
STEP_FIELDS = ("status", "error", "cause", "finished_at")  # not a step's result: it echoes customer details
_LIMIT = re.compile(r"[0-9]{1,3}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses


@dataclass(frozen=True)
class Route:
    """One saga type behind the API: its URL segment, the field that names a saga (if any) and its body model."""

    saga_type: str
    path: str
    id_field: str | None
    input_model: type[BaseModel]

    @classmethod
    def of(cls, setting: SagaSetting) -> Route:
        model = getattr(importlib.import_module(setting.input_module), INPUT_MODEL)
        return cls(setting.saga_type, setting.path, setting.id_field, model)


class Starter(Protocol):
    def start(self, saga_type: str, saga_id: str, saga_input: dict[str, Any]) -> StartedSaga: ...


class Records(Protocol):
    def get(self, saga_id: str) -> dict[str, Any] | None: ...

    def page_by_status(
        self,
        status: SagaStatus,
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        saga_type: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]: ...


class SagaFrontDoor:
    def __init__(
        self,
        starter: Starter,
        records: Records,
        routes: list[Route],
        *,
        max_request_bytes: int,
        page_tokens: PageTokens,
        admission: Admission,
    ) -> None:
        self.starter = starter
        self.records = records
        self.routes = routes
        self.max_request_bytes = max_request_bytes
        self.page_tokens = page_tokens
        self.admission = admission

    def start(self, route: Route, body: bytes, idempotency_key: str | None) -> StartedSaga:
        """Start (or find) the saga this request names: its `id_field`, or its Idempotency-Key, is the saga id."""
        if len(body) > self.max_request_bytes:
            raise RequestTooLarge(
                f"body is {len(body)} bytes; the saga carries at most {self.max_request_bytes}",
                [FieldProblem("body", f"larger than {self.max_request_bytes} bytes")],
            )
        if idempotency_key is not None:
            check_saga_id(idempotency_key, IDEMPOTENCY_KEY_HEADER)
        elif route.id_field is None:
            raise InvalidParameter(
                f"{IDEMPOTENCY_KEY_HEADER} is required: it names the {route.saga_type} saga",
                [FieldProblem(IDEMPOTENCY_KEY_HEADER, "required, 1-80 characters, letters, digits, '-' and '_'")],
            )
        saga_input = parse_input(route, body)
        saga_id = saga_id_of(route, saga_input, idempotency_key)
        try:
            self.admission.admit(route.saga_type)
        except StartRefused:
            if self.records.get(saga_id) is None:
                raise
            # A saga already taken: its duplicates get their answer (202, or 409 for another body) whatever the load.
        return self.starter.start(route.saga_type, saga_id, saga_input.model_dump(mode="json"))

    def status(self, route: Route, saga_id: str) -> dict[str, Any]:
        check_saga_id(saga_id, "id")
        record = self.records.get(saga_id)
        if record is None or record.get("saga_type") != route.saga_type:
            raise SagaNotFound(f"no {route.saga_type} saga {saga_id}", [FieldProblem("id", "unknown saga id")])
        return view(record)

    def list(self, route: Route, status: str | None, limit: str | None, next_token: str | None) -> dict[str, Any]:
        wanted = _status(status)
        page_size = _limit(limit)
        start_key = self.page_tokens.decode(next_token, wanted, route.saga_type) if next_token is not None else None
        items, last_key = self.records.page_by_status(
            wanted, limit=page_size, start_key=start_key, saga_type=route.saga_type
        )
        return {
            "saga_type": route.saga_type,
            "sagas": [view(item) for item in items],
            "next_token": self.page_tokens.encode(last_key, route.saga_type) if last_key else None,
        }


def view(record: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a saga record."""
    shown = {field: record[field] for field in VISIBLE_FIELDS if field in record}
    shown["steps"] = {
        step: {field: value for field, value in fields.items() if field in STEP_FIELDS}
        for step, fields in record.get("steps", {}).items()
    }
    return shown


def parse_input(route: Route, body: bytes) -> BaseModel:
    parse_json_document(body)  # strict JSON first: one reading of the document, or a 400 naming why not
    try:
        # From the JSON text, so a strict model takes JSON's own types (a JSON integer, not "2", is a quantity).
        return route.input_model.model_validate_json(body)
    except ValidationError as error:
        issues = error.errors(include_url=False)
        if any(issue["type"] == "json_invalid" for issue in issues):
            raise MalformedBody("body is not a JSON document", [FieldProblem("body", issues[0]["msg"])]) from None
        problems = [
            FieldProblem(".".join(str(part) for part in issue["loc"]) or "body", issue["msg"]) for issue in issues
        ]
        raise InvalidBody(f"body does not match the {route.saga_type} input model", problems) from None


def saga_id_of(route: Route, saga_input: BaseModel, idempotency_key: str | None) -> str:
    """The saga id: the body's `id_field` (an Idempotency-Key must then be the same), else the Idempotency-Key."""
    if route.id_field is None:
        assert idempotency_key is not None
        return idempotency_key
    saga_id = getattr(saga_input, route.id_field)
    if not isinstance(saga_id, str) or not _SAGA_ID.fullmatch(saga_id):
        raise InvalidBody(
            f"{route.id_field} is the saga id, and is not a valid one",
            [FieldProblem(route.id_field, "1-80 characters, letters, digits, '-' and '_' only")],
        )
    if idempotency_key is not None and idempotency_key != saga_id:
        raise InvalidParameter(
            f"{IDEMPOTENCY_KEY_HEADER} {quoted(idempotency_key)} differs from {route.id_field} {quoted(saga_id)}, "
            f"which names the saga: send no {IDEMPOTENCY_KEY_HEADER}, or that value",
            [
                FieldProblem(IDEMPOTENCY_KEY_HEADER, f"must equal the body's {route.id_field} when given"),
                FieldProblem(route.id_field, f"the saga id; {IDEMPOTENCY_KEY_HEADER} says otherwise"),
            ],
        )
    return saga_id


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
        raise InvalidParameter(
            f"unknown status {quoted(value)}", [FieldProblem("status", f"one of {allowed}")]
        ) from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIST_LIMIT
    if not _LIMIT.fullmatch(value) or not 1 <= int(value) <= MAX_LIST_LIMIT:
        raise InvalidParameter(
            f"limit {quoted(value)} is out of range", [FieldProblem("limit", f"an integer from 1 to {MAX_LIST_LIMIT}")]
        )
    return int(value)
