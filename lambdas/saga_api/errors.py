"""What can go wrong with a request, as typed exceptions; handlers.py maps each to its HTTP answer in one place."""

from __future__ import annotations

from dataclasses import dataclass

# What an error body repeats of a request is capped: a rejected value, a field name or a header can be as long as the
# body (64 KiB) or a header (10 KiB) and an answer must never grow with it.
MAX_QUOTED_CHARS = 80


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters with an ellipsis: how error messages cite what a request sent."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class FieldProblem:
    field: str  # dotted path into the body (items.0.quantity), or the header / parameter name
    problem: str


class ApiError(Exception):
    """Base of the request errors; `problems` name the fields at fault."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class RequestTooLarge(ApiError):
    """The body is larger than the saga can carry."""


class MalformedBody(ApiError):
    """The body is not a JSON document this API takes (UTF-8, no duplicate keys, nested at most a few levels)."""


class UnsupportedMediaType(ApiError):
    """The body is declared as something other than JSON, or in a content coding the API does not take."""


class InvalidBody(ApiError):
    """The body is JSON but breaks the request model (types, missing or unknown fields, limits)."""


class InvalidParameter(ApiError):
    """A header, path or query parameter is not acceptable."""


class SagaNotFound(ApiError):
    """No saga has this id."""
