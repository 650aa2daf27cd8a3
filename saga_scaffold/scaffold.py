"""Write a new saga that runs end to end at once: its definition, its services' participant packages, its input model,
its kit and its tests, then its ASL and diagram.

The new saga's three steps are owned by three new services named after it: a hold on capacity (compensatable), a
charge for what the hold priced (compensatable), and a confirmation (retriable). Each service records its effect in its
own table, idempotent in the data, with a tombstone that refuses a late action, as the project's examples do; the kit
seeds their data, gives sample inputs and demo scenarios, and checks the saga's invariants.

Nothing is written unless everything can be: a name that is not PascalCase, a saga or service that exists already, or
a route another saga serves is refused (`ScaffoldRefused`), and the files are rendered and checked as synth checks
them (statemachines.checks) in a scratch directory before any lands in the project.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from statemachines.checks import load_sagas
from statemachines.compiler import compile_saga
from statemachines.definition import (
    SAGA_FILE_SUFFIX,
    SagaDefinitionError,
    load_definition,
    parse_definition,
    saga_files,
    snake_case,
)
from statemachines.diagram import to_mermaid
from statemachines.rendering import render_asl

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFINITIONS = Path("statemachines") / "sagas"  # where a project's saga files are, from its root
PASCAL_CASE = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*$")
# The saga's files, packages, route and services are named after it in snake_case; the longest service name it makes
# ("<Name>NotificationService") must stay within the definition's 64 characters, and generated lines within 120.
MAX_NAME_LENGTH = 40
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# The services the saga's steps are owned by: role -> the service's name after the saga's (<Name><Role>Service).
ROLES = ("reservation", "billing", "notification")
# Template -> where it is written, relative to the project root (placeholders as in the templates).
FILES = {
    "saga.yaml.tmpl": "statemachines/sagas/{{snake}}.saga.yaml",
    "input.py.tmpl": "lambdas/sagas/{{snake}}.py",
    **{
        f"{role}/{module}.py.tmpl": f"lambdas/services/{{{{{role}_package}}}}/{module}.py"
        for role in ROLES
        for module in ("__init__", "handlers", "models", "repository", "service")
    },
    "tests/__init__.py.tmpl": "tests/sagas/{{snake}}/__init__.py",
    "tests/conftest.py.tmpl": "tests/sagas/{{snake}}/conftest.py",
    "tests/kit.py.tmpl": "tests/sagas/{{snake}}/kit.py",
    "tests/test_saga.py.tmpl": "tests/sagas/{{snake}}/test_{{snake}}.py",
}


class ScaffoldRefused(Exception):
    """The saga cannot be scaffolded as asked; the message says why and what to do. Nothing was written."""


@dataclass(frozen=True)
class SagaNames:
    """Every name the new saga's files use, derived from its PascalCase name."""

    name: str

    @property
    def snake(self) -> str:
        return snake_case(self.name)

    @property
    def route(self) -> str:
        return self.snake.replace("_", "-")

    def service(self, role: str) -> str:
        return f"{self.name}{role.capitalize()}Service"

    def package(self, role: str) -> str:
        return f"{self.snake}_{role}"

    def values(self) -> dict[str, str]:
        values = {"Name": self.name, "snake": self.snake, "route": self.route, "id_field": f"{self.snake}_id"}
        for role in ROLES:
            values |= {
                f"{role}_service": self.service(role),
                f"{role}_package": self.package(role),
                f"{role}_errors": self.service(role).removesuffix("Service"),  # errors are named <Service>.<Error>
            }
        return values


