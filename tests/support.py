"""Helpers shared by the tests: a real broker process and waiting for background effects."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]


def decoded(value: Any) -> Any:
    """A value the store answers as the database's JSON text (orjson.Fragment), as a client reads it."""
    return orjson.loads(orjson.dumps(value))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """A `jobbroker serve` subprocess: start, SIGKILL, start again on the same database."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="jobbroker-serve-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> None:
        env = {
            **os.environ,
            "JOBBROKER_DATABASE_URL": self.database_url,
            "JOBBROKER_PORT": str(self.port),
            "JOBBROKER_LEASE__REAPER_INTERVAL_S": "0.1",
            # One process (serve's default is one per CPU): a SIGKILL then takes the whole broker down.
            "JOBBROKER_WORKERS": "1",
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobbroker", "serve"], env=env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()  # never leave a half-started server (or its log file) behind
        raise RuntimeError(f"broker did not become ready: {self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0, every_s: float = 0.05) -> None:
    """Wait for a background effect (reaper, another process) instead of sleeping a fixed time."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s")
        await asyncio.sleep(every_s)


class TcpProxy:
    """A TCP relay to PostgreSQL whose connections a test can cut and refuse, like a database restart."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.port = free_port()
        self.accepting = True
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _connect_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_host.startswith("/"):
            return await asyncio.open_unix_connection(f"{self.target_host}/.s.PGSQL.{self.target_port}")
        return await asyncio.open_connection(self.target_host, self.target_port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.close()
            return
        up_reader, up_writer = await self._connect_target()
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.accepting = False
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self.accepting = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client

    async def enqueue(self, queue: str = "q", type: str = "t", **body: Any) -> dict[str, Any]:
        response = await self.c.post(f"/v1/queues/{queue}/jobs", json={"type": type, **body})
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def lease(self, queue: str = "q", max_jobs: int = 1, **body: Any) -> list[dict[str, Any]]:
        response = await self.c.post(
            f"/v1/queues/{queue}/leases", json={"worker_id": "w1", "max_jobs": max_jobs, **body}
        )
        assert response.status_code == 200, response.text
        return response.json()["jobs"]

    async def lease_one(self, queue: str = "q", **body: Any) -> dict[str, Any]:
        [job] = await self.lease(queue, **body)
        return job

    async def ack(self, job: dict[str, Any], **body: Any) -> httpx.Response:
        return await self.c.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"], **body})

    async def nack(self, job: dict[str, Any], message: str = "boom", **body: Any) -> httpx.Response:
        return await self.c.post(
            f"/v1/jobs/{job['id']}/nack", json={"lease_id": job["lease_id"], "error": {"message": message}, **body}
        )

    async def get(self, job_id: str) -> dict[str, Any]:
        response = await self.c.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def dead_job(self, queue: str = "q", message: str = "fatal", **enqueue: Any) -> dict[str, Any]:
        await self.enqueue(queue, **enqueue)
        job = await self.lease_one(queue)
        response = await self.nack(job, message, retryable=False)
        assert response.json()["state"] == "dead"
        return response.json()
