"""Lambda threads' output goes to the Lambda log, the rest to the terminal, whatever rich displays do meanwhile."""

from __future__ import annotations

import io
import itertools
import re
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
from rich.console import Console

from local_runtime import lambda_output
from local_runtime.lambda_output import ensure_routed, lambda_output_to

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HANG_SECONDS = 10  # a write loop never finishes; every scenario here takes milliseconds


class FakeTerminal(io.StringIO):
    """What a user's terminal is to rich: a tty."""

    def isatty(self) -> bool:
        return True


def lambda_print(text: str) -> None:
    """What a handler does in the local Lambda service: the invocation first puts the router back on top."""

    def invoke() -> None:
        ensure_routed()
        print(text)

    thread = threading.Thread(target=invoke, name="lambda-InventoryFunction-0")
    thread.start()
    thread.join(HANG_SECONDS)
    assert not thread.is_alive(), "a Lambda thread's print never returned"


# Each scenario is an order of four events: a progress display and the Lambda output routing each begin and end.
EVENTS = ("display begins", "routing begins", "display ends", "routing ends")
ORDERS = [
    order
    for order in itertools.permutations(EVENTS)
    if order.index("display begins") < order.index("display ends")
    and order.index("routing begins") < order.index("routing ends")
]


@pytest.mark.parametrize("order", ORDERS, ids=[" / ".join(order) for order in ORDERS])
def test_output_is_routed_whatever_order_displays_begin_and_end_in(order, tmp_path, monkeypatch):
    # Given a terminal, a rich console on it (as the demo's), and a Lambda log
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    console = Console(force_terminal=True, width=100)
    log = tmp_path / "lambda.log"
    finished = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            with ExitStack() as stack:
                display = routing = None
                routed = False
                for step, event in enumerate(order):
                    if event == "display begins":
                        display = stack.enter_context(ExitStack())
                        display.enter_context(console.status("working..."))
                    elif event == "routing begins":
                        routing = stack.enter_context(ExitStack())
                        routing.enter_context(lambda_output_to(log))
                        routed = True
                    elif event == "display ends":
                        display.close()
                    else:
                        routing.close()
                        routed = False
                    # When the main thread and a Lambda thread both write after each event
                    console.print(f"console line {step}")
                    print(f"main print {step}")
                    if routed:
                        lambda_print(f"lambda line {step}")
        except BaseException as error:  # reported on the test's thread
            failures.append(error)
        finally:
            finished.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # Then it ends (no write loop between a display's proxy and the router) ...
    assert finished.wait(HANG_SECONDS), f"writes looped forever for the order {order}"
    assert not failures, failures
    shown, logged = ANSI_CODES.sub("", terminal.getvalue()), log.read_text()
    # ... the Lambda threads' lines are in the log and not on the terminal ...
    lambda_lines = [line for line in logged.splitlines() if line.startswith("lambda line")]
    assert lambda_lines, "no Lambda output reached the Lambda log"
    assert "lambda line" not in shown
    # ... every line of the main thread reached the terminal and none the log ...
    for step in range(len(order)):
        assert f"console line {step}" in shown
        assert f"main print {step}" in shown
    assert "console line" not in logged
    assert "main print" not in logged
    # ... and afterwards stdout writes to the terminal (a display that outlived the routing may restore an idle
    # router, which passes everything through), Lambda threads included
    lambda_print("after everything")
    assert "after everything" in terminal.getvalue()
    assert sys.stdout is terminal or getattr(sys.stdout, "downstream", None) is terminal


def test_a_routed_stdout_writes_past_a_display_proxy_never_into_it(tmp_path, monkeypatch):
    # Given routing that began while a display's proxy was stdout (the demo deploys inside a status)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    console = Console(force_terminal=True, width=100)
    with console.status("deploying..."), lambda_output_to(tmp_path / "lambda.log") as router:
        # Then the router's stream underneath is the terminal, and it is what rich resolves stdout to
        assert router.downstream is terminal
        assert console.file is terminal


class OverlapDetectingStream(io.StringIO):
    """A stream that notes when a write begins while another is still under way (and makes each write last)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing, self.overlapped = 0, False
        self._count = threading.Lock()

    def write(self, text: str) -> int:
        with self._count:
            self.writing += 1
            self.overlapped |= self.writing > 1
        threading.Event().wait(0.002)  # a write that drops the GIL part way, as a flush to a file does
        written = super().write(text)
        with self._count:
            self.writing -= 1
        return written


@pytest.mark.parametrize("thread_name", ["lambda-InventoryFunction-0", "http-api-0"])
def test_a_router_writes_one_at_a_time_whichever_threads_print(tmp_path, monkeypatch, thread_name):
    # Given the router on top of a stream (Python 3.11's TextIOWrapper crashes on writes from threads at once), and
    # the Lambda log swapped for the same kind of stream
    terminal = OverlapDetectingStream()
    monkeypatch.setattr(sys, "stdout", terminal)
    log = OverlapDetectingStream()
    with lambda_output_to(tmp_path / "lambda.log"):
        lambda_log, lambda_output._sinks[-1] = lambda_output._sinks[-1], log
        try:
            # When eight threads of one kind (Lambda handlers, or the runtime's own) print at once
            threads = [
                threading.Thread(target=lambda: [print("line") for _ in range(20)], name=thread_name) for _ in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(HANG_SECONDS)
            sys.stdout.flush()
        finally:
            lambda_output._sinks[-1] = lambda_log
    # Then every line arrived, and no write began while another was under way
    written = log if thread_name.startswith("lambda-") else terminal
    assert written.getvalue().count("line") == 8 * 20  # (print writes the text and its newline apart)
    assert not log.overlapped
    assert not terminal.overlapped


# Threads print while another replaces sys.stdout with streams nothing else holds, each write dropping the GIL as a
# contended lock does: what Lambda threads' EMF prints and the router, rich and pytest swapping stdout amount to.
PRINT_RACE = """
import sys, threading, time
from local_runtime import lambda_output
if sys.argv[1] == "fixed":
    lambda_output.print_holds_its_stream()

class Stream:
    def write(self, text):
        time.sleep(0)
        return len(text)

    def flush(self):
        pass

stop = time.monotonic() + float(sys.argv[2])

def printer():
    while time.monotonic() < stop:
        print("metric", "line")

def swapper():
    while time.monotonic() < stop:
        sys.stdout = Stream()

threads = [threading.Thread(target=printer) for _ in range(4)] + [threading.Thread(target=swapper)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""
RACE_SECONDS = 3  # the unguarded print crashes within a second here


def _print_race(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PRINT_RACE, mode, str(RACE_SECONDS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_print_survives_stdout_being_replaced_by_another_thread_mid_print():
    # Given print made to hold its stream, as the local runtime does before any invocation
    # When threads print while another keeps replacing sys.stdout
    result = _print_race("fixed")
    # Then the process lives and ends normally
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython's own print holds its stream from 3.12 (gh-130163)")
def test_without_the_fix_the_same_race_kills_the_process():
    # Given CPython 3.11's print, which borrows sys.stdout / When the same race runs
    result = _print_race("bare")
    # Then the process dies of a segmentation fault: the hazard the fix removes is real on this interpreter
    assert result.returncode == -signal.SIGSEGV, (result.returncode, result.stderr[-1000:])
