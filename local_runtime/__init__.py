"""The local runtime: the synthesized stack on moto, participants in-process, no AWS account needed.

It hosts the Lambda code in this process, so it puts the Lambda code root on the import path the way the
Lambda runtime does (the stack's code asset is a copy of the same folder).
"""

import sys
from pathlib import Path

LAMBDA_CODE_ROOT = Path(__file__).resolve().parent.parent / "lambdas"
if str(LAMBDA_CODE_ROOT) not in sys.path:
    sys.path.insert(0, str(LAMBDA_CODE_ROOT))
