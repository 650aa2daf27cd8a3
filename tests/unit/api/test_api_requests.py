"""POST /<saga route> refuses malformed requests with the right status and a reason naming the field, and writes and
starts nothing; good requests start one saga, idempotently, named by the body's id field (or, for a saga without one,
by its Idempotency-Key); GET answers the record of that route's type only, lists page by status and type.

Two saga types share the API here: orders (`order_id` names the saga) and parcels (no id field)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from tests.unit.api.fakes import MAX_REQUEST_BYTES, ORDER

pytestmark = pytest.mark.unit


def _set(path: str, value: Any):
    def change(order: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = order
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return order

    return change


def _drop(path: str):
    def change(order: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = order
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
        return order

    return change


def _padded(size: int) -> bytes:
    """A valid order, padded with JSON whitespace to `size` bytes: only its size is wrong."""
    text = json.dumps(ORDER)
    return (text[:-1] + " " * (size - len(text)) + "}").encode()


# (case id, change to a valid order, expected status, the field the answer must name)
BODY_CASES = [
    # missing fields
    *[
        (f"missing {path}", _drop(path), 422, path)
        for path in (
            "order_id",
            "customer",
            "items",
            "payment",
            "shipping_address",
            "customer.customer_id",
            "customer.email",
            "items.0.sku",
            "items.0.quantity",
            "payment.card_token",
            "shipping_address.name",
            "shipping_address.line1",
            "shipping_address.city",
            "shipping_address.postal_code",
            "shipping_address.country",
        )
    ],
    # wrong types (no coercion: "2" is not a quantity, true is not 1)
    ("order_id is a number", _set("order_id", 5), 422, "order_id"),
    ("customer is a string", _set("customer", "ana"), 422, "customer"),
    ("items is an object", _set("items", {"sku": "SKU-KEYBOARD"}), 422, "items"),
    ("an item is a string", _set("items.0", "SKU-KEYBOARD"), 422, "items.0"),
    ("quantity is a string", _set("items.0.quantity", "2"), 422, "items.0.quantity"),
    ("quantity is a fraction", _set("items.0.quantity", 1.5), 422, "items.0.quantity"),
    ("quantity is a boolean", _set("items.0.quantity", True), 422, "items.0.quantity"),
    ("payment is a list", _set("payment", []), 422, "payment"),
    ("card token is a number", _set("payment.card_token", 4242), 422, "payment.card_token"),
    ("country is a number", _set("shipping_address.country", 49), 422, "shipping_address.country"),
    ("email is null", _set("customer.email", None), 422, "customer.email"),
    ("customer id is a list", _set("customer.customer_id", ["c-1"]), 422, "customer.customer_id"),
    # unknown fields
    ("unknown top-level field", _set("coupon", "FREE"), 422, "coupon"),
    ("unknown customer field", _set("customer.vip", True), 422, "customer.vip"),
    ("unknown item field", _set("items.0.colour", "red"), 422, "items.0.colour"),
    # the price is the catalog's: a client that names one is refused, whatever it names
    ("a price of its own", _set("items.1.unit_price_cents", 1250), 422, "items.1.unit_price_cents"),
    ("a price of zero", _set("items.0.unit_price_cents", 0), 422, "items.0.unit_price_cents"),
    ("unknown payment field (cvv)", _set("payment.cvv", "123"), 422, "payment.cvv"),
    ("unknown address field", _set("shipping_address.line2", "Apt 4"), 422, "shipping_address.line2"),
    # empty, negative, out of range
    ("empty items", _set("items", []), 422, "items"),
    ("zero quantity", _set("items.0.quantity", 0), 422, "items.0.quantity"),
    ("negative quantity", _set("items.0.quantity", -1), 422, "items.0.quantity"),
    ("quantity over the limit", _set("items.0.quantity", 1001), 422, "items.0.quantity"),
    ("empty order id", _set("order_id", ""), 422, "order_id"),
    ("order id with a space", _set("order_id", "ord 1"), 422, "order_id"),
    ("order id with a slash", _set("order_id", "ord/1"), 422, "order_id"),
    ("order id of 81 characters", _set("order_id", "o" * 81), 422, "order_id"),
    ("empty sku", _set("items.0.sku", ""), 422, "items.0.sku"),
    ("lower-case country", _set("shipping_address.country", "de"), 422, "shipping_address.country"),
    ("three-letter country", _set("shipping_address.country", "DEU"), 422, "shipping_address.country"),
    ("email without @", _set("customer.email", "ana.example.com"), 422, "customer.email"),
    ("empty card token", _set("payment.card_token", ""), 422, "payment.card_token"),
    ("empty name", _set("shipping_address.name", ""), 422, "shipping_address.name"),
    ("postal code too long", _set("shipping_address.postal_code", "1" * 21), 422, "shipping_address.postal_code"),
    ("51 order lines", _set("items", [ORDER["items"][0]] * 51), 422, "items"),
]
RAW_CASES = [
    ("not JSON", b"{", 400, "body"),
    ("empty body", b"", 400, "body"),
    ("truncated JSON", json.dumps(ORDER)[:40].encode(), 400, "body"),
    ("not UTF-8", b"\xff\xfe\x00order", 400, "body"),
    ("a JSON array", b"[]", 422, "body"),
    ("JSON null", b"null", 422, "body"),
    ("a JSON string", b'"ord-0001"', 422, "body"),
    ("over the size budget, valid otherwise", _padded(MAX_REQUEST_BYTES + 1), 413, "body"),
    ("over the size budget and not JSON: size is checked first", b"x" * (MAX_REQUEST_BYTES + 1), 413, "body"),
]
KEY_CASES = [
    ("key with a space", "my key", 400, "Idempotency-Key"),
    ("key with a slash", "a/b", 400, "Idempotency-Key"),
    ("key of 81 characters", "k" * 81, 400, "Idempotency-Key"),
    ("empty key", "", 400, "Idempotency-Key"),
    ("non-ASCII key", "zakaz-1-\u00e9", 400, "Idempotency-Key"),
]


def _cases():
    for case_id, change, status, field in BODY_CASES:
        yield pytest.param(json.dumps(change(copy.deepcopy(ORDER))).encode(), {}, status, field, id=case_id)
    for case_id, body, status, field in RAW_CASES:
        yield pytest.param(body, {}, status, field, id=case_id)
    for case_id, key, status, field in KEY_CASES:
        yield pytest.param(json.dumps(ORDER).encode(), {"Idempotency-Key": key}, status, field, id=case_id)


def test_the_table_has_at_least_fifty_malformed_requests():
    assert len(list(_cases())) >= 50


@pytest.mark.parametrize(("body", "headers", "status", "field"), list(_cases()))
def test_a_malformed_request_is_refused_naming_the_field_and_changes_nothing(api, body, headers, status, field):
    # Given a request that is wrong in exactly one way / When it is posted
    answered, answer, _ = api.call("POST", "/orders", body=body, headers=headers)
    # Then the status says what kind of wrong, the reason names the field
    assert answered == status, answer
    assert answer["message"]
    assert field in [problem["field"] for problem in answer["errors"]], answer
    assert all(problem["problem"] for problem in answer["errors"])
    # And no saga record was written and no execution started
    assert api.records.items == {}
    assert api.sfn.calls == 0


def test_a_valid_order_is_accepted_with_its_saga_id_type_and_status_url(api, order):
    status, answer, headers = api.call("POST", "/orders", body=order)
    assert status == 202
    assert answer == {
        "saga_id": order["order_id"],
        "saga_type": "OrderFulfillment",
        "status_url": f"/v1/orders/{order['order_id']}",
    }
    assert headers["Location"] == answer["status_url"]
    # The saga input is the order; the execution is named after the saga id.
    assert api.records.items[order["order_id"]]["input"] == order
    assert api.records.items[order["order_id"]]["saga_type"] == "OrderFulfillment"
    assert json.loads(api.sfn.executions[order["order_id"]])["input"] == order


def test_an_idempotency_key_equal_to_the_id_field_is_accepted_whatever_its_case(api, order):
    status, answer, _ = api.call("POST", "/orders", body=order, headers={"idempotency-key": order["order_id"]})
    assert (status, answer["saga_id"]) == (202, order["order_id"])
    assert list(api.sfn.executions) == [order["order_id"]]


def test_an_idempotency_key_that_differs_from_the_id_field_is_refused_naming_both(api, order):
    # Given a request a replay could carry with a header added (headers are not what the signature binds here)
    status, answer, _ = api.call("POST", "/orders", body=order, headers={"Idempotency-Key": "client-key-7"})
    # Then 400 naming the header and the field, and nothing written or started
    assert status == 400
    assert [problem["field"] for problem in answer["errors"]] == ["Idempotency-Key", "order_id"]
    assert "client-key-7" in answer["message"]
    assert order["order_id"] in answer["message"]
    assert (api.records.items, api.sfn.calls) == ({}, 0)


def test_a_replay_with_a_new_idempotency_key_starts_no_second_saga(api, order):
    # Given an order started
    assert api.call("POST", "/orders", body=order)[0] == 202
    # When the same body comes again with keys of its own / Then none of them starts another saga
    for key in ("replay-1", "replay-2"):
        assert api.call("POST", "/orders", body=order, headers={"Idempotency-Key": key})[0] == 400
    assert list(api.records.items) == [order["order_id"]]
    assert len(api.sfn.executions) == 1


def test_a_saga_without_an_id_field_is_named_by_its_idempotency_key(api, parcel):
    status, answer, _ = api.call("POST", "/parcels", body=parcel, headers={"idempotency-key": "parcel-key-7"})
    assert status == 202
    assert answer == {
        "saga_id": "parcel-key-7",
        "saga_type": "ParcelDelivery",
        "status_url": "/v1/parcels/parcel-key-7",
    }
    assert api.records.items["parcel-key-7"]["steps"] == {
        "pick_up": {"status": "RUNNING"},
        "deliver": {"status": "NOT_STARTED"},
    }


def test_a_saga_without_an_id_field_requires_the_idempotency_key(api, parcel):
    status, answer, _ = api.call("POST", "/parcels", body=parcel)
    assert status == 400
    assert [problem["field"] for problem in answer["errors"]] == ["Idempotency-Key"]
    assert (api.records.items, api.sfn.calls) == ({}, 0)


def test_each_route_validates_against_its_own_sagas_input_model(api, order, parcel):
    # An order is no parcel, and a parcel no order: 422 naming the fields, nothing written
    status, answer, _ = api.call("POST", "/parcels", body=order, headers={"Idempotency-Key": "p-1"})
    assert status == 422
    assert "ParcelDelivery" in answer["message"]
    assert {"parcel", "order_id"} <= {problem["field"] for problem in answer["errors"]}
    status, answer, _ = api.call("POST", "/orders", body=parcel)
    assert status == 422
    assert "order_id" in {problem["field"] for problem in answer["errors"]}
    assert api.records.items == {}


def test_one_id_names_one_saga_across_types(api, order, parcel):
    # Given an order; when a parcel asks for the same saga id / Then it conflicts and changes nothing
    api.call("POST", "/orders", body=order)
    before = copy.deepcopy(api.records.items)
    status, _, _ = api.call("POST", "/parcels", body=parcel, headers={"Idempotency-Key": order["order_id"]})
    assert status == 409
    assert api.records.items == before


def test_a_repeated_request_gets_the_same_answer_and_starts_nothing_more(api, order):
    first = api.call("POST", "/orders", body=order)
    # Key order and spacing differ: the same request, canonically
    again = api.call(
        "POST", "/orders", body=json.dumps(order, indent=2, sort_keys=True), headers={"Idempotency-Key": "ord-0001"}
    )
    assert first[:2] == again[:2]
    assert first[0] == 202
    assert len(api.sfn.executions) == 1
    assert len(api.records.items) == 1


def test_the_same_id_with_a_different_body_is_a_conflict_that_changes_nothing(api, order):
    api.call("POST", "/orders", body=order)
    before = copy.deepcopy(api.records.items)
    other = copy.deepcopy(order)
    other["items"][0]["quantity"] = 3
    status, answer, _ = api.call("POST", "/orders", body=other)
    assert status == 409
    assert "different body" in answer["message"]
    assert api.records.items == before
    assert len(api.sfn.executions) == 1


def test_a_finished_saga_still_answers_its_key(api, order):
    # Given a saga that completed long ago (its execution name may have expired; the record has not)
    api.call("POST", "/orders", body=order)
    api.records.items[order["order_id"]]["status"] = "COMPLETED"
    api.sfn.executions.clear()
    # When the same request comes again / Then it maps to that saga and starts nothing
    status, answer, _ = api.call("POST", "/orders", body=order)
    assert (status, answer["saga_id"]) == (202, order["order_id"])
    assert api.sfn.executions == {}


def test_a_failed_start_answers_503_keeps_the_record_and_a_retry_starts_it(api, order):
    # Given StartExecution throttled once
    api.sfn.failures_left = 1
    # When the order is posted / Then a retryable 503, and the record waits in STARTED
    status, answer, headers = api.call("POST", "/orders", body=order)
    assert status == 503
    assert "retry" in answer["message"]
    assert headers["Retry-After"] == "1"
    assert api.records.items[order["order_id"]]["status"] == "STARTED"
    assert api.sfn.executions == {}
    # When the client retries with the same key / Then the saga starts, once
    status, answer, _ = api.call("POST", "/orders", body=order)
    assert (status, answer["saga_id"]) == (202, order["order_id"])
    assert list(api.sfn.executions) == [order["order_id"]]
    assert api.records.items[order["order_id"]]["status"] == "PENDING"


def test_a_retry_after_an_unrecorded_start_treats_the_existing_execution_as_this_sagas(api, order):
    # Given an execution that started although the record still says STARTED (e.g. the answer was lost)
    api.call("POST", "/orders", body=order)
    api.records.items[order["order_id"]]["status"] = "STARTED"
    api.sfn.executions[order["order_id"]] = "an input Step Functions now sees as different"
    # When the same request is retried / Then ExecutionAlreadyExists means started, not an error
    status, _, _ = api.call("POST", "/orders", body=order)
    assert status == 202
    assert api.records.items[order["order_id"]]["execution_arn"].endswith(
        f":execution:OrderFulfillment:{order['order_id']}"
    )


def test_get_returns_the_record_without_the_input(api, order):
    api.call("POST", "/orders", body=order)
    status, answer, _ = api.call("GET", f"/orders/{order['order_id']}", path_parameters={"id": order["order_id"]})
    assert status == 200
    assert answer["saga_id"] == order["order_id"]
    assert answer["saga_type"] == "OrderFulfillment"
    assert answer["status"] == "PENDING"
    assert set(answer["steps"]) == {"reserve_inventory", "process_payment", "create_shipment", "send_confirmation"}
    assert "input" not in answer
    assert "card_token" not in json.dumps(answer)


@pytest.mark.parametrize(("saga_id", "status", "field"), [("nobody", 404, "id"), ("a%20b", 400, "id")])
def test_get_of_an_unknown_or_invalid_id(api, saga_id, status, field):
    answered, answer, _ = api.call("GET", f"/orders/{saga_id}", path_parameters={"id": saga_id})
    assert answered == status
    assert [problem["field"] for problem in answer["errors"]] == [field]


def test_a_saga_of_another_type_is_not_found_on_this_route(api, order, parcel):
    api.call("POST", "/parcels", body=parcel, headers={"Idempotency-Key": "parcel-1"})
    api.call("POST", "/orders", body=order)
    status, answer, _ = api.call("GET", "/orders/parcel-1", path_parameters={"id": "parcel-1"})
    assert (status, [problem["field"] for problem in answer["errors"]]) == (404, ["id"])
    status, answer, _ = api.call("GET", f"/parcels/{order['order_id']}", path_parameters={"id": order["order_id"]})
    assert status == 404
    status, answer, _ = api.call("GET", "/parcels/parcel-1", path_parameters={"id": "parcel-1"})
    assert (status, answer["saga_type"]) == (200, "ParcelDelivery")


def test_listing_pages_newest_first_with_an_opaque_token(api, order, parcel):
    # Given five running orders, and parcels between them
    for number in range(5):
        api.call("POST", "/orders", body={**order, "order_id": f"ord-{number}"})
        api.call("POST", "/parcels", body=parcel, headers={"Idempotency-Key": f"parcel-{number}"})
    # When they are listed two at a time
    seen, token, pages = [], None, 0
    while True:
        query = {"status": "PENDING", "limit": "2"} | ({"next_token": token} if token else {})
        status, answer, _ = api.call("GET", "/orders", query=query)
        assert status == 200
        assert answer["saga_type"] == "OrderFulfillment"
        seen += [saga["saga_id"] for saga in answer["sagas"]]
        pages += 1
        token = answer["next_token"]
        if token is None:
            break
    # Then every order shows once, newest first, over three pages, and no parcel
    assert seen == [f"ord-{number}" for number in reversed(range(5))]
    assert pages == 3


def test_a_token_of_another_types_listing_is_refused(api, order, parcel):
    for number in range(3):
        api.call("POST", "/parcels", body=parcel, headers={"Idempotency-Key": f"parcel-{number}"})
    _, page, _ = api.call("GET", "/parcels", query={"status": "PENDING", "limit": "1"})
    assert page["next_token"]
    status, answer, _ = api.call("GET", "/orders", query={"status": "PENDING", "next_token": page["next_token"]})
    assert (status, [problem["field"] for problem in answer["errors"]]) == (400, ["next_token"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "status"),
        ({"status": "DONE"}, "status"),
        ({"status": "PENDING", "limit": "0"}, "limit"),
        ({"status": "PENDING", "limit": "101"}, "limit"),
        ({"status": "PENDING", "limit": "ten"}, "limit"),
        ({"status": "PENDING", "next_token": "not-a-token"}, "next_token"),
        # A genuine token of another listing (status) is refused too
        (
            {
                "status": "PENDING",
                "next_token": "eyJrZXkiOiB7ImNyZWF0ZWRfYXQiOiAieCIsICJzYWdhX2lkIjogInkiLCAic3RhdHVzIjogIkZBSUxFRCJ9LC"
                "Aic2FnYV90eXBlIjogIk9yZGVyRnVsZmlsbG1lbnQifQ",
            },
            "next_token",
        ),
    ],
)
def test_listing_refuses_bad_parameters_naming_them(api, query, field):
    status, answer, _ = api.call("GET", "/orders", query=query or None)
    assert status == 400
    assert [problem["field"] for problem in answer["errors"]] == [field]


# --- hostile and careless requests: each class is refused with a 4xx, writes and starts nothing ---------------------


def _nested(depth: int) -> bytes:
    return b'{"order_id": ' + b"[" * depth + b"]" * depth + b"}"


HOSTILE_BODIES = [
    ("JSON nested 10,000 deep", _nested(10_000), 400),
    ("JSON nested past the depth limit", _nested(40), 400),
    ("a key twice (the last would win)", b'{"order_id": "ord-1", "order_id": "ord-2"}', 400),
    (
        "a key twice, deep inside",
        json.dumps(ORDER).replace('"tok_visa"', '"tok_visa", "card_token": "x"').encode(),
        400,
    ),
    ("NaN", json.dumps(ORDER).replace(": 2}", ": NaN}").encode(), 400),
    ("Infinity", json.dumps(ORDER).replace(": 2}", ": Infinity}").encode(), 400),
]


@pytest.mark.parametrize(("body", "status"), [pytest.param(b, s, id=i) for i, b, s in HOSTILE_BODIES])
def test_a_hostile_body_is_refused_with_400_naming_the_body(api, body, status):
    answered, answer, _ = api.call("POST", "/orders", body=body)
    assert answered == status, answer
    assert [problem["field"] for problem in answer["errors"]] == ["body"]
    assert (api.records.items, api.sfn.calls) == ({}, 0)


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Content-Type": "text/plain"}, "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "Content-Type"),
        ({"Content-Type": "application/json; charset=latin-1"}, "Content-Type"),
        ({"Content-Type": "application/jsonp"}, "Content-Type"),
        ({"Content-Encoding": "gzip"}, "Content-Encoding"),
        ({"Content-Type": "application/json", "Content-Encoding": "br"}, "Content-Encoding"),
    ],
)
def test_a_body_declared_as_something_else_than_json_is_refused_with_415(api, order, headers, field):
    # Given a valid order whose headers say it is not plain JSON (API Gateway validated no model for it)
    answered, answer, _ = api.call("POST", "/orders", body=order, headers=headers)
    # Then 415 naming the header, and nothing written or started
    assert answered == 415, answer
    assert [problem["field"] for problem in answer["errors"]] == [field]
    assert (api.records.items, api.sfn.calls) == ({}, 0)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json"}, {"content-type": "Application/JSON; charset=UTF-8"}],
)
def test_json_with_or_without_its_content_type_is_taken(api, order, headers):
    assert api.call("POST", "/orders", body=order, headers=headers)[0] == 202


def test_an_error_body_never_grows_with_the_request(api, order):
    # Given requests whose rejected parts are large: a 60 KB field name, 5,000 unknown fields, 10 KB parameters
    long_name = {**order, "x" * 60_000: 1}
    many = {**order, **{f"f{number}": 0 for number in range(5_000)}}
    answers = [
        api.call("POST", "/orders", body=long_name),
        api.call("POST", "/orders", body=many),
        api.call("GET", "/orders", query={"status": "S" * 10_000}),
        api.call("GET", "/orders", query={"status": "PENDING", "limit": "9" * 10_000}),
        api.call("POST", "/orders", body=order, headers={"Content-Type": "text/" + "p" * 10_000}),
    ]
    # Then each answer is refused and stays small, and says how many problems it left out
    for status, answer, _ in answers:
        assert status in (400, 415, 422), answer
        assert len(json.dumps(answer)) < 4_000
    assert answers[1][1]["errors"][-1]["problem"].endswith("more problems")
    assert len(answers[1][1]["errors"]) == 11


def test_a_limit_of_unicode_digits_is_refused_with_400(api):
    # superscript two, full-width ten, Arabic-Indic three: str.isdigit() takes each, int() not the first
    for limit in ("\u00b2", "\uff11\uff10", "\u0663"):
        status, answer, _ = api.call("GET", "/orders", query={"status": "PENDING", "limit": limit})
        assert (status, [problem["field"] for problem in answer["errors"]]) == (400, ["limit"]), limit


def _listing_token(api, order):
    for number in range(3):
        api.call("POST", "/orders", body={**order, "order_id": f"ord-{number}"})
    _, page, _ = api.call("GET", "/orders", query={"status": "PENDING", "limit": "1"})
    assert page["next_token"]
    return page["next_token"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_made_up_next_token_is_refused_even_when_well_formed(api, order):
    # Given a genuine token of this listing
    token = _listing_token(api, order)
    payload, mac = token.split(".")
    # When a client makes up one of the same shape (a key of its choosing), or alters the genuine one
    made_up = json.dumps(
        {
            "key": {"created_at": "2999-01-01T00:00:00.000Z", "saga_id": "ord-2", "status": "PENDING"},
            "saga_type": "OrderFulfillment",
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    forged = [f"{_b64(made_up)}.{mac}", f"{_b64(made_up)}.{_b64(b'x' * 32)}", f"{payload}.{mac[:-2]}AA", payload]
    # Then every one is refused with 400 naming next_token; the genuine one still pages on
    for candidate in forged:
        status, answer, _ = api.call("GET", "/orders", query={"status": "PENDING", "next_token": candidate})
        assert (status, [problem["field"] for problem in answer["errors"]]) == (400, ["next_token"]), candidate
    assert api.call("GET", "/orders", query={"status": "PENDING", "next_token": token})[0] == 200


def test_a_next_token_nested_10000_deep_is_refused_not_a_crash(api):
    # Given tokens whose payload is JSON nested 10,000 deep: one with a made-up MAC, one even with a valid MAC
    deep = b"[" * 10_000 + b"]" * 10_000
    for mac in (b"m" * 32, api.mac.sign(deep)):
        token = f"{_b64(deep)}.{_b64(mac)}"
        # When it is sent / Then 400 naming next_token, not a 5xx
        status, answer, _ = api.call("GET", "/orders", query={"status": "PENDING", "next_token": token})
        assert (status, [problem["field"] for problem in answer["errors"]]) == (400, ["next_token"])


def test_a_token_is_checked_before_anything_of_it_is_parsed(api, order):
    _listing_token(api, order)
    checked = api.mac.verified
    api.call("GET", "/orders", query={"status": "PENDING", "next_token": "e30." + _b64(b"0" * 32)})
    assert api.mac.verified == checked + 1
