#!/usr/bin/env python3
"""CDK entry point (`cdk synth` runs `python3 app.py`); the app itself is built by infra.app_factory."""

import os

import infra  # noqa: F401  (first: points jsii at a supported Node before aws_cdk loads)
from infra.app_factory import build_app
from infra.constants import REPO_ROOT

if __name__ == "__main__":
    # The CDK CLI sets CDK_OUTDIR; run directly, synthesize into ./cdk.out as the CLI would.
    build_app(outdir=os.environ.get("CDK_OUTDIR", str(REPO_ROOT / "cdk.out"))).synth()
