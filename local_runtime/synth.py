"""Synthesize the CDK app into a cloud assembly directory, as `cdk synth` does: `app.py` in a child process.

A child, not this process: the CDK runs in a jsii Node process, which would otherwise live as long as the demo or
`serve-api`. Ctrl-C in a terminal reaches every process of the foreground group, so that Node process died with
this one and jsii's exit hook then wrote into a broken pipe (a traceback after every Ctrl-C). The child runs in a
session of its own and is killed if this process is interrupted while it synthesizes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app.py"


class SynthesisFailed(RuntimeError):
    """`app.py` failed: an invalid saga definition (its message names the file, step and field) or a CDK error."""


def synthesize(outdir: Path | None = None) -> Path:
    outdir = Path(outdir) if outdir else Path(tempfile.mkdtemp(prefix="saga-assembly-"))
    child = subprocess.Popen(
        [sys.executable, str(APP)],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_OUTDIR": str(outdir)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, errors = child.communicate()
    except BaseException:  # Ctrl-C (or any other exit) while synthesizing: the child must not outlive us
        child.kill()
        child.communicate()
        raise
    if child.returncode != 0:
        raise SynthesisFailed(errors.strip() or f"{APP.name} exited with {child.returncode}")
    return outdir
