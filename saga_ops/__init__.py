"""The operator CLI (`python -m saga_ops`): list, show, stuck sagas, DLQs, resume or resolve parked sagas.

The same code talks to AWS or to the local runtime: only the endpoint (AWS_ENDPOINT_URL) and the credentials differ;
every name comes from the stack's outputs and resources. It reuses the Lambda code's data access (saga records,
the stuck-saga finder), so the Lambda code root is importable the way the Lambda runtime sees it.
"""

import sys
from pathlib import Path

LAMBDA_CODE_ROOT = Path(__file__).resolve().parent.parent / "lambdas"
if str(LAMBDA_CODE_ROOT) not in sys.path:
    sys.path.insert(0, str(LAMBDA_CODE_ROOT))
