"""SigV4 for the local API: sign a request as an AWS SDK would, and check one as API Gateway's IAM auth does.

The check recomputes the signature with botocore's own SigV4 implementation over exactly the headers the
client signed, with the local credentials, and refuses (403) what AWS refuses: no signature, an unknown
access key or session token, a scope for another region or service, a timestamp more than five minutes off,
and any difference in method, path, query, signed headers or body.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SERVICE = "execute-api"  # the signing name of API Gateway's invoke endpoint
MAX_CLOCK_SKEW = timedelta(minutes=5)  # AWS refuses a signature further off than this
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
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    now: datetime | None = None,
) -> Caller:
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization")
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
    if "host" not in signed or any(name not in lowered for name in signed):
        raise SignatureRejected("Signed headers must include host and be present in the request")
    if credentials.token and lowered.get("x-amz-security-token") != credentials.token:
        raise SignatureRejected("The security token included in the request is invalid")
    timestamp = lowered.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected("X-Amz-Date is missing or not an ISO 8601 basic timestamp") from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_CLOCK_SKEW or match["date"] != timestamp[:8]:
        raise SignatureRejected("Signature expired")

    request = AWSRequest(method=method, url=url, data=body, headers={name: lowered[name] for name in signed})
    request.context["timestamp"] = timestamp
    expected = _SignedHeadersOnly(credentials, SERVICE, region, signed).signature_of(request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return Caller(access_key=match["key"])


class _SignedHeadersOnly(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client listed (the SDK default leaves some out)."""

    def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            headers[name] = request.headers[name]
        return headers

    def signature_of(self, request: AWSRequest) -> str:
        canonical = self.canonical_request(request)
        return self.signature(self.string_to_sign(request, canonical), request)
