"""Synthesize the CDK app in-process, as `cdk synth` would, into a cloud assembly directory."""

from __future__ import annotations

import tempfile
from pathlib import Path


def synthesize(outdir: Path | None = None) -> Path:
    import infra  # noqa: F401 - picks a Node that jsii supports before aws_cdk loads
    from infra.app_factory import build_app

    outdir = Path(outdir) if outdir else Path(tempfile.mkdtemp(prefix="saga-assembly-"))
    assembly = build_app(outdir=str(outdir)).synth()
    return Path(assembly.directory)
