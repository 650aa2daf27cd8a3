"""Wall times of the developer loop: `cdk synth` with the pinned CDK CLI, and the whole test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
# The Makefile's `make test` command.
TEST_SUITE = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q"]


def synth_with_cdk_cli(outdir: Path | None = None) -> tuple[float, Path]:
    """Seconds `cdk synth --quiet` took (app.py, as `make synth`), and the cloud assembly it wrote.

    Needs Node on PATH (`make bench` puts the pinned one there) and the CLI from `npm ci` (`make install`).
    """
    if not CDK_CLI.exists():
        raise RuntimeError(f"{CDK_CLI} is missing: run `make install`")
    if shutil.which("node") is None:
        raise RuntimeError("node is not on PATH: run through `make bench`, which puts the pinned Node there")
    outdir = outdir or Path(tempfile.mkdtemp(prefix="bench-cdk-out-"))
    started = time.perf_counter()
    completed = subprocess.run(
        [str(CDK_CLI), "synth", "--quiet", "--output", str(outdir)], cwd=REPO, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"cdk synth failed:\n{completed.stderr[-3000:]}")
    return elapsed, outdir


def run_test_suite() -> tuple[float, bool, str, list[str]]:
    """Seconds the whole suite took, whether it passed, its summary line and the failed tests' lines."""
    started = time.perf_counter()
    completed = subprocess.run(TEST_SUITE, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    lines = [line for line in completed.stdout.strip().splitlines() if line.strip()]
    failed = [line[:300] for line in lines if line.startswith(("FAILED", "ERROR"))]
    return elapsed, completed.returncode == 0, lines[-1] if lines else completed.stderr[-500:], failed
