"""The project's own modules import each other without cycles, and each layer only from the layers below it.

Every import statement counts, wherever it is: at module level, inside a function, or under `TYPE_CHECKING` (a
cycle hidden in a function is still a cycle, and a type-only one still welds two modules together). Lambda code is
named from `lambdas/`, its import root, as the Lambda runtime imports it; the rest from the repository root.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LAMBDA_CODE_ROOT = REPO / "lambdas"
NOT_PROJECT_CODE = {".venv", "node_modules", "cdk.out", ".git", "__pycache__"}
EXAMPLE_SERVICES = "services"  # lambdas/services/: the example participants, not the platform
SAGA_INPUTS = "sagas"  # lambdas/sagas/: each saga's input model, loaded by name from its definition, never imported
EXAMPLE_KITS = "tests.sagas"  # each example saga's harness data, the one part of tests/ the test kit may use


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(repo: Path = REPO, lambda_root: Path = LAMBDA_CODE_ROOT) -> dict[str, Path]:
    """Module name -> file, for every Python file of the project."""
    modules = {}
    for path in sorted(repo.rglob("*.py")):
        relative = path.relative_to(repo)
        if NOT_PROJECT_CODE & set(relative.parts):
            continue
        root = lambda_root if path.is_relative_to(lambda_root) else repo
        modules[module_name(path, root)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that the module `name` (file `path`) imports, anywhere in its body."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                # `from package import module` imports the module; `from module import name` the module itself
                submodule = f"{source}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif source in modules:
                    found.add(source)
    return found - {name}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (its first module repeated at the end), or [] if there is none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def imports_from(graph: dict[str, set[str]], importers: str, imported: str) -> list[str]:
    """'a -> b' for every module under `importers` that imports one under `imported`."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _under(module, importers)
        for target in targets
        if _under(target, imported)
    )


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


@pytest.fixture(scope="module")
def graph():
    return import_graph(project_modules())


def test_the_project_has_no_import_cycle(graph):
    # Given every module of the project and what it imports / When cycles are looked for / Then there is none
    cycle = import_cycle(graph)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_the_local_runtime_imports_nothing_from_the_test_kit_or_the_tests(graph):
    assert imports_from(graph, "local_runtime", "saga_testkit") == []
    assert imports_from(graph, "local_runtime", "tests") == []


@pytest.mark.parametrize("harness", ["saga_testkit", "bench"])
def test_the_harness_imports_from_the_tests_only_the_example_kits(graph, harness):
    reaching_into_tests = [edge for edge in imports_from(graph, harness, "tests") if f"-> {EXAMPLE_KITS}." not in edge]
    assert reaching_into_tests == []


PLATFORM = [
    *("statemachines", "infra", "app", "local_runtime", "saga_testkit", "saga_ops", "saga_scaffold"),
    *("participant_toolkit", "saga_records", "saga_api", "saga_operations", "host_hooks"),  # the platform's Lambda code
]


@pytest.mark.parametrize("platform", PLATFORM)
def test_the_platform_imports_no_example_participant_nor_input_model(graph, platform):
    assert imports_from(graph, platform, EXAMPLE_SERVICES) == []
    assert imports_from(graph, platform, SAGA_INPUTS) == []


def test_lambda_code_imports_only_lambda_code(graph):
    # The code asset is lambdas/ alone: a handler that imported from elsewhere would fail on AWS
    lambda_modules = {module_name(path, LAMBDA_CODE_ROOT) for path in LAMBDA_CODE_ROOT.rglob("*.py")}
    outside = sorted(
        f"{module} -> {target}" for module in lambda_modules for target in graph[module] if target not in lambda_modules
    )
    assert outside == []


def test_a_cycle_through_a_function_body_a_type_only_import_or_a_relative_import_is_found(tmp_path):
    # Given modules that import each other only inside a function, only for type checking, or relatively
    files = {
        "shop/__init__.py": "",
        "shop/cloud.py": "from shop.bus import Bus\n",
        "shop/bus.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from shop.cloud import Cloud\n",
        "shop/demo.py": "def main():\n    from shop import api\n",
        "shop/api.py": "from .demo import catalog\n",
        "lambdas/svc/__init__.py": "",
        "lambdas/svc/handlers.py": "from .service import run\n",
        "lambdas/svc/service.py": "import svc.handlers\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = project_modules(tmp_path, tmp_path / "lambdas")
    graph = import_graph(modules)
    # Then each pair is an edge both ways, and a cycle is reported
    assert (graph["shop.cloud"], graph["shop.bus"]) == ({"shop.bus"}, {"shop.cloud"})
    assert (graph["shop.demo"], graph["shop.api"]) == ({"shop.api"}, {"shop.demo"})
    assert (graph["svc.handlers"], graph["svc.service"]) == ({"svc.service"}, {"svc.handlers"})
    cycle = import_cycle(graph)
    assert len(cycle) == 3
    assert cycle[0] == cycle[-1]
    # And once each pair imports one way only, none is
    acyclic = {module: targets - {"shop.cloud", "shop.demo", "svc.handlers"} for module, targets in graph.items()}
    assert import_cycle(acyclic) == []


def test_an_import_across_layers_is_named():
    graph = {"local_runtime.http_api": {"saga_testkit.demo", "local_runtime.cloud"}, "saga_testkit.demo": set()}
    assert imports_from(graph, "local_runtime", "saga_testkit") == ["local_runtime.http_api -> saga_testkit.demo"]
