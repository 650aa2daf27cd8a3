"""Where the in-process Lambda functions' output goes: to a log file (CloudWatch Logs on AWS), not the terminal.

Handlers print (Powertools' EMF metrics) and log from the threads the local Lambda service runs them on. A
`sys.stdout` router sends what those threads write to the running cloud's Lambda log and everything else to the
stream underneath (the terminal, or a capture). Two rules keep it independent of what `sys.stdout` is when a
cloud starts:

- The router writes past rich proxies. In a terminal a rich `Live`/`status` swaps `sys.stdout` for a proxy that
  prints through its console; a router writing into that proxy while the console resolved `sys.stdout` to the
  router looped forever. The router names the stream underneath as `rich_proxied_file`, so a console writes there.
- The router stays on top. A display that starts later wraps `sys.stdout` (Lambda output would then print
  through its console), and one that started earlier restores its saved stream when it ends (dropping the
  router): the Lambda service calls `ensure_routed()` before every invocation, which puts a router back on top.
"""

from __future__ import annotations

import builtins
import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

LAMBDA_THREAD_PREFIX = "lambda-"  # threads whose output is Lambda output (CloudWatch Logs on AWS)
# Threads the participant toolkit starts to heartbeat for a running handler: their output is the handler's.
LAMBDA_HELPER_THREAD_NAMES = frozenset({"saga-heartbeat"})


def is_lambda_thread(name: str) -> bool:
    return name.startswith(LAMBDA_THREAD_PREFIX) or name in LAMBDA_HELPER_THREAD_NAMES


def _underlying(stream: Any) -> Any:
    """The file under any rich proxies and routers: what the terminal (or a capture) really is."""
    seen = set()
    while id(stream) not in seen:
        seen.add(id(stream))
        inner = getattr(stream, "rich_proxied_file", None)
        if inner is None:
            return stream
        stream = inner
    return stream


# The Lambda logs of the running clouds (one per LocalCloud in this process); Lambda threads write to the newest.
_sinks: list[TextIO] = []
# Every write and flush through a router, to a sink or downstream, one at a time: Python 3.11's TextIOWrapper is not
# safe for concurrent writes (a write while another thread's flush drops the GIL corrupts its pending buffer and
# crashes the process), and the handlers of many Lambda threads print at once.
_output_lock = threading.RLock()


class ThreadRoutedStdout(io.TextIOBase):
    """stdout that sends what Lambda threads write to the Lambda log, the rest to the stream underneath."""

    def __init__(self, downstream: Any) -> None:
        self.downstream = _underlying(downstream)

    @property
    def rich_proxied_file(self) -> Any:
        """What a rich console writes to while `sys.stdout` is this router: never the router itself."""
        return self.downstream

    def write(self, text: str) -> int:
        with _output_lock:
            if _sinks and is_lambda_thread(threading.current_thread().name):
                return _sinks[-1].write(text)
            return self.downstream.write(text)

    def flush(self) -> None:
        with _output_lock:
            for sink in _sinks:
                sink.flush()
            self.downstream.flush()

    def close(self) -> None:
        """A router owns no stream: dropping the last reference to one (IOBase closes on collection) closes nothing."""

    def isatty(self) -> bool:
        return self.downstream.isatty()

    def fileno(self) -> int:
        return self.downstream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.downstream, "encoding", "utf-8")


_install_lock = threading.Lock()
_builtin_print = builtins.print


def _print_holding_its_stream(
    *objects: object, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """print() with its own reference to `sys.stdout`. CPython's print (3.11; fixed in 3.12 and 3.13, gh-130163)
    borrows it: when another thread replaces `sys.stdout` between print's writes (a router going on top, a display
    or pytest restoring theirs) and the old stream's last reference goes, print writes to freed memory and the
    process dies of a segmentation fault. Lambda threads print (Powertools' EMF) while those swaps happen."""
    if file is None:
        file = sys.stdout
    _builtin_print(*objects, sep=sep, end=end, file=file, flush=flush)


def print_holds_its_stream() -> None:
    """Make `print` hold the stream it writes to, unless something else already replaced the builtin."""
    if builtins.print is _builtin_print:
        builtins.print = _print_holding_its_stream


def ensure_routed() -> ThreadRoutedStdout:
    """Make `sys.stdout` a router unless it is one (a display, or a test's capture, may have replaced it).

    The router goes on top: a rich proxy under it would print Lambda output through its console. A new router
    each time, so that whoever saved the previous `sys.stdout` restores a stream that still works."""
    with _install_lock:
        if not isinstance(sys.stdout, ThreadRoutedStdout):
            sys.stdout = ThreadRoutedStdout(sys.stdout)
        return sys.stdout


@contextmanager
def lambda_output_to(path: Path) -> Iterator[ThreadRoutedStdout]:
    """Lambda threads' output goes to `path` until the block ends."""
    print_holds_its_stream()
    with Path(path).open("a", encoding="utf-8") as sink:
        with _output_lock:
            _sinks.append(sink)
        router = ensure_routed()
        try:
            yield router
        finally:
            with _output_lock:
                _sinks.remove(sink)
            _uninstall_if_idle()


def _uninstall_if_idle() -> None:
    """With no cloud running, give `sys.stdout` back (a router still in place passes everything through)."""
    with _install_lock:
        if not _sinks and isinstance(sys.stdout, ThreadRoutedStdout):
            sys.stdout = sys.stdout.downstream
