"""`make serve-api`: the stack on the local runtime, its API served on 127.0.0.1 until Ctrl-C.

The stack is synthesized (or an assembly given) and deployed into moto, every saga's demo data seeded by its kit (the
order example's stock), and a moto server started in this process so that the operator CLI can reach the stack from
another terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import suppress
from pathlib import Path

from local_runtime.cloud import REGION, LocalCloud
from local_runtime.http_api import serving
from local_runtime.interrupt import exits_quietly_on_ctrl_c
from local_runtime.moto_server import serving_this_process
from local_runtime.synth import SynthesisFailed, synthesize
from saga_testkit.demo import DEMO_TIME_SCALE
from saga_testkit.kit import project_definitions
from saga_testkit.sagas import LocalSagas

SIGNAL_CHECK_SECONDS = 0.5  # how often the idle main thread wakes, so that Ctrl-C takes effect at once


@exits_quietly_on_ctrl_c
def main(argv: list[str] | None = None) -> int:
    """`make serve-api`: the stack on the local runtime with its API on 127.0.0.1, until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m saga_testkit.serve_api", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--assembly", type=Path, help="a cloud assembly to serve (cdk.out); synthesized if absent")
    args = parser.parse_args(argv)
    try:
        print("synthesizing and deploying the stack into moto...", flush=True)
        with (
            LocalCloud(args.assembly or synthesize(), time_scale=DEMO_TIME_SCALE) as cloud,
            serving(cloud, port=args.port) as (api, _),
            serving_this_process() as endpoint,
        ):
            definitions = project_definitions()
            for definition in definitions:
                LocalSagas(cloud, definition).kit.prepare_demo()
            keys = api.credentials
            names = ", ".join(definition.name for definition in definitions)
            routes = sorted({route.resource for route in api.routes})
            # From the moment it says Ctrl-C stops it, Ctrl-C does: a user (or a test) may press it at once.
            with suppress(KeyboardInterrupt):
                print(f"saga API on {api.url}: {', '.join(routes)} (demo data of {names} seeded); Ctrl-C stops it.")
                print(
                    f'Sign with: curl --aws-sigv4 "aws:amz:{REGION}:execute-api" --user "{keys.access_key}:'
                    f'{keys.secret_key}" -H "x-amz-security-token: {keys.token}" {api.url}{routes[0]}/<saga id>'
                )
                print(
                    f"operate it from another terminal: AWS_ENDPOINT_URL={endpoint.url} "
                    f"AWS_ACCESS_KEY_ID={keys.access_key} AWS_SECRET_ACCESS_KEY={keys.secret_key} "
                    f"AWS_DEFAULT_REGION={REGION} .venv/bin/python -m saga_ops list",
                    flush=True,
                )
                # Woken every half second: Linux may hand SIGINT to any of this process's threads, and Python runs
                # the handler only when the main thread runs, which a wait with no end never does.
                while True:
                    time.sleep(SIGNAL_CHECK_SECONDS)
            print("\nstopping: the API, the participants and the local stack shut down", flush=True)
    except SynthesisFailed as failure:
        print(f"cdk synth failed:\n{failure}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
