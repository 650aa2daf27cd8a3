"""The burst's clients: what they do with each answer, or with no answer at all."""

from __future__ import annotations

from typing import Any

import pytest

from local_runtime.http_api import ApiAnswer
from saga_testkit import burst
from saga_testkit.burst import BurstFigures, send_burst

pytestmark = pytest.mark.unit


class FlakyFrontDoor:
    """A client whose first `drops` requests per saga time out; after them, every start is accepted."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.calls: dict[str | None, int] = {}

    def start(self, path: str, body: Any, *, idempotency_key: str | None = None) -> ApiAnswer:
        self.calls[idempotency_key] = self.calls.get(idempotency_key, 0) + 1
        if self.calls[idempotency_key] <= self.drops:
            raise TimeoutError("timed out")
        return ApiAnswer(202, {"saga_id": idempotency_key}, {})


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(burst, "TRANSPORT_RETRY_SECONDS", 0.0)


def test_a_start_that_timed_out_is_sent_again_with_the_same_key_and_accepted():
    # Given a front door that drops each saga's first two requests
    front_door = FlakyFrontDoor(drops=2)
    figures = BurstFigures(sagas=2, clients=2)
    # When a burst of two sagas goes through it
    send_burst(front_door, "orders", {"a": ({}, "key-a"), "b": ({}, "key-b")}, figures)  # type: ignore[arg-type]
    # Then both are accepted, each after two requests with no answer, all under the saga's own key
    assert sorted(figures.accepted) == ["a", "b"]
    assert figures.unanswered == 4
    assert front_door.calls == {"key-a": 3, "key-b": 3}
    assert figures.failed == []


def test_a_start_that_never_gets_an_answer_is_reported_once_the_client_gives_up():
    # Given a front door that never answers
    front_door = FlakyFrontDoor(drops=10**9)
    figures = BurstFigures(sagas=1, clients=1)
    # When a saga's client has no time left to try again
    send_burst(front_door, "orders", {"a": ({}, "key-a")}, figures, give_up_seconds=-1.0)  # type: ignore[arg-type]
    # Then the saga is reported as never started, with the error
    assert figures.accepted == []
    assert len(figures.failed) == 1
    assert "TimeoutError" in figures.failed[0]


class FailingGateway(FlakyFrontDoor):
    """API Gateway in front of an integration whose first `drops` invocations per saga fail: 502."""

    def start(self, path: str, body: Any, *, idempotency_key: str | None = None) -> ApiAnswer:
        try:
            return super().start(path, body, idempotency_key=idempotency_key)
        except TimeoutError:
            return ApiAnswer(502, {"message": "Internal server error"}, {})


def test_a_start_answered_502_is_sent_again_with_the_same_key_and_accepted():
    # Given a gateway whose integration fails once per saga
    front_door = FailingGateway(drops=1)
    figures = BurstFigures(sagas=1, clients=1)
    # When a saga goes through it
    send_burst(front_door, "orders", {"a": ({}, "key-a")}, figures)  # type: ignore[arg-type]
    # Then it is accepted on the second request, under the same key, and nothing is reported failed
    assert figures.accepted == ["a"]
    assert front_door.calls == {"key-a": 2}
    assert (figures.unanswered, figures.failed) == (1, [])


class BrokenClient:
    """A client with a defect of its own: every start raises something that is not a network error."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self, path: str, body: Any, *, idempotency_key: str | None = None) -> ApiAnswer:
        self.calls += 1
        raise ValueError("cannot encode the body")


def test_a_client_error_that_is_not_a_network_one_is_reported_and_not_retried():
    # Given a client that fails before anything reaches the API
    client = BrokenClient()
    figures = BurstFigures(sagas=1, clients=1)
    # When a saga goes through it
    send_burst(client, "orders", {"a": ({}, "key-a")}, figures)  # type: ignore[arg-type]
    # Then the saga is reported failed with the error, after one try
    assert client.calls == 1
    assert figures.accepted == []
    assert len(figures.failed) == 1
    assert "ValueError" in figures.failed[0]