def render(text: str, values: dict[str, str]) -> str:
    """Replace every `{{placeholder}}`; a placeholder without a value is an error, not left in place."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"no value for placeholder {match.group(0)}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(value, text)


def rendered_files(names: SagaNames) -> dict[str, str]:
    """Project-relative path -> content of every file the saga is scaffolded with, its ASL and diagram included."""
    values = names.values()
    files = {
        render(target, values): render((TEMPLATES / template).read_text(encoding="utf-8"), values)
        for template, target in FILES.items()
    }
    definition_path = render(FILES["saga.yaml.tmpl"], values)
    definition = parse_definition(yaml.safe_load(files[definition_path]), source=definition_path)
    asl = compile_saga(definition)
    stem = definition_path.removesuffix(SAGA_FILE_SUFFIX)
    files[f"{stem}.asl.json"] = render_asl(asl)
    files[f"{stem}.mmd"] = to_mermaid(asl)
    return files


def refusals(name: str, root: Path = REPO_ROOT) -> list[str]:
    """Why `name` cannot be scaffolded in the project at `root`; [] when it can."""
    if not PASCAL_CASE.match(name):
        return [
            f"{name!r} is not a PascalCase name: words that each start with a capital letter followed by lower-case "
            "letters or digits, such as GymBooking or Order2Cash (write an acronym as a word: HttpCheck, not "
            "HTTPCheck)"
        ]
    names = SagaNames(name)
    if len(name) > MAX_NAME_LENGTH:
        return [f"{name} has {len(name)} characters; at most {MAX_NAME_LENGTH} (its services' names add 19)"]
    if keyword.iskeyword(names.snake) or not names.snake.isidentifier():
        return [f"{name} in snake_case, {names.snake}, is a Python keyword: its packages could not be imported"]
    try:
        existing = {path: load_definition(path) for path in saga_files(root / DEFINITIONS)}
    except SagaDefinitionError as error:
        return [f"the project's saga files must load first (`python -m statemachines check` them):\n{error}"]
    problems = [f"saga {name} already exists: {_shown(path, root)}" for path, d in existing.items() if d.name == name]
    values = names.values()
    own_paths = [render(FILES["saga.yaml.tmpl"], values), render(FILES["input.py.tmpl"], values)]
    problems += [
        f"{path} already exists" for path in [*own_paths, f"tests/sagas/{names.snake}"] if (root / path).exists()
    ]
    for role in ROLES:
        service, package = names.service(role), f"lambdas/services/{names.package(role)}"
        if (root / package).exists():
            problems.append(f"service {service} already exists: {package}")
        problems += [
            f"service {service} already serves saga {definition.name} ({_shown(path, root)})"
            for path, definition in existing.items()
            if service in {step.service for step in definition.steps}
        ]
    problems += [
        f"route /{names.route} is already the route of saga {definition.name} ({_shown(path, root)}): "
        "name the new saga otherwise"
        for path, definition in existing.items()
        if definition.route_path == names.route
    ]
    return problems


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def finished_files(names: SagaNames, root: Path = REPO_ROOT) -> dict[str, str]:
    """The saga's files as they are written: rendered, the Python formatted with the project's formatter (a long name
    lays some lines out otherwise than a short one), and checked as synth checks them, in a scratch directory: the
    definition alone and against its participant code and input model, and beside the project's sagas (names,
    routes). Raises SagaDefinitionError."""
    files = rendered_files(names)
    with tempfile.TemporaryDirectory(prefix="new-saga-") as scratch:
        for relative, text in files.items():
            path = Path(scratch) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        config = root / "pyproject.toml" if (root / "pyproject.toml").is_file() else REPO_ROOT / "pyproject.toml"
        subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", "--config", str(config), scratch],
            check=True,
            capture_output=True,
        )
        new_file = Path(scratch) / render(FILES["saga.yaml.tmpl"], names.values())
        load_sagas([new_file], code_root=Path(scratch) / "lambdas")
        load_sagas([*saga_files(root / DEFINITIONS), new_file], code_root=None)
        return {relative: (Path(scratch) / relative).read_text(encoding="utf-8") for relative in files}


def scaffold(name: str, root: Path = REPO_ROOT) -> list[Path]:
    """Write saga `name` into the project at `root`; the files written, in order. Raises ScaffoldRefused (nothing
    written) when it cannot be."""
    problems = refusals(name, root)
    if problems:
        raise ScaffoldRefused("\n".join(problems))
    try:
        files = finished_files(SagaNames(name), root)
    except SagaDefinitionError as error:
        raise ScaffoldRefused(f"the scaffolded saga does not pass the checks synth runs:\n{error}") from error
    written: list[Path] = []
    try:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as file:  # never over a file that appeared meanwhile
                file.write(text)
            written.append(path)
    except OSError:
        _remove(written)
        raise
    return written


def _remove(written: list[Path]) -> None:
    """Take back what a write that failed half way wrote, and the folders it made."""
    for path in written:
        path.unlink()
    for folder in sorted({path.parent for path in written}, key=lambda folder: len(folder.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
