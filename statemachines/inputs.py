"""A saga's input model, `Input` in lambdas/sagas/<saga in snake_case>.py: found by convention, loaded from its file.

The model is loaded by path under a private module name, not imported as `sagas.<name>`, so that a code root other
than the project's (a test's, or `python -m statemachines check --code-root`) never meets the project's package of
the same name. The module should need pydantic only: it is the API's request contract.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

from statemachines.definition import INPUT_MODEL, SagaDefinition


class InputModelError(Exception):
    """The input module cannot be loaded, or has no pydantic model `Input`."""


def input_module_path(code_root: Path, definition: SagaDefinition) -> Path:
    return Path(code_root).joinpath(*definition.input_module.split(".")).with_suffix(".py")


def load_input_model(code_root: Path, definition: SagaDefinition) -> Any:
    """The saga's `Input` class (a pydantic model), executed from its file."""
    path = input_module_path(code_root, definition)
    # A private package for the module's folder, so that an input module may import a sibling relatively (a saga
    # sharing another's input model: `from .order_fulfillment import Input`).
    package = f"_saga_inputs_{abs(hash(str(path.parent.resolve())))}"
    if package not in sys.modules:
        holder = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(package, None, is_package=True))
        holder.__path__ = [str(path.parent)]
        sys.modules[package] = holder
    name = f"{package}.{path.stem}"
    if name in sys.modules:
        return getattr(sys.modules[name], INPUT_MODEL)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputModelError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the module's annotations through it
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise InputModelError(f"{path} fails to load: {type(error).__name__}: {error}") from error
    model = getattr(module, INPUT_MODEL, None)
    if not (isinstance(model, type) and hasattr(model, "model_json_schema") and hasattr(model, "model_fields")):
        raise InputModelError(f"{path}: `{INPUT_MODEL}` is not a pydantic model")
    return model
