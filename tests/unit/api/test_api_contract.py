"""The two validation layers agree (the API Gateway model is generated from the handler's pydantic model), and
the local API's SigV4 check refuses what API Gateway's IAM authorisation refuses."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from botocore.credentials import Credentials

from local_runtime.sigv4 import SignatureRejected, sign, verify
from saga_api.models import request_json_schema
from sagas.order_fulfillment import Input
from tests.unit.api.fakes import ORDER
from tests.unit.api.test_api_requests import BODY_CASES

pytestmark = pytest.mark.unit
URL = "http://127.0.0.1:8080/v1/orders?status=PENDING"
BODY = json.dumps(ORDER).encode()
CREDENTIALS = Credentials("AKIDLOCAL", "local-secret", "local-session-token")
REGION = "us-east-1"


SCHEMA = request_json_schema(Input, title="OrderFulfillmentInput")


def test_the_gateway_model_accepts_a_valid_order():
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    assert list(jsonschema.Draft4Validator(SCHEMA).iter_errors(ORDER)) == []


@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, _, f in BODY_CASES])
def test_the_gateway_model_refuses_every_body_the_handler_refuses(change, field):
    # Given a body the pydantic model refuses / Then the JSON schema API Gateway checks refuses it as well
    body = change(copy.deepcopy(ORDER))
    errors = list(jsonschema.Draft4Validator(SCHEMA).iter_errors(body))
    assert errors, f"the gateway model would let '{field}' through"


def _signed(method="POST", url=URL, body=BODY, credentials=CREDENTIALS, region=REGION):
    json_type = {"Content-Type": "application/json"}
    headers = sign(method, url, headers=json_type, body=body, credentials=credentials, region=region)
    return headers | {"Host": "127.0.0.1:8080"}


def test_a_correctly_signed_request_is_accepted_as_its_caller():
    caller = verify("POST", URL, headers=_signed(), body=BODY, credentials=CREDENTIALS, region=REGION)
    assert caller.access_key == "AKIDLOCAL"


def _unsigned(headers, body):
    return {name: value for name, value in headers.items() if name != "Authorization"}, body


def _other_signature(headers, body):
    return headers | {"Authorization": headers["Authorization"][:-4] + "0000"}, body


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(_unsigned, "Missing Authentication", id="unsigned"),
        pytest.param(lambda h, b: (h, b.replace(b"tok_visa", b"tok_gold")), "does not match", id="body changed"),
        pytest.param(lambda h, b: (h | {"Content-Type": "text/plain"}, b), "does not match", id="header changed"),
        pytest.param(_other_signature, "does not match", id="signature changed"),
        pytest.param(lambda h, b: (h | {"X-Amz-Security-Token": "stolen"}, b), "token", id="other session token"),
        pytest.param(lambda h, b: (h | {"Authorization": "Bearer abc"}, b), "AWS4-HMAC-SHA256", id="not SigV4"),
    ],
)
def test_a_tampered_or_unsigned_request_is_refused(tamper, reason):
    headers, body = tamper(_signed(), BODY)
    with pytest.raises(SignatureRejected, match=reason):
        verify("POST", URL, headers=headers, body=body, credentials=CREDENTIALS, region=REGION)


@pytest.mark.parametrize(
    ("signing", "reason"),
    [
        pytest.param(
            {"credentials": Credentials("AKIDLOCAL", "wrong", "local-session-token")},
            "does not match",
            id="wrong secret",
        ),
        pytest.param(
            {"credentials": Credentials("AKIDOTHER", "local-secret", "local-session-token")},
            "invalid",
            id="unknown key",
        ),
        pytest.param({"region": "eu-west-1"}, "region", id="other region"),
        pytest.param({"url": "http://127.0.0.1:8080/v1/orders?status=FAILED"}, "does not match", id="other query"),
    ],
)
def test_a_request_signed_wrongly_is_refused(signing, reason):
    with pytest.raises(SignatureRejected, match=reason):
        verify("POST", URL, headers=_signed(**signing), body=BODY, credentials=CREDENTIALS, region=REGION)


def test_an_old_signature_is_refused():
    later = datetime.now(UTC) + timedelta(minutes=6)
    with pytest.raises(SignatureRejected, match="expired"):
        verify("POST", URL, headers=_signed(), body=BODY, credentials=CREDENTIALS, region=REGION, now=later)
