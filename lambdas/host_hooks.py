"""What a Lambda module builds when it is imported, made known to a host that watches the import.

On AWS nobody watches, and announcing costs a look at a thread-local list. A host that runs Lambda code in its own
process (the local runtime, the tests) imports a handler module inside `watching()` and gets every object of the
platform the module built (its saga participants, its saga starters), whatever names the module gives them: it reaches
them through their public interface (fault injection wraps a participant's commands; a starter's Step Functions
client takes event hooks) instead of patching the module's globals.

The platform's constructors call `announce(self)`; handler modules need do nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_watchers = threading.local()  # per thread: a host imports one execution environment at a time in its thread


def announce(built: object) -> None:
    """Tell whoever watches this thread that `built` was built."""
    for seen in getattr(_watchers, "lists", ()):
        seen.append(built)


@contextmanager
def watching() -> Iterator[list[object]]:
    """Every object announced in this thread inside the block, in the order they were built (nested blocks each see
    what was built inside them)."""
    seen: list[object] = []
    lists = getattr(_watchers, "lists", [])
    _watchers.lists = [*lists, seen]
    try:
        yield seen
    finally:
        _watchers.lists = lists
