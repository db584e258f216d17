"""`jobbroker-worker module:attribute`: run a Worker defined in a module until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ._exceptions import JobbrokerError
from ._worker import Worker


def load_worker(target: str) -> Worker:
    """Import `module:attribute`; the attribute is a Worker or a callable that returns one."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"jobbroker-worker: expected MODULE:ATTRIBUTE, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj = module
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Worker) and callable(obj):
        obj = obj()
    if not isinstance(obj, Worker):
        raise SystemExit(f"jobbroker-worker: {target} is a {type(obj).__name__}, not a Worker")
    return obj


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="jobbroker-worker",
        description="Run a jobbroker Worker until SIGTERM or SIGINT (a second one skips the grace period).",
    )
    parser.add_argument("target", help="MODULE:ATTRIBUTE naming a Worker, or a function returning one")
    parser.add_argument("--url", help="broker base URL (overrides the worker's)")
    parser.add_argument("--queue", help="queue to lease from (overrides the worker's)")
    parser.add_argument("--concurrency", type=int, help="jobs run at once (overrides the worker's)")
    parser.add_argument("--grace", type=float, help="seconds running jobs get to finish at shutdown")
    parser.add_argument("--log-level", default=os.environ.get("JOBBROKER_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per HTTP request drowns the worker's own log; --log-level DEBUG brings it back.
    logging.getLogger("httpx").setLevel(max(logging.getLogger().level, logging.WARNING))
    worker = load_worker(args.target)
    if args.url:
        worker.base_url = args.url
    if args.queue:
        worker.queue = args.queue
    if args.concurrency:
        worker.concurrency = args.concurrency
    if args.grace is not None:
        worker.shutdown_grace_seconds = args.grace
    try:
        worker.run()
    except JobbrokerError as exc:
        logging.getLogger("jobbroker_client.worker").error("worker stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
