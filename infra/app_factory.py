"""Build the CDK app in-process: used by app.py (the CDK CLI) and by the local runtime and the tests."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import App, Environment

from infra import constants
from infra.nag import add_nag_checks
from infra.stack import SagaStack

CDK_JSON = constants.REPO_ROOT / "cdk.json"
# What the CDK CLI turns on by default: construct paths (aws:cdk:path) and asset paths in resource Metadata.
CLI_DEFAULT_CONTEXT = {"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True}


def build_app(
    outdir: str | None = None,
    context: dict[str, object] | None = None,
    *,
    saga_files: Sequence[Path] = constants.SAGAS,
    code_root: Path = constants.LAMBDAS_DIR,
) -> App:
    """The app with SagaStack and the cdk-nag checks; `app.synth()` returns the cloud assembly.

    The feature flags of cdk.json and the CLI's metadata defaults apply here too, so an in-process synth
    gives the template `cdk synth` gives; `context` adds what `cdk deploy -c key=value` would. `saga_files` and
    `code_root` (the sagas' participants and input models, the functions' code asset) default to the project's.
    """
    context = {
        **CLI_DEFAULT_CONTEXT,
        **json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {}),
        **(context or {}),
    }
    app = App(outdir=outdir, context=context)
    SagaStack(
        app,
        constants.STACK_NAME,
        saga_files=saga_files,
        code_root=code_root,
        env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
        description="Sagas on Step Functions, SQS and Lambda",
    )
    add_nag_checks(app)
    return app
