"""The local API Gateway's own pieces, without a cloud: the request validator, the model a content type selects, the
headers the proxy event forwards, and the Lambda proxy answer."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from local_runtime.http_api import (
    MAX_LISTED_PROBLEMS,
    LocalHttpApi,
    Route,
    _forwarded_headers,
    _has_parameter,
    _proxy_answer,
    _schema_problems,
)
from local_runtime.sigv4 import sign
from saga_api.models import request_json_schema
from sagas.order_fulfillment import Input
from tests.unit.api.fakes import ORDER

pytestmark = pytest.mark.unit
SCHEMA = request_json_schema(Input, title="OrderFulfillmentInput")
RECURSIVE = {"type": "array", "items": {"$ref": "#"}}  # a model a team may write: arrays of arrays of ...


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _body(**changes) -> bytes:
    return json.dumps({**ORDER, **changes}).encode()


@pytest.mark.parametrize(
    ("schema", "body", "says"),
    [
        pytest.param(SCHEMA, _nested(10_000), "nested too deeply", id="nested 10,000 deep"),
        pytest.param(RECURSIVE, _nested(900), "nested too deeply", id="parsed, nested too deep to validate"),
        pytest.param(SCHEMA, b'{"order_id": "\xff"}', "not UTF-8", id="not UTF-8"),
        pytest.param(SCHEMA, b'{"order_id": NaN}', "NaN is not a JSON value", id="NaN"),
        pytest.param(SCHEMA, b'{"order_id": -Infinity}', "Infinity is not a JSON value", id="Infinity"),
        pytest.param(SCHEMA, b'{"order_id": ' + b"9" * 5000 + b"}", "not JSON", id="a number with 5,000 digits"),
        pytest.param(SCHEMA, b'\xef\xbb\xbf{"order_id": "a"}', "not JSON", id="a byte order mark"),
        pytest.param(SCHEMA, b"", "not JSON", id="empty"),
    ],
)
def test_a_body_the_validator_cannot_read_is_a_problem_of_the_body_not_an_error(schema, body, says):
    # When the validator checks it / Then it names the body and says why; nothing is raised (which would be a 502)
    problems = _schema_problems(schema, body)
    assert [problem["field"] for problem in problems] == ["body"]
    assert says in problems[0]["problem"]


def test_a_valid_body_has_no_problem():
    assert _schema_problems(SCHEMA, json.dumps(ORDER).encode()) == []


def test_a_rejected_value_is_quoted_capped_and_the_rule_still_named():
    # Given a 1 MB customer id (the model allows 64 characters)
    body = _body(customer={**ORDER["customer"], "customer_id": "x" * 1_000_000})
    problems = _schema_problems(SCHEMA, body)
    # Then each problem names the field and the broken rule, and quotes a few dozen characters of the value
    assert {problem["field"] for problem in problems} == {"customer.customer_id"}
    assert any("is too long" in problem["problem"] for problem in problems)
    assert all(len(problem["problem"]) < 300 for problem in problems)
    assert all("1000002 characters" in problem["problem"] for problem in problems)


def test_an_unknown_field_with_a_huge_name_is_named_capped():
    problems = _schema_problems(SCHEMA, _body(**{"k" * 1_000_000: 1}))
    assert len(json.dumps(problems)) < 1000
    assert problems[0]["field"].startswith("kkkk")


def test_at_most_a_few_problems_are_listed_and_the_rest_announced():
    # Given 10,000 unknown fields
    problems = _schema_problems(SCHEMA, _body(**{f"extra{number}": number for number in range(10_000)}))
    assert len(problems) == MAX_LISTED_PROBLEMS + 1
    assert "more problems" in problems[-1]["problem"]
    assert len(json.dumps(problems)) < 4000


def test_problems_keep_their_order_by_field_items_numerically():
    items = [{"sku": "SKU-A", "quantity": 0} for _ in range(11)]
    fields = [problem["field"] for problem in _schema_problems(SCHEMA, _body(items=items))]
    assert fields[:MAX_LISTED_PROBLEMS] == [f"items.{number}.quantity" for number in range(MAX_LISTED_PROBLEMS)]


def _route(method="POST", resource="/orders", **schemas) -> Route:
    return Route(resource, method, None, "AWS_IAM", True, True, schemas, ())


ROUTES = SimpleNamespace(
    routes=[_route("ANY", "/{proxy}"), _route("GET", "/{proxy}"), _route("POST", "/orders"), _route("ANY", "/orders")]
)


@pytest.mark.parametrize(
    ("method", "path", "chosen"),
    [
        pytest.param("POST", "/orders", ("POST", "/orders"), id="the method before ANY"),
        pytest.param("GET", "/orders", ("ANY", "/orders"), id="a literal path part before a parameter"),
        pytest.param("GET", "/other", ("GET", "/{proxy}"), id="a parameter"),
        pytest.param("HEAD", "/other", ("ANY", "/{proxy}"), id="ANY covers HEAD"),
        pytest.param("TRACE", "/orders", None, id="ANY does not cover TRACE"),
        pytest.param("CONNECT", "/orders", None, id="nor CONNECT"),
        pytest.param("get", "/orders", None, id="methods are case-sensitive"),
        pytest.param("GET", "/orders/x/y", None, id="an unknown resource"),
    ],
)
def test_a_request_goes_to_the_route_api_gateway_would_choose(method, path, chosen):
    route, _ = LocalHttpApi._route(ROUTES, method, path)
    assert (route and (route.method, route.resource)) == chosen


@pytest.mark.parametrize(
    ("content_type", "validated"),
    [
        pytest.param("application/json", True, id="json"),
        pytest.param("Application/JSON; charset=utf-8", True, id="json with a charset"),
        pytest.param(None, True, id="none: taken as json"),
        pytest.param("text/plain", False, id="another type: not validated"),
        pytest.param("application/x-www-form-urlencoded", False, id="a form: not validated"),
    ],
)
def test_the_validator_checks_a_body_only_against_the_model_of_its_content_type(content_type, validated):
    route = _route(**{"application/json": SCHEMA})
    assert (route.schema_for(content_type) is SCHEMA) is validated


def test_a_default_model_validates_any_content_type():
    default = {"type": "object"}
    route = _route(**{"application/json": SCHEMA, "$default": default})
    assert route.schema_for("text/plain") is default
    assert route.schema_for("application/json") is SCHEMA


def _signed_headers(extra: dict[str, str]) -> list[tuple[str, str]]:
    from botocore.credentials import Credentials

    signed = sign(
        "POST",
        "http://127.0.0.1:8080/v1/orders",
        headers={"Content-Type": "application/json", "Host": "127.0.0.1:8080"},
        body=b"{}",
        credentials=Credentials("AKIDLOCAL", "secret", "token"),
        region="us-east-1",
    )
    return [*signed.items(), *extra.items()]


def test_the_proxy_event_has_no_sigv4_authorization_and_every_unsigned_header():
    # Given a signed request with an unsigned Idempotency-Key added, and framing headers
    received = _signed_headers({"Idempotency-Key": "k-1", "Content-Length": "2", "Connection": "keep-alive"})
    headers, multi = _forwarded_headers(received)
    # Then the integration gets the unsigned header and the signing headers, but not the signature (API Gateway
    # drops a SigV4 Authorization header) nor the framing of the connection
    assert "Authorization" not in headers
    assert headers["Idempotency-Key"] == "k-1"
    assert {"X-Amz-Date", "X-Amz-Security-Token", "Content-Type"} <= set(headers)
    assert not {"Content-Length", "Connection"} & set(headers)
    assert multi == {name: [value] for name, value in headers.items()}


def test_an_authorization_header_that_is_not_sigv4_is_forwarded():
    headers, _ = _forwarded_headers([("Host", "h"), ("Authorization", "Bearer abc")])
    assert headers["Authorization"] == "Bearer abc"


def test_a_repeated_header_is_one_name_with_every_value_and_the_last_in_headers():
    headers, multi = _forwarded_headers([("X-Tag", "a"), ("x-tag", "b"), ("Host", "h")])
    assert (headers["X-Tag"], multi["X-Tag"]) == ("b", ["a", "b"])
    assert "x-tag" not in headers


@pytest.mark.parametrize(
    ("parameter", "present"),
    [
        ("method.request.querystring.status", True),
        ("method.request.querystring.limit", False),  # blank
        ("method.request.querystring.next_token", False),  # absent
        ("method.request.header.Idempotency-Key", True),
        ("method.request.header.X-Blank", False),
        ("method.request.path.id", True),
        ("method.request.path.other", False),
    ],
)
def test_a_required_parameter_must_be_present_and_not_blank(parameter, present):
    query = {"status": ["PENDING"], "limit": [" "]}
    headers = [("idempotency-key", "k"), ("X-Blank", "")]
    assert _has_parameter(parameter, query, headers, {"id": "saga-1"}) is present


def test_the_lambda_answer_goes_back_byte_for_byte():
    text = _proxy_answer({"statusCode": 200, "body": "not json, {\n", "headers": {"Content-Type": "text/plain"}})
    assert (text.status, text.body, text.headers) == (200, b"not json, {\n", {"Content-Type": "text/plain"})
    binary = _proxy_answer({"statusCode": "201", "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": 1})
    assert (binary.status, binary.body) == (201, b"\x00\xff")


@pytest.mark.parametrize("status", [99, 600, "abc", None, True])
def test_a_lambda_answer_without_a_valid_status_is_an_integration_failure(status):
    with pytest.raises((ValueError, TypeError)):
        _proxy_answer({"statusCode": status, "body": "{}"})
