"""Cold initialisation of each participant handler, against `import boto3` plus one client, in fresh processes.

    python -m bench.cold_init [--assembly cdk.out] [--repetitions 11]

A Lambda cold start runs the handler module's import (settings parsed, services and clients built at module
level). Each measurement is a new interpreter that times, with `time.perf_counter`, only that import (so
interpreter start-up, the same for both, is not counted): the handler module with its function's environment
from the synthesized template, as Lambda would import it; and the baseline, `import boto3` and one client. The
runs alternate (baseline, each handler, baseline, ...) so that a busy moment hits both; the median of the
repetitions is reported, and the ratio handler / baseline. One handler is also timed layer by layer (pydantic,
Powertools, the rest of the toolkit, the handler: `import_layers`), so the figures say where its cold init goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.figures import median, ratio
from local_runtime import LAMBDA_CODE_ROOT
from local_runtime.cloud import FAKE_CREDENTIALS, read_template

BASELINE = "import boto3\nboto3.client('dynamodb')"
TIMER = "import time\n_started = time.perf_counter()\n{body}\nprint(time.perf_counter() - _started)"
# Fresh processes per body. With 5, one handler's ratio ranged from 1.55 to 2.41 over a day's runs on a shared 2-core
# VM, and the verdict against 1.5 flipped with the noise; 21 gave 1.57 to 1.64 for the four handlers.
REPETITIONS = 11
PLACEHOLDER_VALUE = "bench-placeholder"  # stands for a deploy-time reference (a table name) in the environment


def participant_handlers(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Handler module -> its function's environment, for every queue-fed function of the template.

    Both functions of a participant (action and compensation) import the same module: measured once.
    """
    fed_by_queue = {
        _logical_id(mapping["Properties"]["FunctionName"])
        for mapping in template["Resources"].values()
        if mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    modules: dict[str, dict[str, str]] = {}
    for logical_id in sorted(fed_by_queue):
        properties = template["Resources"][logical_id]["Properties"]
        module = properties["Handler"].rpartition(".")[0]
        variables = properties.get("Environment", {}).get("Variables", {})
        modules.setdefault(
            module,
            {key: value if isinstance(value, str) else PLACEHOLDER_VALUE for key, value in variables.items()}
            | {"AWS_LAMBDA_FUNCTION_NAME": logical_id},
        )
    return modules


def service_name(module: str) -> str:
    """The service a participant handler module belongs to, as the figures name it (services.inventory.handlers ->
    inventory): the package the handlers module sits in."""
    package, _, _ = module.rpartition(".")
    return package.rpartition(".")[2] or module


def _logical_id(reference: Any) -> str:
    if isinstance(reference, dict) and "Ref" in reference:
        return str(reference["Ref"])
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return str(reference["Fn::GetAtt"][0])
    raise ValueError(f"event source mapping FunctionName is not a reference to a function: {reference}")


def lambda_runtime_environment() -> dict[str, str]:
    """What the Lambda service sets in every function's environment, for the baseline and the handlers alike.

    Libraries take their Lambda path on these: the X-Ray SDK's recorder, outside Lambda, builds two X-Ray clients
    for centralised sampling at import (about a third of a second here); in Lambda it samples locally and builds
    none. Without them this bench would time a path no function runs."""
    return {
        "LAMBDA_TASK_ROOT": str(LAMBDA_CODE_ROOT),
        "LAMBDA_RUNTIME_DIR": str(LAMBDA_CODE_ROOT),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
    }


def time_in_fresh_process(body: str, environment: dict[str, str] | None = None) -> float:
    """Seconds `body` took in a new interpreter with the Lambda code root on its path, in a Lambda-like
    environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(LAMBDA_CODE_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        **FAKE_CREDENTIALS,
        **lambda_runtime_environment(),
        **(environment or {}),
    }
    completed = subprocess.run(
        [sys.executable, "-c", TIMER.format(body=body)], capture_output=True, text=True, env=env, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"cold-init run failed:\n{completed.stderr[-2000:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def import_layers(module: str) -> list[tuple[str, str]]:
    """(layer, body) from the baseline to the handler module, each body the one before plus one layer of what the
    handler imports and builds: timed like the handler, their differences say where its cold init goes."""
    layers = [
        ("pydantic", "from pydantic import BaseModel"),
        (
            "Powertools Logger, Metrics, Tracer (built)",
            "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
            "Logger()\nMetrics()\nTracer(patch_modules=('botocore',))",
        ),
        (
            "Powertools batch and idempotency",
            "import aws_lambda_powertools.utilities.batch\nimport aws_lambda_powertools.utilities.idempotency",
        ),
        ("participant toolkit (the rest of it)", "import participant_toolkit"),
        (f"{module} (services, repository, participant built)", f"import {module}"),
    ]
    bodies = [("import boto3 + 1 client (the baseline)", BASELINE)]
    for label, code in layers:
        bodies.append((label, f"{bodies[-1][1]}\n{code}"))
    return bodies


def measure(assembly: Path, repetitions: int = REPETITIONS) -> dict[str, Any]:
    handlers = participant_handlers(read_template(assembly))
    baseline_runs: list[float] = []
    handler_runs: dict[str, list[float]] = {module: [] for module in handlers}
    untraced_runs: dict[str, list[float]] = {module: [] for module in handlers}
    layered_module = next(iter(handlers))
    layers = import_layers(layered_module)
    layer_runs: list[list[float]] = [[] for _ in layers]
    for _ in range(repetitions):
        baseline_runs.append(time_in_fresh_process(BASELINE))
        for module, environment in handlers.items():
            handler_runs[module].append(time_in_fresh_process(f"import {module}", environment))
            # The same without X-Ray: what tracing adds.
            untraced = environment | {"POWERTOOLS_TRACE_DISABLED": "true"}
            untraced_runs[module].append(time_in_fresh_process(f"import {module}", untraced))
        for runs, (_, body) in zip(layer_runs, layers, strict=True):
            runs.append(time_in_fresh_process(body, handlers[layered_module]))
    baseline_s = median(baseline_runs)
    handler_s = {module: median(runs) for module, runs in handler_runs.items()}
    untraced_s = {module: median(runs) for module, runs in untraced_runs.items()}
    layer_s = [median(runs) for runs in layer_runs]
    return {
        "baseline_s": baseline_s,
        "handler_s": handler_s,
        "ratios": {module: ratio(seconds, baseline_s) for module, seconds in handler_s.items()},
        "untraced_s": untraced_s,
        "untraced_ratios": {module: ratio(seconds, baseline_s) for module, seconds in untraced_s.items()},
        "layers": [
            {"layer": label, "cumulative_s": seconds, "adds_s": seconds - (layer_s[index - 1] if index else 0.0)}
            for index, ((label, _), seconds) in enumerate(zip(layers, layer_s, strict=True))
        ],
        "repetitions": repetitions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_init", description=__doc__.splitlines()[0])
    parser.add_argument("--assembly", type=Path, help="cloud assembly (cdk.out); synthesized in-process if absent")
    parser.add_argument("--repetitions", type=int, default=REPETITIONS)
    args = parser.parse_args(argv)
    if args.assembly is None:
        from local_runtime.synth import synthesize

        args.assembly = synthesize()
    print(json.dumps(measure(args.assembly, args.repetitions), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
