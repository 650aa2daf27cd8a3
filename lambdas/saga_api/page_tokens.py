"""`next_token`: where a listing goes on, opaque and tamper-evident.

A token is the index key the listing stopped at, with its saga type, as base64url JSON, and a MAC over exactly those
bytes made with the stack's HMAC key in KMS (the key never leaves KMS; the API may only make and check MACs with it).
A token is checked before anything of it is parsed: a forged or altered one (a made-up key, another listing's) is
refused, whatever it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cached_property
from typing import Any, Protocol

import boto3
from botocore.exceptions import ClientError

from saga_api.errors import ApiError, FieldProblem, InvalidParameter
from saga_api.json_body import parse_json_document
from saga_records import SagaStatus

MAC_ALGORITHM = "HMAC_SHA_256"
MAX_TOKEN_CHARS = 1024  # a token this API issues is about 200 characters
_KEY_FIELDS = {"saga_id", "status", "created_at"}  # the by_status index's key of an item
_SEPARATOR = "."


class Mac(Protocol):
    """Makes and checks message authentication codes with a key the caller never sees."""

    def sign(self, message: bytes) -> bytes: ...

    def verify(self, message: bytes, mac: bytes) -> bool: ...


class KmsMac:
    """KMS GenerateMac / VerifyMac with one HMAC key (the only module of the API that calls KMS)."""

    def __init__(self, key_id: str | None, *, client: Any = None) -> None:
        self.key_id = key_id  # None in a function that serves no listing (the API's reconciler)
        self._client = client

    @cached_property
    def _kms(self) -> Any:
        if self.key_id is None:
            raise RuntimeError("PAGE_TOKEN_KEY_ID is not set: this function serves no listing")
        return self._client or boto3.client("kms")

    def sign(self, message: bytes) -> bytes:
        return self._kms.generate_mac(KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Message=message)["Mac"]

    def verify(self, message: bytes, mac: bytes) -> bool:
        try:
            return bool(
                self._kms.verify_mac(KeyId=self.key_id, MacAlgorithm=MAC_ALGORITHM, Message=message, Mac=mac)[
                    "MacValid"
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "KMSInvalidMacException":
                return False
            raise


class PageTokens:
    def __init__(self, mac: Mac) -> None:
        self.mac = mac

    def encode(self, last_key: dict[str, Any], saga_type: str) -> str:
        payload = json.dumps({"key": last_key, "saga_type": saga_type}, sort_keys=True, separators=(",", ":")).encode()
        return f"{_b64(payload)}{_SEPARATOR}{_b64(self.mac.sign(payload))}"

    def decode(self, token: str, status: SagaStatus, saga_type: str) -> dict[str, Any]:
        """The index key a token stands for; `InvalidParameter` unless this API issued it for this listing (this
        saga type and status)."""
        invalid = InvalidParameter(
            "next_token is not valid", [FieldProblem("next_token", "not a token this listing issued")]
        )
        if len(token) > MAX_TOKEN_CHARS or token.count(_SEPARATOR) != 1:
            raise invalid
        encoded_payload, encoded_mac = token.split(_SEPARATOR)
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not payload or not mac or not self.mac.verify(payload, mac):
            raise invalid
        try:
            document = parse_json_document(payload, field="next_token")
        except ApiError:
            raise invalid from None
        if not isinstance(document, dict) or set(document) != {"key", "saga_type"}:
            raise invalid
        key = document["key"]
        if document["saga_type"] != saga_type or not isinstance(key, dict) or set(key) != _KEY_FIELDS:
            raise invalid
        if key.get("status") != status.value or not all(isinstance(value, str) for value in key.values()):
            raise invalid
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
