"""The `jobbroker` command: serve, migrate, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from jobbroker.settings import Settings


def _database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started here) when none is configured."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from jobbroker.store import embedded

    url = embedded.start(settings.data_dir)
    print(f"jobbroker: embedded PostgreSQL in {settings.data_dir.resolve() / 'pg'}", file=sys.stderr)
    return url


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jobbroker.store import migrate

    settings = Settings()
    url = _database_url(settings)
    # Worker processes build their own app from the environment, embedded URL included.
    os.environ["JOBBROKER_DATABASE_URL"] = url
    asyncio.run(migrate.upgrade(url))
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting normally instead lets the
    # embedded PostgreSQL (stopped at exit) shut down with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "jobbroker.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def migrate_cmd(_args: argparse.Namespace) -> int:
    from jobbroker.store import migrate

    asyncio.run(migrate.upgrade(_database_url(Settings())))
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobbroker", description="An HTTP job broker on PostgreSQL.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the broker (embedded PostgreSQL when no database URL is set)")
    s.add_argument("--host", help="bind address (default JOBBROKER_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default JOBBROKER_PORT or 8080)")
    s.add_argument("--workers", type=int, help="processes (default JOBBROKER_WORKERS or 1)")
    s.set_defaults(run=serve)
    m = sub.add_parser("migrate", help="bring the database schema up to date")
    m.set_defaults(run=migrate_cmd)
    o = sub.add_parser("openapi", help="write the OpenAPI spec")
    o.add_argument("--output", "-o", help="file to write (default stdout)")
    o.set_defaults(run=openapi)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    raise SystemExit(args.run(args))
