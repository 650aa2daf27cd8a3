"""The one serialisation of compiled ASL, shared by the committed file and the deployed definition."""

from __future__ import annotations

import json
from typing import Any


def render_asl(asl: dict[str, Any]) -> str:
    return json.dumps(asl, indent=2) + "\n"
