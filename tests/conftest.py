"""Shared test setup: Lambda code is importable the way the Lambda runtime sees it (lambdas/ on sys.path)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAMBDAS = REPO / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))
