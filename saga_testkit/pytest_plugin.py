"""pytest fixtures for sagas on the local runtime: the project's stack deployed into moto, a LocalSagas per saga, the
signed local API, and the generated fault matrix of every saga.

Register the plugin in the root conftest.py (`pytest_plugins = ["saga_testkit.pytest_plugin"]`) or on the command line
(`-p saga_testkit.pytest_plugin`). Fixtures:

- `saga_definitions` (session): every saga definition of the project (statemachines/sagas/), checked together;
- `saga_assembly` (session): the synthesized cloud assembly (the `SAGA_ASSEMBLY` environment variable reuses one, e.g.
  cdk.out, while iterating);
- `saga_time_scale` (session): local seconds per SLA second, 0.07 (override the fixture to change it);
- `local_cloud`: the stack deployed into moto, its participants polling their queues;
- `local_sagas_of`: `local_sagas_of("OrderFulfillment")`, the saga's `LocalSagas` (one per saga and cloud);
- `local_api`: `(api, client)`, the stack's API served on 127.0.0.1 and a client that signs its requests;
- `fault_matrix_run` (module): every saga's fault matrix run at once on `local_cloud` (saga_testkit.fault_matrix_run);
  only the sagas whose cells the session runs, so `pytest -k <Saga>` runs that saga's alone.

`local_cloud`, `local_sagas_of` and `local_api` live for the whole session. moto is process-wide, so a suite that also
runs other moto tests in the same process keeps the cloud to one package: in that package's conftest.py,

    local_cloud, local_sagas_of, local_api = cloud_fixtures(scope="package")

The fault matrix, one test per cell (not applicable cells are reported as skipped, with the reason):

    @pytest.mark.parametrize(("saga", "cell"), fault_matrix_params())
    def test_fault_cell(saga, cell, fault_matrix_run):
        assert fault_matrix_run.problems(saga, cell) == []
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_runtime.cloud import LocalCloud
from local_runtime.http_api import serving
from local_runtime.synth import synthesize
from saga_testkit.fault_matrix import NotApplicable
from saga_testkit.fault_matrix_run import MatrixRun, matrix_entries, run_fault_matrix
from saga_testkit.kit import project_definitions
from saga_testkit.sagas import LocalSagas
from statemachines import SagaDefinition

DEFAULT_TIME_SCALE = 0.07  # local s per SLA s: a 300 s timeout lasts 21 s (task windows have floors: moto_workarounds)
ASSEMBLY_VARIABLE = "SAGA_ASSEMBLY"


@pytest.fixture(scope="session")
def saga_definitions() -> list[SagaDefinition]:
    return project_definitions()


@pytest.fixture(scope="session")
def saga_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reuse = os.environ.get(ASSEMBLY_VARIABLE)
    return Path(reuse) if reuse else synthesize(tmp_path_factory.mktemp("assembly"))


@pytest.fixture(scope="session")
def saga_time_scale() -> float:
    return DEFAULT_TIME_SCALE


def cloud_fixtures(scope: str = "session") -> tuple[Any, Any, Any]:
    """`local_cloud`, `local_sagas_of` and `local_api` at `scope`: assign them in a conftest.py to give that package
    (scope "package") or module its own cloud."""

    @pytest.fixture(scope=scope, name="local_cloud")
    def local_cloud(saga_assembly: Path, saga_time_scale: float) -> Iterator[LocalCloud]:
        with LocalCloud(saga_assembly, time_scale=saga_time_scale) as cloud:
            yield cloud

    @pytest.fixture(scope=scope, name="local_sagas_of")
    def local_sagas_of(local_cloud: LocalCloud, saga_definitions: list[SagaDefinition]) -> Callable[[str], LocalSagas]:
        by_name = {definition.name: definition for definition in saga_definitions}
        built: dict[str, LocalSagas] = {}

        def of(name: str) -> LocalSagas:
            if name not in built:
                built[name] = LocalSagas(local_cloud, by_name[name])
            return built[name]

        return of

    @pytest.fixture(scope=scope, name="local_api")
    def local_api(local_cloud: LocalCloud) -> Iterator[tuple[Any, Any]]:
        with serving(local_cloud) as (api, client):
            yield api, client

    return local_cloud, local_sagas_of, local_api


local_cloud, local_sagas_of, local_api = cloud_fixtures()


@pytest.fixture(scope="module")
def fault_matrix_run(
    request: pytest.FixtureRequest,
    local_sagas_of: Callable[[str], LocalSagas],
    saga_definitions: list[SagaDefinition],
) -> MatrixRun:
    """Every applicable cell of the fault matrix of every saga whose cells the session runs, at once on the cloud:
    every saga's, or the one `-k <Saga>` selects."""
    selected = selected_sagas(request.session.items)
    return run_fault_matrix(
        [
            local_sagas_of(definition.name)
            for definition in saga_definitions
            if not selected or definition.name in selected
        ]
    )


def selected_sagas(items: list[pytest.Item]) -> set[str]:
    """The names of the sagas whose fault-matrix cells are among `items` (the tests the session runs)."""
    names = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        saga = callspec.params.get("saga") if callspec is not None else None
        if isinstance(saga, SagaDefinition) and "fault_matrix_run" in getattr(item, "fixturenames", ()):
            names.add(saga.name)
    return names


def fault_matrix_params(definitions: list[SagaDefinition] | None = None) -> list[Any]:
    """pytest parameters `(saga, cell)` for every cell of every saga's fault matrix (the project's sagas by default),
    with ids such as `OrderFulfillment-process_payment-lost_reply`; a cell the definition makes meaningless is skipped
    with its reason."""
    params = []
    for definition, cell in matrix_entries(definitions if definitions is not None else project_definitions()):
        marks = [pytest.mark.skip(reason=cell.reason)] if isinstance(cell, NotApplicable) else []
        params.append(pytest.param(definition, cell, id=f"{definition.name}-{cell.id}", marks=marks))
    return params
