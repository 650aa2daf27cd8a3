"""The README's "Add your own saga", as a user runs it, in a copy of this repository: scaffold a saga, check it,
synthesize the stack, run its tests and its fault matrix on the local runtime; and nothing but new files appear.

The copy holds this checkout's files (tracked, and new ones not ignored: the working tree a user has) in a git
repository of its own, and reuses this checkout's .venv and node_modules through symbolic links: nothing installs.
Every step is the command the README gives, in a process of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from saga_scaffold.scaffold import FILES, SagaNames, render

# Its own processes and moto, so no cloud of this worker: in the local cloud group for balance (the long runs fill the
# other worker), after that group's cloud is torn down.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

REPO = Path(__file__).resolve().parents[2]
NAME = "GymBooking"
SNAKE = SagaNames(NAME).snake
STEP_TIMEOUT_SECONDS = 300  # a deadline, not a timing: synth, the saga's tests and its matrix each take under a minute
# Built already: make must not reinstall them in the copy (their requirement files are newer there)
GIT_IDENTITY = {"NAME": "walk-through", "EMAIL": "walk-through@example.com"}
INSTALLED = ("-o", ".venv/.requirements-installed", "-o", "node_modules/.package-lock.json")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """This checkout's files in a fresh git repository, one commit, the installed tools linked."""
    root = tmp_path / "project"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():  # a tracked file deleted in the working tree is not there to copy
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / relative)
    for installed in (".venv", "node_modules"):
        (root / installed).symlink_to(REPO / installed, target_is_directory=True)
    git(root, "init", "-q")
    # .gitignore names them as folders; here they are links
    (root / ".git" / "info" / "exclude").write_text(".venv\nnode_modules\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the project before the new saga")
    return root


def git(root: Path, *arguments: str) -> str:
    identity = {f"GIT_{role}_{part}": value for role in ("AUTHOR", "COMMITTER") for part, value in GIT_IDENTITY.items()}
    return subprocess.run(
        ["git", *arguments], cwd=root, capture_output=True, text=True, check=True, env={**os.environ, **identity}
    ).stdout


def run(root: Path, *command: str, **environment: str) -> str:
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, **environment},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{output[-6000:]}"
    return output


def test_a_scaffolded_saga_checks_synthesizes_and_passes_its_tests_and_fault_matrix(copy):
    python = ".venv/bin/python"
    # When a user scaffolds a saga
    written = run(copy, "make", *INSTALLED, "new-saga", f"NAME={NAME}")
    assert f"wrote statemachines/sagas/{SNAKE}.saga.yaml" in written
    # And checks its definition
    checked = run(copy, python, "-m", "statemachines", "check", f"statemachines/sagas/{SNAKE}.saga.yaml")
    assert re.search(rf"^ok statemachines/sagas/{SNAKE}\.saga\.yaml: saga {NAME}, 3 steps", checked, re.MULTILINE)
    # And synthesizes the stack with the CDK CLI (cdk-nag included)
    run(copy, "make", *INSTALLED, "synth")
    template = (copy / "cdk.out" / "SagaStack.template.json").read_text()
    assert f'"{NAME}StateMachineArn"' in template
    # And runs the saga's own tests, then its fault matrix (every step x every fault), on the local runtime
    assembly = {"SAGA_ASSEMBLY": str(copy / "cdk.out")}
    tests = run(copy, python, "-m", "pytest", f"tests/sagas/{SNAKE}", "-q", **assembly)
    assert re.search(r"^4 passed", tests, re.MULTILINE), tests[-3000:]
    matrix = run(copy, python, "-m", "pytest", "tests/e2e/test_fault_matrix.py", "-k", NAME, "-q", "-s", **assembly)
    # Then every applicable cell passed: those of the new saga alone
    assert re.search(rf"fault matrix: 25 cells of {NAME} settled", matrix), matrix[-3000:]
    assert re.search(r"^25 passed, 2 skipped", matrix, re.MULTILINE), matrix[-3000:]
    # And the project gained exactly the saga's files: none of its own was edited
    status = git(copy, "status", "--porcelain", "--untracked-files=all").splitlines()
    expected = {render(target, SagaNames(NAME).values()) for target in FILES.values()} | {
        f"statemachines/sagas/{SNAKE}.asl.json",
        f"statemachines/sagas/{SNAKE}.mmd",
    }
    assert sorted(status) == sorted(f"?? {path}" for path in expected)
