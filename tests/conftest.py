"""Shared test setup: Lambda code is importable the way the Lambda runtime sees it (lambdas/ on sys.path), and the
saga test kit's fixtures (saga_testkit/pytest_plugin.py) are registered."""

import faulthandler
import os
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from _pytest import capture

REPO = Path(__file__).resolve().parent.parent
LAMBDAS = REPO / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))

pytest_plugins = ["saga_testkit.pytest_plugin"]

# Python 3.11's TextIOWrapper crashes the process (a segmentation fault) when threads write to one at once: a write
# while another thread's flush has dropped the GIL corrupts its pending buffer. The local cloud's handler threads
# print (Powertools' EMF metrics) all through a session, and around each test pytest points `sys.stdout` at its own
# capture stream instead of the local runtime's router, which writes one at a time: so pytest's streams do too.
_capture_write_lock = threading.RLock()


def _one_write_at_a_time(stream_class: type) -> None:
    write, flush = stream_class.write, stream_class.flush

    def locked_write(self, text):
        with _capture_write_lock:
            return write(self, text)

    def locked_flush(self):
        with _capture_write_lock:
            return flush(self)

    stream_class.write, stream_class.flush = locked_write, locked_flush


for _stream_class in (capture.CaptureIO, capture.EncodedFile):
    _one_write_at_a_time(_stream_class)

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials and a region for moto, so no client reaches a real account."""
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup` (on a worker), xdist has tagged each grouped test's node id with its group by now. An
    untagged test runs on any worker, and its group's shared local cloud is deployed once per worker: pytest 9.2
    made the tag a silent no-op. Fail loudly instead."""
    if not getattr(config.option, "loadgroup", False):
        return
    untagged = [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if untagged:
        raise pytest.UsageError(f"pytest-xdist did not tag {len(untagged)} xdist_group test(s), e.g. {untagged[0]}")


# A worker that dies mid-test (xdist: "worker 'gw0' crashed") leaves only that line. Each worker writes Python's
# fatal-error dump (every thread's stack) to a file of its own, and the controller prints any such file at the end.
CRASH_DIR_VARIABLE = "SAGA_TEST_CRASH_DIR"
_crashed: list[str] = []


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, which points it at stderr
def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        if crash_dir := os.environ.get(CRASH_DIR_VARIABLE):
            dump = open(Path(crash_dir) / f"{os.environ['PYTEST_XDIST_WORKER']}.log", "a")  # noqa: SIM115 (open until exit)
            faulthandler.enable(file=dump, all_threads=True)
    elif getattr(config.option, "numprocesses", None):
        os.environ[CRASH_DIR_VARIABLE] = tempfile.mkdtemp(prefix="saga-test-crash-")


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    _crashed.append(crashitem)


def pytest_terminal_summary(terminalreporter):
    if not _crashed:
        return
    terminalreporter.section("crashed workers")
    terminalreporter.write_line(f"crashed while running: {', '.join(_crashed)}")
    crash_dir = os.environ.get(CRASH_DIR_VARIABLE)
    dumps = [path for path in Path(crash_dir).glob("*.log") if path.stat().st_size] if crash_dir else []
    if not dumps:
        terminalreporter.write_line(
            "no fatal-error dump: the process was killed (SIGKILL, e.g. the kernel's OOM killer)"
        )
    for path in dumps:
        terminalreporter.write_line(f"--- {path.stem}: Python's fatal-error dump")
        dump = path.read_text()
        crashed_thread = max(dump.find("Current thread"), 0)  # the thread that crashed, then the fatal error's line
        terminalreporter.write_line(dump[crashed_thread : crashed_thread + 3000])
        terminalreporter.write_line(dump[:300])
