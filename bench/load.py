"""The load generator: one scenario of one system per process, so its CPU is its own.

    python -m bench.load '{"system": "jobbroker", "scenario": "drain", "params": {...}, ...}'

Prints one JSON line: the scenario's figures plus the CPU of each process group in the window.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import uvloop

from bench.common import Window
from bench.cpu import CpuMeter

MODULES = {
    "jobbroker": "bench.systems.jobbroker",
    "raw": "bench.systems.raw",
    "minimal": "bench.systems.minimal",
    "procrastinate": "bench.systems.procrastinate_peer",
    "pgqueuer": "bench.systems.pgqueuer_peer",
    "sdk": "bench.systems.sdk",
}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    module = importlib.import_module(MODULES[spec["system"]])
    scenario = getattr(module, spec["scenario"])
    window = Window(CpuMeter(spec["params"]["dsn"], {"broker": spec.get("broker_pids", [])}))
    return await scenario(spec["params"], window)


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(uvloop.run(run(spec))))


if __name__ == "__main__":
    main()
