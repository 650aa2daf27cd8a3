"""Regenerate or verify the generated files of every saga definition, or validate any saga file.

python -m statemachines               # write <saga>.asl.json and <saga>.mmd next to each saga file
                                      # (statemachines/sagas/<saga>.saga.yaml); for a choreographed saga its
                                      # event schemas <saga>.events.json and its choreography <saga>.mmd
python -m statemachines --check       # exit 1 if any generated file is stale
python -m statemachines check PATH... # validate saga files (anywhere) without deploying them: exit 2 naming
                                      # file, step and field, else what each compiles to
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from statemachines import choreography
from statemachines.checks import DEFAULT_CODE_ROOT, load_sagas
from statemachines.compiler import compile_saga
from statemachines.deadline import saga_deadline_seconds
from statemachines.definition import SAGA_FILE_SUFFIX, SagaDefinitionError, load_definition, saga_files
from statemachines.diagram import to_mermaid
from statemachines.rendering import render_asl


def generated_files(saga_file: Path) -> dict[Path, str]:
    definition = load_definition(saga_file)
    stem = saga_file.name.removesuffix(SAGA_FILE_SUFFIX)
    if definition.pattern == "choreography":
        return {
            saga_file.with_name(f"{stem}.events.json"): choreography.render_event_schemas(definition),
            saga_file.with_name(f"{stem}.mmd"): choreography.to_mermaid(definition),
        }
    asl = compile_saga(definition)
    return {
        saga_file.with_name(f"{stem}.asl.json"): render_asl(asl),
        saga_file.with_name(f"{stem}.mmd"): to_mermaid(asl),
    }


def check(paths: list[Path], code_root: Path) -> int:
    """Validate `paths` against the code under `code_root`, and together with the project's own sagas (a name or a
    route must not clash with theirs)."""
    given = [path.resolve() for path in paths]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        print(f"no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    others = [path for path in saga_files() if path.resolve() not in given]
    try:
        load_sagas([*paths, *others], code_root=None)
        definitions = load_sagas(paths, code_root=code_root)
    except SagaDefinitionError as error:
        print(error, file=sys.stderr)
        return 2
    for path, definition in zip(paths, definitions, strict=False):
        if definition.pattern == "choreography":
            print(
                f"ok {path}: saga {definition.name} (choreography), {len(definition.steps)} steps, "
                f"{len(choreography.reactions(definition))} rules, deadline {saga_deadline_seconds(definition)} s"
            )
            continue
        states = compile_saga(definition)["States"]
        print(
            f"ok {path}: saga {definition.name}, {len(definition.steps)} steps, {len(states)} states, "
            f"deadline {saga_deadline_seconds(definition)} s"
        )
    return 0


def generate(stale_only: bool) -> int:
    stale = []
    try:
        load_sagas(saga_files())
        for saga_file in saga_files():
            for path, text in generated_files(saga_file).items():
                if path.exists() and path.read_text(encoding="utf-8") == text:
                    continue
                if stale_only:
                    stale.append(path)
                else:
                    path.write_text(text, encoding="utf-8")
                    print(f"wrote {path}")
    except SagaDefinitionError as error:
        print(error, file=sys.stderr)
        return 2
    if stale:
        print("stale generated files (run `make asl`): " + ", ".join(str(path) for path in stale), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        parser = argparse.ArgumentParser(prog="python -m statemachines check", description="Validate saga files.")
        parser.add_argument("paths", nargs="+", type=Path, help="*.saga.yaml files, anywhere")
        parser.add_argument("--code-root", type=Path, default=DEFAULT_CODE_ROOT, help="where participant code lives")
        args = parser.parse_args(argv[1:])
        return check(args.paths, args.code_root)
    parser = argparse.ArgumentParser(prog="python -m statemachines", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is missing or stale")
    return generate(parser.parse_args(argv).check)


if __name__ == "__main__":
    sys.exit(main())
