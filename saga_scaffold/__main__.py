"""python -m saga_scaffold NAME: write the saga NAME (PascalCase) into the project, ready to run and to make your own.

Exit 0 with the files written and what to do next; exit 2, naming why and writing nothing, for a name that is not
PascalCase, a saga or service that exists already, or a route another saga serves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from saga_scaffold.scaffold import REPO_ROOT, SagaNames, ScaffoldRefused, scaffold

NEXT_STEPS = """\
Saga {name} runs as it is. Next:
  python -m statemachines check statemachines/sagas/{snake}.saga.yaml   # what it compiles to
  .venv/bin/python -m pytest tests/sagas/{snake}                          # its tests on the local runtime
  .venv/bin/python -m pytest tests/e2e/test_fault_matrix.py -k {name}   # its fault matrix
Then make it yours (README, "Add your own saga"): rename its steps, services and errors, write your services' domain
functions, and run `make asl` after each edit of the definition."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m saga_scaffold", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="", help="the saga's name in PascalCase, e.g. GymBooking")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the project to write it into (default: this one)")
    args = parser.parse_args(argv)
    if not args.name:
        print("name the saga: make new-saga NAME=<PascalCaseName>, e.g. make new-saga NAME=GymBooking", file=sys.stderr)
        return 2
    try:
        written = scaffold(args.name, args.root)
    except ScaffoldRefused as refused:
        print(f"new-saga {args.name}: nothing written.\n{refused}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path.relative_to(args.root)}")
    names = SagaNames(args.name)
    print(NEXT_STEPS.format(name=names.name, snake=names.snake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
