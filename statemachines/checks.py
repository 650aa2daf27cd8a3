"""Checks across saga files and against the participant code: what one file alone cannot show.

Each problem is reported as file, step and field, like a problem inside one file:
- two files defining the same saga name (each saga is one state machine, one API route, one output);
- one service's command used as an action by one step and as a compensation by another (a participant function
  serves one kind of command; the toolkit dead-letters the other kind);
- a step whose service has no participant code, or whose command has no handler in it (the stack would deploy,
  and every command would then dead-letter);
- two sagas on the same API route (`api.path`);
- a saga without its input model (`lambdas/sagas/<saga in snake_case>.py` defining `Input`, the API's request body),
  or whose `api.id_field` is not a required string field of it.

Participant code is read, not imported (importing a handler builds its clients from the function's environment):
`lambdas/services/<package>/handlers.py` must define, at module level, one name per command (ReserveItems ->
reserve_items). An input module is read first, then loaded (it needs pydantic only) to look at its fields.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from statemachines.definition import (
    INPUT_MODEL,
    SagaDefinition,
    SagaDefinitionError,
    load_definition,
    snake_case,
)
from statemachines.inputs import InputModelError, input_module_path, load_input_model

DEFAULT_CODE_ROOT = Path(__file__).resolve().parent.parent / "lambdas"
HANDLERS_MODULE = "handlers.py"


@dataclass(frozen=True)
class LoadedSaga:
    path: Path
    definition: SagaDefinition


def load_sagas(paths: Iterable[Path], *, code_root: Path | None = DEFAULT_CODE_ROOT) -> list[SagaDefinition]:
    """Load every file, then check them together (and against the participant code under `code_root`, unless
    None). Raises SagaDefinitionError listing every problem found."""
    loaded: list[LoadedSaga] = []
    problems: list[str] = []
    for path in paths:
        try:
            loaded.append(LoadedSaga(Path(path), load_definition(path)))
        except SagaDefinitionError as error:
            problems.append(str(error))
    problems += _duplicate_names(loaded) + _duplicate_routes(loaded) + _command_kinds(loaded)
    if code_root is not None:
        problems += _participant_code(loaded, Path(code_root)) + _input_models(loaded, Path(code_root))
    if problems:
        raise SagaDefinitionError("\n".join(problems))
    return [saga.definition for saga in loaded]


def _duplicate_names(loaded: list[LoadedSaga]) -> list[str]:
    first_file: dict[str, Path] = {}
    problems = []
    for saga in loaded:
        name = saga.definition.name
        if name in first_file:
            problems.append(f"{saga.path}: field 'name': saga '{name}' is already defined in {first_file[name]}")
        else:
            first_file[name] = saga.path
    return problems


def _duplicate_routes(loaded: list[LoadedSaga]) -> list[str]:
    first: dict[str, LoadedSaga] = {}
    problems = []
    for saga in loaded:
        path = saga.definition.route_path
        if path in first:
            other = first[path]
            if other.definition.name == saga.definition.name:
                continue  # the same saga twice: reported as such
            problems.append(
                f"{saga.path}: field 'api.path': route /{path} is already the route of saga "
                f"'{other.definition.name}' in {other.path}"
            )
        else:
            first[path] = saga
    return problems


def _input_models(loaded: list[LoadedSaga], code_root: Path) -> list[str]:
    problems = []
    for saga in loaded:
        definition = saga.definition
        module = input_module_path(code_root, definition)
        shown = _shown(module, code_root)
        names = _module_names(module)
        if names is None:
            problems.append(
                f"{saga.path}: field 'name': no input model for saga {definition.name}: {shown} does not exist "
                f"(write a pydantic model `{INPUT_MODEL}` there: the body of POST /{definition.route_path})"
            )
            continue
        if INPUT_MODEL not in names:
            problems.append(f"{saga.path}: field 'name': {shown} defines no `{INPUT_MODEL}` (the saga's input model)")
            continue
        if definition.id_field is None:
            continue
        try:
            model = load_input_model(code_root, definition)
        except InputModelError as error:
            problems.append(f"{saga.path}: field 'api.id_field': {error}")
            continue
        field = model.model_fields.get(definition.id_field)
        if field is None:
            problems.append(
                f"{saga.path}: field 'api.id_field': {shown}'s {INPUT_MODEL} has no field '{definition.id_field}' "
                f"(fields: {', '.join(model.model_fields) or 'none'})"
            )
        elif not field.is_required() or _json_type(model, definition.id_field) != "string":
            problems.append(
                f"{saga.path}: field 'api.id_field': {shown}'s {INPUT_MODEL}.{definition.id_field} must be a required "
                "string: its value is the saga id"
            )
    return problems


def _json_type(model: type, field: str) -> object:
    return model.model_json_schema().get("properties", {}).get(field, {}).get("type")


def _command_kinds(loaded: list[LoadedSaga]) -> list[str]:
    """A (service, command) is an action everywhere or a compensation everywhere."""
    kind_of: dict[tuple[str, str], tuple[str, Path, str]] = {}
    problems = []
    for saga in loaded:
        for step in saga.definition.steps:
            for field, command in (("action", step.action), ("compensation", step.compensation)):
                if command is None:
                    continue
                key = (step.service, command)
                if key not in kind_of:
                    kind_of[key] = (field, saga.path, step.name)
                    continue
                other_field, other_path, other_step = kind_of[key]
                if other_field != field:
                    problems.append(
                        f"{saga.path}: step '{step.name}': field '{field}': {step.service}'s {command} is the "
                        f"{other_field} of step '{other_step}' in {other_path}; a command is an action or a "
                        "compensation, never both: give one of them another name"
                    )
    return problems


def _participant_code(loaded: list[LoadedSaga], code_root: Path) -> list[str]:
    problems = []
    defined: dict[Path, set[str] | None] = {}
    for saga in loaded:
        for step in saga.definition.steps:
            module = code_root.joinpath(*step.package.split(".")) / HANDLERS_MODULE
            if module not in defined:
                defined[module] = _module_names(module)
            names = defined[module]
            shown = _shown(module, code_root)
            if names is None:
                problems.append(
                    f"{saga.path}: step '{step.name}': field 'service': no participant code for {step.service}: "
                    f"{shown} does not exist (write it, or scaffold one with `make new-saga`)"
                )
                continue
            for field, command in (("action", step.action), ("compensation", step.compensation)):
                if command is not None and snake_case(command) not in names:
                    problems.append(
                        f"{saga.path}: step '{step.name}': field '{field}': {shown} defines no handler "
                        f"'{snake_case(command)}' for {command}"
                    )
    return problems


def _module_names(module: Path) -> set[str] | None:
    """Names bound at a module's top level (functions, classes, assignments, imports); None if there is no module."""
    if not module.is_file():
        return None
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _shown(module: Path, code_root: Path) -> str:
    try:
        return str(module.relative_to(code_root.parent))
    except ValueError:
        return str(module)
