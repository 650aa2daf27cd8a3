"""The saga compiler: definitions validated and compiled to Amazon States Language (pure Python, no CDK import).

A team's sagas live in statemachines/sagas/ (`saga_files()`), each beside the files generated from it.
"""

from statemachines.compiler import SAGA_TABLE_KEY, compile_saga, queue_url_key
from statemachines.definition import (
    SagaDefinition,
    SagaDefinitionError,
    Step,
    load_definition,
    parse_definition,
    saga_files,
)

__all__ = [
    "SAGA_TABLE_KEY",
    "SagaDefinition",
    "SagaDefinitionError",
    "Step",
    "compile_saga",
    "load_definition",
    "parse_definition",
    "queue_url_key",
    "saga_files",
]
