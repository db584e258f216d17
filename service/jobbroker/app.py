"""The application factory: settings in, a FastAPI app out; background loops run in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jobbroker import __version__, metrics, telemetry
from jobbroker.api import auth, docs, problems, spec
from jobbroker.api.edge import Edge
from jobbroker.api.fastpath import FastPath
from jobbroker.api.limits import BodyLimits
from jobbroker.api.routes import (
    audit,
    dlq,
    health,
    identity,
    jobs,
    leases,
    queues,
    redrives,
    schedules,
    subscriptions,
)
from jobbroker.api.routes import metrics as metrics_routes
from jobbroker.api.spec import operation_id
from jobbroker.broker import Broker
from jobbroker.console import install as install_console
from jobbroker.keys import KeyRing
from jobbroker.maintenance.loops import cleaner, cron_ticker, every, reaper, redriver, vacuumer
from jobbroker.push.dispatcher import Dispatcher
from jobbroker.settings import Settings
from jobbroker.store import migrate
from jobbroker.store.db import Database

DESCRIPTION = """\
An HTTP job broker on PostgreSQL. Producers **enqueue** jobs; workers **lease** them with a
visibility timeout and then **ack** or **nack**; failures retry with exponential backoff and jitter
and, out of attempts, land in the **dead-letter queue**, where operators inspect, **replay** or
**purge** them (see the *dlq* routes). Every error is an RFC 9457 `application/problem+json` with a
stable `code`.
"""
TAGS = [
    {"name": "jobs", "description": "Enqueue jobs, look them up, cancel and replay them."},
    {"name": "leases", "description": "The worker protocol: lease, heartbeat, ack, nack."},
    {"name": "dlq", "description": "Dead jobs: inspect, group by fingerprint, export, replay, purge, redrive."},
    {"name": "queues", "description": "Queue statistics and settings."},
    {"name": "subscriptions", "description": "Push mode: jobs POSTed to subscriber URLs as signed webhooks."},
    {"name": "schedules", "description": "Recurring jobs: a cron expression enqueues a job each time it fires."},
    {"name": "audit", "description": "Who did what: every admin action."},
    {"name": "auth", "description": "The calling API key's id and scopes."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    api_keys = settings.api_keys.get_secret_value() if settings.api_keys is not None else None
    keys = KeyRing.parse(api_keys, settings.api_keys_file)
    metrics.configure(settings.metrics)
    if settings.otel_exporter_otlp_endpoint:
        telemetry.enable(settings.otel_exporter_otlp_endpoint)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            raise RuntimeError("JOBBROKER_DATABASE_URL is not set (`jobbroker serve` starts an embedded one)")
        url = settings.database_url.get_secret_value()
        auth.warn_if_open(keys)
        if settings.db.migrate_on_start:
            await migrate.upgrade_for(url, settings)
        broker = Broker(settings, Database(url, settings.db))
        await broker.start()
        app.state.broker = broker
        loops = [
            asyncio.create_task(every(settings.lease.reaper_interval_s, reaper(broker.jobs, broker.expired), "reaper")),
            asyncio.create_task(
                every(
                    settings.maintenance.cleaner_interval_s,
                    cleaner(broker.jobs, settings.maintenance.cleaner_batch),
                    "cleaner",
                )
            ),
        ]
        loops.append(
            asyncio.create_task(every(settings.maintenance.cron_interval_s, cron_ticker(broker), "cron ticker"))
        )
        loops.append(asyncio.create_task(every(settings.maintenance.redrive_interval_s, redriver(broker), "redrive")))
        if settings.maintenance.vacuum:
            step = vacuumer(broker.jobs, settings.maintenance.vacuum_dead_rows)
            loops.append(asyncio.create_task(every(settings.maintenance.vacuum_interval_s, step, "vacuum")))
        dispatcher = Dispatcher(broker, settings.push) if settings.push.enabled else None
        if dispatcher is not None:
            await dispatcher.start()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await broker.stop()

    app = FastAPI(
        title="jobbroker",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,
        redoc_url=None,
        **telemetry.fastapi_options(FastAPI),
    )
    app.state.settings = settings
    problems.install(app)
    auth.install(app, keys)
    for module in (
        jobs,
        leases,
        dlq,
        redrives,
        queues,
        subscriptions,
        schedules,
        audit,
        identity,
        health,
        metrics_routes,
    ):
        app.include_router(module.router)
    docs.install(app)
    open_paths = auth.open_paths(metrics_open=not settings.metrics.require_auth)
    spec.install(app, open_paths)
    install_console(app)
    # The edge (request id, authentication, body limit, metrics) first; the hot routes' fast path
    # last, just before FastAPI's routing (middleware added later runs earlier).
    app.add_middleware(FastPath)
    app.add_middleware(
        Edge,
        keys=keys,
        open_paths=open_paths,
        body_limits=BodyLimits.from_settings(settings),
        access_log=settings.log_access,
    )
    if telemetry.enabled():
        app.add_middleware(telemetry.ServerSpans)
    return app
