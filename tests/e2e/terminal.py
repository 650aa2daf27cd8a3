"""Run a command as a user does in a terminal: on a pseudo-terminal that is its controlling terminal.

rich draws progress displays only on a terminal, and Ctrl-C there is the terminal's interrupt character, which
the kernel turns into SIGINT for the whole foreground process group: a captured run exercises neither.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
CTRL_C = b"\x03"  # the terminal's default interrupt character (VINTR)
COLUMNS, ROWS = 160, 50


@dataclass
class TerminalRun:
    pid: int
    master: int
    raw: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None

    @property
    def output(self) -> str:
        """What the terminal showed, without colour and cursor codes."""
        return ANSI_CODES.sub("", self.raw.decode("utf-8", errors="replace")).replace("\r", "")

    def read_until(self, text: str, timeout_seconds: float) -> bool:
        """Read what the command writes until `text` appears (True) or the time is up or it exits (False)."""
        deadline = time.monotonic() + timeout_seconds
        while text not in self.output:
            if not self._read(deadline - time.monotonic()):
                return text in self.output
        return True

    def press_ctrl_c(self) -> None:
        os.write(self.master, CTRL_C)

    def wait(self, timeout_seconds: float) -> int | None:
        """Read to the end and reap the command; None if it is still running after `timeout_seconds` (then killed)."""
        deadline = time.monotonic() + timeout_seconds
        while self._read(deadline - time.monotonic()):
            pass
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                os.close(self.master)
                return self.exit_code
            time.sleep(0.1)
        self.kill()
        return None

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        os.waitpid(self.pid, 0)
        os.close(self.master)

    def _read(self, timeout_seconds: float) -> bool:
        """One read; False at the end of output (the command exited) or when the time is up."""
        if timeout_seconds <= 0:
            return False
        ready, _, _ = select.select([self.master], [], [], min(timeout_seconds, 1.0))
        if not ready:
            return timeout_seconds > 1.0  # nothing yet: keep waiting until the deadline
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        if not chunk:
            return False
        self.raw.extend(chunk)
        return True


def start_in_terminal(*arguments: str, niceness: int = 0) -> TerminalRun:
    """Start `python arguments...` in the repository with a new pseudo-terminal as its controlling terminal
    (`niceness` is added to its scheduling priority)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        try:
            os.nice(niceness)
            # A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored across exec:
            # a terminal's foreground program gets Ctrl-C whatever ran the tests.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.chdir(REPO)
            environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
            os.execve(sys.executable, [sys.executable, *arguments], environment)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    return TerminalRun(pid=pid, master=master)
