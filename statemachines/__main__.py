"""Regenerate (or, with --check, verify) the committed ASL and Mermaid files of every saga definition.

python -m statemachines          # write statemachines/<saga>.asl.json and <saga>.mmd
python -m statemachines --check  # exit 1 if any generated file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from statemachines.compiler import compile_saga
from statemachines.definition import SAGA_FILE_SUFFIX, SagaDefinitionError, load_definition, saga_files
from statemachines.diagram import to_mermaid
from statemachines.rendering import render_asl


def generated_files(saga_file: Path) -> dict[Path, str]:
    asl = compile_saga(load_definition(saga_file))
    stem = saga_file.name.removesuffix(SAGA_FILE_SUFFIX)
    return {
        saga_file.with_name(f"{stem}.asl.json"): render_asl(asl),
        saga_file.with_name(f"{stem}.mmd"): to_mermaid(asl),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statemachines", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is missing or stale")
    args = parser.parse_args(argv)
    stale = []
    try:
        for saga_file in saga_files():
            for path, text in generated_files(saga_file).items():
                if path.exists() and path.read_text(encoding="utf-8") == text:
                    continue
                if args.check:
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


if __name__ == "__main__":
    sys.exit(main())
