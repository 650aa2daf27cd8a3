"""Ctrl-C in a terminal ends a local command with one line, not a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def exits_quietly_on_ctrl_c(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's `main`: a KeyboardInterrupt (after its `with` blocks stopped what it started) exits 130."""

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> int:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("\ninterrupted: everything it started is stopped", file=sys.stderr)
            return INTERRUPTED_EXIT_CODE

    return wrapper
