#!/usr/bin/env python3
"""CDK entry point (`cdk synth` runs `python3 app.py`); the app itself is built by infra.app_factory."""

import os
import sys

import infra  # noqa: F401  (first: points jsii at a supported Node before aws_cdk loads)
from infra.app_factory import build_app
from infra.constants import REPO_ROOT
from statemachines import SagaDefinitionError

if __name__ == "__main__":
    try:
        # The CDK CLI sets CDK_OUTDIR; run directly, synthesize into ./cdk.out as the CLI would.
        build_app(outdir=os.environ.get("CDK_OUTDIR", str(REPO_ROOT / "cdk.out"))).synth()
    except SagaDefinitionError as error:
        # A bad saga definition is the user's to fix: say where, without a Python traceback.
        sys.exit(f"Invalid saga definition:\n{error}")
