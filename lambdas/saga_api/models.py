"""What the API takes apart from a saga's input: saga ids and listing limits; and each input model's JSON schema.

A saga's body model is its input model (`Input` in lambdas/sagas/<saga in snake_case>.py). The API Gateway request
model (JSON Schema draft 4, checked before the Lambda runs) is generated from it by `request_json_schema()`, so the
gateway and the handler can never disagree about the contract.
"""

from __future__ import annotations

from typing import Any

# Step Functions execution names allow 1-80 characters; CloudWatch logging of executions wants only ASCII
# letters, digits, '-' and '_'. A saga id is the execution name, so this pattern.
SAGA_ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
MAX_SAGA_ID_LENGTH = 80
MAX_LIST_LIMIT = 100  # sagas per page of GET /<saga route>
DEFAULT_LIST_LIMIT = 20


def request_json_schema(model: Any, *, title: str) -> dict[str, Any]:
    """A pydantic model as JSON Schema draft 4 (what API Gateway models speak), references inlined."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items() if key not in ("title", "description")}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"$schema": "http://json-schema.org/draft-04/schema#", "title": title, **inline(schema)}
