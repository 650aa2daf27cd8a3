"""The request body as a JSON document, parsed strictly before any model sees it.

Refused (`MalformedBody`), each a class of hostile or careless input: text that is not UTF-8 or not JSON; a key twice in
one object (parsers disagree on which one wins, so the gateway's validator and the handler could read different
orders); `NaN` and `Infinity` (not JSON); nesting deeper than any saga input needs (a document nested thousands deep
exhausts a recursive parser: refused, never a crash).
"""

from __future__ import annotations

import json
from typing import Any

from saga_api.errors import FieldProblem, MalformedBody

MAX_JSON_DEPTH = 32  # objects and arrays inside one another; an order is 3 deep


def parse_json_document(data: bytes, *, field: str = "body") -> Any:
    """The JSON value in `data`, or `MalformedBody` naming `field` and why."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(field, "not UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=_without_duplicate_keys, parse_constant=_no_constants)
    except _DuplicateKey as duplicate:
        raise _malformed(field, f"a key appears twice in one object: {duplicate.key}") from None
    except _NotJson as constant:
        raise _malformed(field, f"{constant.name} is not a JSON value") from None
    except RecursionError:
        raise _malformed(field, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise _malformed(field, f"not JSON: {error.msg} at character {error.pos}") from None
    if _depth(document) > MAX_JSON_DEPTH:
        raise _malformed(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    return document


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NotJson(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(json.dumps(key)[:80])
            seen.add(key)
    return document


def _no_constants(name: str) -> Any:
    raise _NotJson(name)


def _depth(document: Any) -> int:
    """How many objects and arrays nest at the deepest point (iteratively: no recursion on hostile input)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _malformed(field: str, problem: str) -> MalformedBody:
    return MalformedBody(f"{field} is not a JSON document this API takes", [FieldProblem(field, problem)])
