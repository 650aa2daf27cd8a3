"""The API over real HTTP on the local runtime: signed requests, the gateway's validation, the same handler,
the saga it starts; and what the local API Gateway does with hostile or careless requests on the wire. Few sagas,
scaled clock: the malformed-request table runs in full in tests/unit/api, the framing cases in
tests/unit/test_http_wire.py."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPResponse
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.credentials import Credentials

from local_runtime.cloud import REGION
from local_runtime.http_api import SignedApiClient
from local_runtime.sigv4 import sign
from saga_testkit.faults import Fault
from saga_testkit.observe import FINISHED_STATUSES
from tests.e2e.orders import TIME_SCALE, make_order

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]
PATH = "orders"  # the order saga's route (its definition's api.path); order_id names the saga
CONCURRENT_DUPLICATES = 20
# Between status reads: each is a signed request through the local gateway and the handler, sharing this
# process with the participants, whose heartbeats (0.8 s on this clock) must not starve.
POLL_SECONDS = 0.25


def _key() -> str:
    return f"api-{uuid.uuid4().hex[:12]}"


def _order(saga_id: str, **shape) -> dict:
    """An order whose order_id, the saga id, is `saga_id`."""
    return {**make_order(**shape), "order_id": saga_id}


def _executions_named(local_sagas, name: str) -> list[dict]:
    pages = boto3.client("stepfunctions").get_paginator("list_executions")
    return [
        execution
        for page in pages.paginate(stateMachineArn=local_sagas.state_machine_arn)
        for execution in page["executions"]
        if execution["name"] == name
    ]


def _wait_for(client, saga_id: str, done, timeout_seconds: float = 30) -> list[dict]:
    """GET the saga until `done(answer)`; every answer seen, in order."""
    seen, deadline = [], time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        answer = client.get(PATH, saga_id)
        assert answer.status == 200, answer
        seen.append(answer.body)
        if done(answer.body):
            return seen
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{saga_id} never got there: last {seen[-1:]}")


def _finished(body: dict) -> bool:
    return body["status"] in FINISHED_STATUSES


def _ran_to_an_end_once(client, local_sagas, saga_id: str) -> None:
    """The saga ran, once, to an end. Completed, usually; on a loaded 2-core machine a step can miss its scaled
    heartbeat (0.8 s) and the saga times out and compensates: still started once and ended."""
    finished = _wait_for(client, saga_id, _finished)[-1]
    assert finished["status"] == "COMPLETED" or finished.get("error") == "States.Timeout", json.dumps(finished)
    assert len(_executions_named(local_sagas, saga_id)) == 1


def _without(order: dict, field: str) -> dict:
    return {name: value for name, value in order.items() if name != field}


def _with_item(order: dict, **changes) -> dict:
    return {**order, "items": [{**order["items"][0], **changes}]}


MALFORMED_OVER_HTTP = [
    # (case id, body builder, headers, status, field): the gateway's validator answers the body cases
    ("missing items", lambda order: _without(order, "items"), {}, 400, "items"),
    ("quantity is a string", lambda order: _with_item(order, quantity="2"), {}, 400, "items.0.quantity"),
    ("negative quantity", lambda order: _with_item(order, quantity=-1), {}, 400, "items.0.quantity"),
    ("empty items", lambda order: {**order, "items": []}, {}, 400, "items"),
    ("unknown field", lambda order: {**order, "coupon": "FREE"}, {}, 400, "coupon"),
    ("not JSON", lambda order: "{" + json.dumps(order), {}, 400, "body"),
    ("nested 10,000 deep", lambda order: "[" * 10_000 + "]" * 10_000, {}, 400, "body"),
    ("NaN is not JSON", lambda order: json.dumps(order)[:-1] + ', "order_id": NaN}', {}, 400, "body"),
    # valid against the model, but more than the saga can carry: the handler checks the size first
    ("over the size budget", lambda order: json.dumps(order)[:-1] + " " * 70_000 + "}", {}, 413, "body"),
    ("key with a slash", lambda order: order, {"Idempotency-Key": "a/b"}, 400, "Idempotency-Key"),
    # a header is not what the signature binds for the handler: one that is not the order id names no saga
    ("key other than the order id", lambda order: order, {"Idempotency-Key": "k-other"}, 400, "order_id"),
]


@pytest.mark.parametrize(
    ("build", "headers", "status", "field"), [pytest.param(*case[1:], id=case[0]) for case in MALFORMED_OVER_HTTP]
)
def test_a_malformed_request_over_http_is_refused_and_starts_nothing(
    local_api, local_sagas, build, headers, status, field
):
    _, client = local_api
    order = make_order()
    # Given one wrong thing / When it is posted over HTTP, signed
    answer = client.start(PATH, build(order), idempotency_key=headers.get("Idempotency-Key"))
    # Then the status and the field named, and neither a record nor an execution for the order
    assert answer.status == status, answer.body
    assert field in [problem["field"] for problem in answer.body["errors"]], answer.body
    for saga_id in {order["order_id"], headers.get("Idempotency-Key", order["order_id"])}:
        assert local_sagas.records.get(saga_id) is None
        assert _executions_named(local_sagas, saga_id) == []


def test_an_unsigned_request_is_refused_with_403(local_api, local_sagas):
    _, client = local_api
    order = make_order()
    answer = client.request("POST", f"/{PATH}", body=order, signed=False)
    assert answer.status == 403
    assert answer.body == {"message": "Missing Authentication Token"}
    assert local_sagas.records.get(order["order_id"]) is None


def test_a_request_signed_with_the_wrong_secret_is_refused_with_403(local_api, local_sagas):
    api, client = local_api
    impostor = SignedApiClient(api.url, Credentials(client.credentials.access_key, "not-the-secret", "testing"))
    order = make_order()
    answer = impostor.start(PATH, order)
    assert answer.status == 403
    assert "signature" in answer.body["message"]
    assert local_sagas.records.get(order["order_id"]) is None
    # Reading is authenticated too
    assert impostor.get(PATH, order["order_id"]).status == 403


def test_concurrent_duplicates_start_one_saga_and_get_one_answer(local_api, local_sagas):
    _, client = local_api
    key = _key()
    order = _order(key)
    barrier = threading.Barrier(CONCURRENT_DUPLICATES)

    def post():
        barrier.wait()
        return client.start(PATH, order)

    # Given the same request sent 20 times at once
    with ThreadPoolExecutor(CONCURRENT_DUPLICATES) as pool:
        answers = list(pool.map(lambda _: post(), range(CONCURRENT_DUPLICATES)))
    # Then every answer is the same 202, and there is one saga with one execution
    assert {(answer.status, json.dumps(answer.body, sort_keys=True)) for answer in answers} == {
        (
            202,
            json.dumps(
                {"saga_id": key, "saga_type": local_sagas.definition.name, "status_url": f"/v1/{PATH}/{key}"},
                sort_keys=True,
            ),
        )
    }
    assert len(_executions_named(local_sagas, key)) == 1
    # And that one saga runs to an end
    _ran_to_an_end_once(client, local_sagas, key)
    # And each participant's domain code ran at most once for it (exactly once per completed step; a step that timed
    # out on a loaded machine may have acted unanswered), and stock and money agree
    completed = local_sagas.outcome(key).actions_succeeded
    for step in local_sagas.definition.steps:
        effects = local_sagas.faults.effects(key, step.name, "action")
        assert effects == 1 if step.name in completed else effects <= 1, step.name
    assert [problem for problem in local_sagas.check().problems if key in problem] == []


def test_the_same_order_id_with_another_body_is_a_409_that_changes_nothing(local_api, local_sagas):
    _, client = local_api
    key = _key()
    order = _order(key)
    assert client.start(PATH, order).status == 202
    _wait_for(client, key, _finished)
    before = local_sagas.records.get(key)
    answer = client.start(PATH, _with_item(order, quantity=2))
    assert answer.status == 409
    # And the same order replayed with an Idempotency-Key of its own starts no second saga either
    assert client.start(PATH, order, idempotency_key=_key()).status == 400
    assert local_sagas.records.get(key) == before
    assert len(_executions_named(local_sagas, key)) == 1


def test_status_through_a_sagas_life_running_completed_compensated_parked(local_api, local_sagas):
    _, client = local_api
    running, declined, parked = _key(), _key(), _key()
    # Given a slow payment, a declined card, and a refund that fails for good after a shipping failure
    local_sagas.faults.plan(running, "process_payment", "action", Fault.delay(60 * TIME_SCALE))
    local_sagas.faults.plan(parked, "create_shipment", "action", Fault.permanent("Shipping.AddressNotServiceable"))
    local_sagas.faults.plan(parked, "process_payment", "compensation", Fault.permanent("Payment.RefundRejected"))
    # (one after the other: on a loaded 2-core machine, sagas side by side can miss the scaled heartbeats)
    assert client.start(PATH, _order(running)).status == 202

    # Running: PENDING at the payment step, the step before it done, nothing after it started
    seen = _wait_for(client, running, lambda body: body["current_step"] == "process_payment")
    now = seen[-1]
    assert now["status"] == "PENDING"
    assert now["steps"]["reserve_inventory"]["status"] == "SUCCEEDED"
    assert now["steps"]["process_payment"]["status"] == "RUNNING"
    assert now["steps"]["send_confirmation"]["status"] == "NOT_STARTED"
    # Completed
    done = _wait_for(client, running, _finished)[-1]
    assert done["status"] == "COMPLETED"
    assert {step["status"] for step in done["steps"].values()} == {"SUCCEEDED"}
    assert done["created_at"] < done["updated_at"]
    # Compensated: the failing step and its error, the step before it undone
    assert client.start(PATH, _order(declined, card="tok_declined")).status == 202
    failed = _wait_for(client, declined, _finished)[-1]
    assert failed["status"] == "FAILED"
    assert failed["error"] == "Payment.CardDeclined"
    assert failed["steps"]["process_payment"]["status"] == "FAILED"
    assert failed["steps"]["reserve_inventory"]["status"] == "COMPENSATED"
    # Parked: which compensation failed and why, next to the error that started compensating
    assert client.start(PATH, _order(parked)).status == 202
    stuck = _wait_for(client, parked, _finished)[-1]
    assert stuck["status"] == "COMPENSATION_FAILED"
    assert (stuck["failed_step"], stuck["compensation_error"]) == ("process_payment", "Payment.RefundRejected")
    assert stuck["error"] == "Shipping.AddressNotServiceable"
    assert stuck["pending"] == [
        {"step": "process_payment", "kind": "compensation"},
        {"step": "reserve_inventory", "kind": "compensation"},
    ]
    # And the listing by status finds each of them, a page at a time
    for status, key in (("COMPLETED", running), ("FAILED", declined), ("COMPENSATION_FAILED", parked)):
        assert key in _list_all(client, status)


def _list_all(client, status: str) -> list[str]:
    ids, token = [], None
    while True:
        answer = client.list(PATH, status, limit=5, next_token=token)
        assert answer.status == 200, answer.body
        assert answer.body["saga_type"] == "OrderFulfillment"
        ids += [saga["saga_id"] for saga in answer.body["sagas"]]
        token = answer.body["next_token"]
        if token is None:
            return ids


def test_a_throttled_start_is_503_and_the_clients_retry_starts_it(local_api, local_sagas):
    api, client = local_api
    key = _key()
    order = _order(key)
    api.faults.throttle(key)
    # When StartExecution is throttled / Then 503 with Retry-After, and the saga waits, recorded, in STARTED
    answer = client.start(PATH, order)
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    assert client.get(PATH, key).body["status"] == "STARTED"
    assert _executions_named(local_sagas, key) == []
    # When the client retries the same order / Then it starts, once, and runs to an end
    assert client.start(PATH, order).status == 202
    _ran_to_an_end_once(client, local_sagas, key)


def test_the_scheduled_reconciler_starts_an_orphan_nobody_retried(local_api, local_sagas):
    api, client = local_api
    key = _key()
    api.faults.throttle(key)
    assert client.start(PATH, _order(key)).status == 503
    # When the reconciler runs (EventBridge's schedule, locally on the scaled clock) after the grace period
    record = local_sagas.records.get(key)
    grace = float(api.schedules[0].environment["START_GRACE_SECONDS"]) * TIME_SCALE
    time.sleep(grace)
    sweep = api.run_schedule()
    # Then the orphan is started and runs to its end: by this sweep, or by the schedule's own run (EventBridge's,
    # on the same scaled clock) when that one got to it first
    if key not in sweep["started"]:
        assert local_sagas.execution(key)["name"] == key
    assert record["status"] == "STARTED"
    _ran_to_an_end_once(client, local_sagas, key)


# -- hostile and careless requests, byte by byte ------------------------------------------------------------------
def _signed_raw(api, method, path, body=b"", *, unsigned=None, length=None, chunks=None, signed=None) -> bytes:
    """A request signed as an SDK signs it, written out by hand: `unsigned` headers are added after signing,
    `length` overrides the Content-Length, `chunks` sends the body chunked."""
    url = f"{api.url}{path}"
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"} if body else {}
    headers |= signed or {}
    headers = sign(method, url, headers=headers, body=body, credentials=api.credentials, region=REGION)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in {**headers, **(unsigned or {})}.items()]
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks) + b"0\r\n\r\n"
    elif body or length is not None:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _exchange(api, data: bytes, *, method="POST", then=None) -> tuple[int, dict, bytes]:
    """Send raw bytes to the local API; `then` acts on the socket before the answer is read. Status, headers, body."""
    with socket.create_connection(api.server.server_address[:2], timeout=10) as sock:
        sock.sendall(data)
        if then:
            then(sock)
        response = HTTPResponse(sock, method=method)
        response.begin()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


def _nothing_started(local_sagas, saga_id: str) -> bool:
    return local_sagas.records.get(saga_id) is None and _executions_named(local_sagas, saga_id) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/orders"),
        ("OPTIONS", "/orders"),
        ("TRACE", "/orders"),
        ("PROPFIND", "/orders"),
        ("get", "/orders?status=FAILED"),
        ("DELETE", "/orders/some-saga"),
        ("GET", "/nowhere"),
        ("GET", ""),
    ],
)
def test_a_method_or_resource_the_api_does_not_define_is_a_json_403_however_well_signed(local_api, method, path):
    api, _ = local_api
    # When a correctly signed request names a method or resource the API does not define
    status, headers, body = _exchange(api, _signed_raw(api, method, path), method=method)
    # Then API Gateway's answer, in JSON (never an HTML page), without a body for HEAD
    assert (status, headers["content-type"]) == (403, "application/json")
    if method == "HEAD":
        assert body == b""
        assert int(headers["content-length"]) > 0
    else:
        assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_connect_is_a_json_403(local_api):
    api, _ = local_api
    host = "{}:{}".format(*api.server.server_address[:2])
    request = f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    status, _, body = _exchange(api, request, method="CONNECT")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_an_order_whose_body_falls_short_of_its_content_length_starts_nothing(local_api, local_sagas):
    api, _ = local_api
    order = make_order()
    body = json.dumps(order).encode()
    # Given a signed order, complete JSON, announced ten bytes longer than it is / When the client stops sending
    request = _signed_raw(api, "POST", "/orders", body, length=len(body) + 10)
    status, _, answer = _exchange(api, request, then=lambda sock: sock.shutdown(socket.SHUT_WR))
    # Then 400, and neither a record nor an execution
    assert status == 400, answer
    assert _nothing_started(local_sagas, order["order_id"])


def test_an_order_whose_client_goes_away_mid_body_starts_nothing(local_api, local_sagas):
    api, _ = local_api
    order = make_order()
    body = json.dumps(order).encode()
    with socket.create_connection(api.server.server_address[:2], timeout=10) as sock:
        sock.sendall(_signed_raw(api, "POST", "/orders", body, length=len(body) + 10))
    time.sleep(0.5)  # what the server would do with it, it would have started by now
    assert _nothing_started(local_sagas, order["order_id"])


@pytest.mark.parametrize("length", ["abc", "-1", "1_0", "10, 20"])
def test_an_invalid_content_length_gets_a_json_400(local_api, local_sagas, length):
    api, _ = local_api
    order = make_order()
    request = _signed_raw(api, "POST", "/orders", json.dumps(order).encode(), length=length)
    status, headers, body = _exchange(api, request)
    assert (status, headers["content-type"], headers.get("connection")) == (400, "application/json", "close")
    assert "message" in json.loads(body)
    assert _nothing_started(local_sagas, order["order_id"])


def test_a_content_length_over_10_mb_is_a_413_before_the_body_is_sent(local_api):
    api, _ = local_api
    status, _, body = _exchange(api, _signed_raw(api, "POST", "/orders", length=10 * 1024 * 1024 + 1))
    assert (status, json.loads(body)) == (413, {"message": "Request Too Long"})


def test_a_signed_order_sent_chunked_is_accepted_as_one_body(local_api, local_sagas):
    api, client = local_api
    order = make_order()
    body = json.dumps(order).encode()
    # When a signed order arrives in three chunks
    chunks = [body[:10], body[10:50], body[50:]]
    status, _, answer = _exchange(api, _signed_raw(api, "POST", "/orders", body, chunks=chunks))
    # Then it is the order the client signed: accepted, and its saga runs to an end (the shared cloud stays settled)
    assert status == 202, answer
    assert json.loads(answer)["saga_id"] == order["order_id"]
    _ran_to_an_end_once(client, local_sagas, order["order_id"])


def test_unsigned_payload_is_refused(local_api, local_sagas):
    _, client = local_api
    order = make_order()
    answer = client.request("POST", f"/{PATH}", body=order, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert answer.status == 403
    assert "signature" in answer.body["message"]
    assert _nothing_started(local_sagas, order["order_id"])


def test_a_content_hash_header_that_is_not_the_bodys_is_refused(local_api, local_sagas):
    api, _ = local_api
    order, other = make_order(), make_order()
    body = json.dumps(order).encode()
    claimed = {"X-Amz-Content-SHA256": hashlib.sha256(json.dumps(other).encode()).hexdigest()}
    status, _, answer = _exchange(api, _signed_raw(api, "POST", "/orders", body, unsigned=claimed))
    assert status == 403, answer
    assert _nothing_started(local_sagas, order["order_id"])


def test_the_proxy_event_forwards_unsigned_headers_but_not_the_signature(local_api, monkeypatch):
    api, _ = local_api
    events = []
    invoke = api.invoke

    def recording(function, event):
        events.append(event)
        return invoke(function, event)

    monkeypatch.setattr(api, "invoke", recording)
    # When a signed request comes with a header added after signing
    request = _signed_raw(api, "GET", f"/orders/{_key()}", unsigned={"X-Added-Later": "1"})
    status, _, _ = _exchange(api, request, method="GET")
    # Then the handler answers it (an unknown saga), and its event has the unsigned header and no Authorization:
    # API Gateway drops a SigV4 Authorization header, so no handler can read SignedHeaders
    assert status == 404
    [event] = events
    assert event["headers"]["X-Added-Later"] == "1"
    assert "x-amz-date" in {name.lower() for name in event["headers"]}
    assert "authorization" not in {name.lower() for name in event["headers"]}
    assert "authorization" not in {name.lower() for name in event["multiValueHeaders"]}


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda order: {**order, "order_id": "x" * 1_000_000}, id="a 1 MB order id"),
        pytest.param(lambda order: {**order, **{f"extra{n}": n for n in range(10_000)}}, id="10,000 unknown fields"),
    ],
)
def test_the_validators_answer_quotes_a_rejected_value_capped(local_api, local_sagas, build):
    _, client = local_api
    order = make_order()
    answer = client.start(PATH, build(order))
    assert answer.status == 400
    assert len(json.dumps(answer.body)) < 4000, len(json.dumps(answer.body))
    assert _nothing_started(local_sagas, order["order_id"])
