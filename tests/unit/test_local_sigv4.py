"""The local API's SigV4 check binds the body as API Gateway does (it hashes what it received; a claimed hash is never
taken), verifies every value of a repeated signed header, and keeps API Gateway's clock window: no stricter (a
replay inside it is accepted: SigV4 has no nonce), no looser."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_runtime.sigv4 import SERVICE, SignatureRejected, sign, verify
from tests.unit.api.fakes import ORDER

pytestmark = pytest.mark.unit
CREDENTIALS = Credentials("AKIDLOCAL", "local-secret", "local-session-token")
REGION = "us-east-1"
URL = "http://127.0.0.1:8080/v1/orders"
BODY = json.dumps(ORDER).encode()
OTHER_BODY = json.dumps({**ORDER, "payment": {"card_token": "tok_someone_else"}}).encode()


def _signed(body=BODY, **headers) -> dict[str, str]:
    """Headers of a POST signed by botocore, as an SDK sends it (Host included), with `headers` signed as well."""
    return sign(
        "POST",
        URL,
        headers={"Content-Type": "application/json", "Host": "127.0.0.1:8080", **headers},
        body=body,
        credentials=CREDENTIALS,
        region=REGION,
    )


def _verify(headers, body=BODY, now=None):
    return verify("POST", URL, headers=headers, body=body, credentials=CREDENTIALS, region=REGION, now=now)


def test_unsigned_payload_is_refused_for_execute_api():
    # Given a request signed with the payload hash declared UNSIGNED-PAYLOAD (and that header signed): valid SigV4
    # for a service that takes the header, such as S3
    headers = _signed(**{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    # Then refused: API Gateway hashes the body itself, so the signature is over a hash the client never computed
    with pytest.raises(SignatureRejected, match="does not match"):
        _verify(headers)


def test_a_signed_hash_of_another_body_does_not_let_this_body_through():
    # Given a request signed over the hash of one body, declared in a signed x-amz-content-sha256
    headers = _signed(**{"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    assert _verify(headers).access_key == "AKIDLOCAL"
    # When it is sent with another body / Then refused: the body's own hash is the one checked
    with pytest.raises(SignatureRejected, match="does not match"):
        _verify(headers, body=OTHER_BODY)


def test_an_unsigned_content_hash_header_that_is_not_the_bodys_is_refused():
    headers = _signed() | {"x-amz-content-sha256": hashlib.sha256(OTHER_BODY).hexdigest()}
    with pytest.raises(SignatureRejected, match="does not match"):
        _verify(headers)


def test_an_unsigned_content_hash_header_that_is_the_bodys_is_accepted():
    headers = _signed() | {"x-amz-content-sha256": hashlib.sha256(BODY).hexdigest()}
    assert _verify(headers).access_key == "AKIDLOCAL"


def test_an_unsigned_header_added_to_a_signed_request_does_not_change_its_verdict():
    # SigV4 covers only the headers it lists: an Idempotency-Key added after signing is not refused here (API Gateway
    # does not refuse it either); the proxy event carries it, and the integration cannot tell it was not signed.
    headers = _signed() | {"Idempotency-Key": "added-after-signing"}
    assert _verify(headers).access_key == "AKIDLOCAL"


def test_a_repeated_signed_header_is_verified_over_all_its_values():
    # Given a request that signs two Idempotency-Key headers (SigV4 joins their values)
    request = AWSRequest(method="POST", url=URL, data=BODY)
    request.headers["Host"] = "127.0.0.1:8080"
    request.headers["Idempotency-Key"] = "first"
    request.headers["Idempotency-Key"] = "second"  # HTTPHeaders adds a second value
    SigV4Auth(CREDENTIALS, SERVICE, REGION).add_auth(request)
    sent = list(request.headers.items())
    assert _verify(sent).access_key == "AKIDLOCAL"
    # When one value is changed, or one is dropped / Then refused
    changed = [(name, "third" if value == "second" else value) for name, value in sent]
    dropped = [(name, value) for name, value in sent if value != "second"]
    for headers in (changed, dropped):
        with pytest.raises(SignatureRejected, match="does not match"):
            _verify(headers)


def test_two_authorization_headers_are_refused():
    headers = list(_signed().items())
    authorization = next(value for name, value in headers if name == "Authorization")
    with pytest.raises(SignatureRejected, match="More than one"):
        _verify([*headers, ("authorization", authorization)])


def test_a_replay_inside_the_five_minutes_is_accepted_as_api_gateway_accepts_it():
    # Given one signed request, captured / When it is sent again and again within five minutes of its timestamp
    headers = _signed()
    signed_at = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    for later in (timedelta(0), timedelta(seconds=1), timedelta(minutes=4, seconds=59)):
        # Then every copy is accepted: SigV4 has no nonce (idempotency is the API's business, not the signature's)
        assert _verify(headers, now=signed_at + later).access_key == "AKIDLOCAL"


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        pytest.param(timedelta(minutes=5, seconds=1), r"Signature expired: .* \(\d{8}T\d{6}Z - 5 min\.\)", id="old"),
        pytest.param(
            -timedelta(minutes=5, seconds=1),
            r"Signature not yet current: .* \(\d{8}T\d{6}Z \+ 5 min\.\)",
            id="from the future",
        ),
    ],
)
def test_a_timestamp_more_than_five_minutes_off_either_way_is_refused(offset, message):
    headers = _signed()
    signed_at = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    with pytest.raises(SignatureRejected, match=message):
        _verify(headers, now=signed_at + offset)
    assert _verify(headers, now=signed_at + offset * (299 / 301)).access_key == "AKIDLOCAL"
