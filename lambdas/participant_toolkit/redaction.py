"""What a failure's `cause` may say: never a credential or personal data the saga's input holds.

A failure's cause travels far: to Step Functions (the execution's history and error), to the saga record and from it
to the status API (`GET /<saga>/{id}`), to the operator CLI and to incident notices. A domain function that quotes its
input in a rejection ("card tok_4242... declined") would publish it there. So, for every saga and every participant,
the toolkit takes out of a cause each value of the command's input held under a sensitive field (any name containing
one of SENSITIVE_FIELD_PARTS, and everything nested under such a field), whatever the domain function wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SENSITIVE_FIELD_PARTS = (
    "token",
    "card",
    "secret",
    "password",
    "credential",
    "iban",
    "account_number",
    "email",
    "phone",
    "name",
    "address",
    "line1",
    "line2",
    "postal",
    "birth",
)
_SENSITIVE = re.compile("|".join(SENSITIVE_FIELD_PARTS), re.IGNORECASE)
REDACTED = "[redacted]"
MIN_REDACTED_CHARS = 3  # shorter values ("FR", "1") would blank ordinary words of the message, and identify no one


def redact(cause: str, command_input: dict[str, Any]) -> str:
    """`cause` with every sensitive value of `command_input` replaced by REDACTED (longest first)."""
    values = sorted(set(sensitive_values(command_input)), key=len, reverse=True)
    for value in values:
        cause = cause.replace(value, REDACTED)
    return cause


def sensitive_values(document: Any, *, inside_sensitive: bool = False) -> Iterator[str]:
    """The text of every scalar under a sensitive field (iteratively deep enough for any saga input)."""
    pending = [(document, inside_sensitive)]
    while pending:
        node, sensitive = pending.pop()
        if isinstance(node, dict):
            pending.extend((value, sensitive or bool(_SENSITIVE.search(str(key)))) for key, value in node.items())
        elif isinstance(node, list):
            pending.extend((item, sensitive) for item in node)
        elif sensitive and node is not None and not isinstance(node, bool):
            text = str(node)
            if len(text) >= MIN_REDACTED_CHARS:
                yield text
