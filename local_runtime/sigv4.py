"""SigV4 for the local API: sign a request as an AWS SDK would, and check one as API Gateway's IAM auth does.

The check recomputes the signature with botocore's own SigV4 implementation over exactly the headers the
client signed, with the local credentials, and refuses (403) what AWS refuses: no signature, an unknown
access key or session token, a scope for another region or service, a timestamp more than five minutes off
either way, and any difference in method, path, query, signed headers or body.

The body is always bound: like API Gateway, the check hashes the body it received itself. An
`x-amz-content-sha256` header is never taken for the hash: `UNSIGNED-PAYLOAD`, or any value that is not the
body's SHA-256, is refused. A header left out of SignedHeaders is not covered by the signature (SigV4 signs
only the headers it lists), and SigV4 has no nonce: a captured request replayed inside the five minutes is
accepted, as API Gateway accepts it. What decides identity belongs in what every signature covers (method, path,
query string, body) or in a header the server requires to be signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SERVICE = "execute-api"  # the signing name of API Gateway's invoke endpoint
# How far X-Amz-Date may be from the server's clock, either way. IAM's SigV4 reference: "a request must reach AWS
# within five minutes of the time stamp in the request"; execute-api answers 403 "Signature expired: ... (now -
# 5 min.)" and "Signature not yet current: ... (now + 5 min.)" (the 15 minutes of S3 do not apply here).
MAX_CLOCK_SKEW = timedelta(minutes=5)
CONTENT_SHA256 = "x-amz-content-sha256"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureRejected(Exception):
    """Why the request is not authenticated (API Gateway answers 403 with such a message)."""


@dataclass(frozen=True)
class Caller:
    access_key: str


def sign(
    method: str, url: str, *, headers: dict[str, str], body: bytes, credentials: Credentials, region: str
) -> dict[str, str]:
    """Headers of the request signed for `execute-api` (Authorization, X-Amz-Date, X-Amz-Security-Token)."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def verify(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    credentials: Credentials,
    region: str,
    now: datetime | None = None,
) -> Caller:
    """The caller of a request signed with `credentials`, or SignatureRejected. `headers` as received: a mapping, or
    (name, value) pairs in which a repeated name is repeated (SigV4 signs all its values)."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        values.setdefault(name.lower(), []).append(value)

    def single(name: str) -> str | None:
        found = values.get(name)
        if found is not None and len(found) > 1:
            raise SignatureRejected(f"More than one {name} header")
        return found[0] if found else None

    authorization = single("authorization")
    if not authorization:
        raise SignatureRejected("Missing Authentication Token")
    match = _AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise SignatureRejected("Authorization header is not an AWS4-HMAC-SHA256 signature")
    if match["key"] != credentials.access_key:
        raise SignatureRejected("The security token included in the request is invalid")
    if match["region"] != region or match["service"] != SERVICE:
        raise SignatureRejected(f"Credential should be scoped to a valid region and service '{SERVICE}'")
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in values for name in signed):
        raise SignatureRejected("Signed headers must include host and be present in the request")
    if credentials.token and single("x-amz-security-token") != credentials.token:
        raise SignatureRejected("The security token included in the request is invalid")
    timestamp = single("x-amz-date") or ""
    try:
        signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected("X-Amz-Date is missing or not an ISO 8601 basic timestamp") from None
    _check_clock(signed_at, now or datetime.now(UTC))
    if match["date"] != timestamp[:8]:
        raise SignatureRejected("Credential should be scoped to the date of X-Amz-Date")
    # The payload hash is the body's, computed here: a claimed one that differs (UNSIGNED-PAYLOAD included) is refused.
    payload_hash = hashlib.sha256(body).hexdigest()
    if single(CONTENT_SHA256) not in (None, payload_hash):
        raise SignatureRejected(SIGNATURE_MISMATCH)

    # No headers on the request itself: botocore would take an X-Amz-Content-SHA256 one for the hash. The signed
    # headers come from headers_to_sign, the hash from payload.
    request = AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = timestamp
    signer = _SignedHeadersOnly(credentials, SERVICE, region, [(name, values[name]) for name in signed], payload_hash)
    if not hmac.compare_digest(signer.signature_of(request), match["signature"]):
        raise SignatureRejected(SIGNATURE_MISMATCH)
    return Caller(access_key=match["key"])


def _check_clock(signed_at: datetime, now: datetime) -> None:
    """API Gateway's answers to a timestamp outside the window, with its wording."""
    stamp = "%Y%m%dT%H%M%SZ"
    if signed_at < now - MAX_CLOCK_SKEW:
        raise SignatureRejected(
            f"Signature expired: {signed_at:{stamp}} is now earlier than {now - MAX_CLOCK_SKEW:{stamp}} "
            f"({now:{stamp}} - 5 min.)"
        )
    if signed_at > now + MAX_CLOCK_SKEW:
        raise SignatureRejected(
            f"Signature not yet current: {signed_at:{stamp}} is still later than {now + MAX_CLOCK_SKEW:{stamp}} "
            f"({now:{stamp}} + 5 min.)"
        )


class _SignedHeadersOnly(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client listed (the SDK default leaves some out), every value of
    a repeated one, and over the hash of the body received (whatever a header or the URL scheme would make it)."""

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        signed: list[tuple[str, list[str]]],
        payload_hash: str,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, values in self._signed:
            for value in values:
                headers[name] = value  # HTTPHeaders adds: a repeated name keeps all its values, in order
        return headers

    def payload(self, request: Any) -> str:
        return self._payload_hash

    def signature_of(self, request: AWSRequest) -> str:
        canonical = self.canonical_request(request)
        return self.signature(self.string_to_sign(request, canonical), request)
