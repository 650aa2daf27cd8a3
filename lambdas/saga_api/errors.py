"""What can go wrong with a request, as typed exceptions; handlers.py maps each to its HTTP answer in one place."""

from __future__ import annotations

from dataclasses import dataclass


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
    """The body is not a JSON document."""


class InvalidBody(ApiError):
    """The body is JSON but breaks the request model (types, missing or unknown fields, limits)."""


class InvalidParameter(ApiError):
    """A header, path or query parameter is not acceptable."""


class SagaNotFound(ApiError):
    """No saga has this id."""
