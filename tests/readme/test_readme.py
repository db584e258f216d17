"""The README runs as written: its marked blocks (`<!-- readme-test: NAME [key=SCOPE] -->` before a
fence) run against real `jobbroker serve` processes, with the README's address replaced by theirs.

- `tour`: the curl blocks, in order, as one bash script against a broker without keys.
- `python`: each SDK snippet with `.venv/bin/python`, holding a key of the scope the README names,
  against a broker with keys; a key of too small a scope fails, as the README says.
- `worker`: the worker snippet saved as app.py and run as `.venv/bin/jobbroker-worker app:worker`.
- `node`: the Node example's command, which must handle the README's own jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import jobbroker_client as jb
from jobbroker import keys
from support import BrokerProcess, eventually

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
ADDRESS = "http://127.0.0.1:8080"
BLOCK = re.compile(
    r"<!-- readme-test: (?P<name>\w+)(?: key=(?P<key>\w+))? -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S
)
BIN = Path(sys.executable).parent


def blocks(name: str) -> list[re.Match[str]]:
    found = [m for m in BLOCK.finditer(README) if m["name"] == name]
    assert found, f"the README has no block marked readme-test: {name}"
    return found


def json_answers(text: str) -> list[Any]:
    """The JSON documents curl printed, one after another (curl adds no newline between them)."""
    decoder, answers, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return answers
        value, at = decoder.raw_decode(text, at)
        answers.append(value)


def is_problem(answer: Any) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get("status"), int) and answer["status"] >= 400


@pytest.fixture(scope="module")
async def open_broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    broker = BrokerProcess(await fresh_database())
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


SCOPES = ("produce", "consume", "admin")


@pytest.fixture(scope="module")
def api_keys() -> dict[str, str]:
    return {scope: keys.generate() for scope in SCOPES}


@pytest.fixture(scope="module")
async def keyed_broker(
    fresh_database: Callable[[], Awaitable[str]], api_keys: dict[str, str]
) -> AsyncIterator[BrokerProcess]:
    entries = ",".join(keys.entry(key, [keys.Scope(scope)]) for scope, key in api_keys.items())
    broker = BrokerProcess(await fresh_database(), JOBBROKER_API_KEYS=entries)
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


def run(argv: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBROKER_", "OTEL_"))}
    return subprocess.run(argv, cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120)


def test_the_curl_tour_runs_as_written(open_broker: BrokerProcess, tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (the tour picks ids out of answers with it)")
    script = "\n".join(m["body"] for m in blocks("tour")).replace(ADDRESS, open_broker.url)
    done = run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    answers = json_answers(done.stdout)
    assert [a for a in answers if is_problem(a)] == [], "an answer of the tour was an error"
    # The failing job was replayed from the DLQ in bulk, then purged: each answered its one job.
    assert answers.count({"count": 1}) == 2, answers
    patched = [a for a in answers if isinstance(a, dict) and a.get("name") == "emails" and "paused" in a]
    assert [a["paused"] for a in patched[-2:]] == [True, False], "the queue was paused, then resumed"


async def test_the_sdk_snippets_run_with_the_scopes_they_name(
    keyed_broker: BrokerProcess, api_keys: dict[str, str], tmp_path: Path
) -> None:
    snippets = blocks("python")
    assert [m["key"] for m in snippets] == ["produce", "admin"]
    for snippet in snippets:
        code = snippet["body"].replace(ADDRESS, keyed_broker.url)
        done = run([str(BIN / "python"), "-c", code], cwd=tmp_path, env={"JOBBROKER_API_KEY": api_keys[snippet["key"]]})
        assert done.returncode == 0, f"{snippet['key']} snippet:\n{done.stdout}{done.stderr}"
    # The operator's snippet needs more than the producer's key.
    operator = snippets[1]["body"].replace(ADDRESS, keyed_broker.url)
    refused = run([str(BIN / "python"), "-c", operator], cwd=tmp_path, env={"JOBBROKER_API_KEY": api_keys["produce"]})
    assert refused.returncode != 0 and "Forbidden" in refused.stderr


async def test_the_worker_snippet_runs_under_jobbroker_worker_and_stops_promptly(
    keyed_broker: BrokerProcess, api_keys: dict[str, str], tmp_path: Path
) -> None:
    [snippet] = blocks("worker")
    assert snippet["key"] == "consume"
    (tmp_path / "app.py").write_text(snippet["body"].replace(ADDRESS, keyed_broker.url))
    async with jb.AsyncClient(keyed_broker.url, api_key=api_keys["admin"]) as admin:
        good = await admin.enqueue("emails", "send-email", {"to": "grace@example.com"})
        bad = await admin.enqueue("emails", "send-email", {"to": "nobody"})
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBROKER_", "OTEL_"))}
        command = [str(BIN / "jobbroker-worker"), "app:worker"]  # as the README says
        worker = subprocess.Popen(  # noqa: ASYNC220 - the test waits on it in a thread
            command,
            cwd=tmp_path,
            env={**clean, "JOBBROKER_API_KEY": api_keys["consume"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:

            async def settled() -> bool:
                states = [(await admin.get_job(j.id)).state for j in (good, bad)]
                return states == [jb.JobState.SUCCEEDED, jb.JobState.DEAD]

            await eventually(settled, within_s=30)
            assert (await admin.get_job(good.id)).result == {"sent": True}
            # SIGTERM while the worker long-polls: it ends at once, not when the poll would.
            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(worker.communicate, timeout=30)
            assert worker.returncode == 0, output.decode()
            assert time.monotonic() - started < 3
            assert "sending to grace@example.com" in output.decode()
        finally:
            worker.kill()


async def test_the_node_example_handles_the_readmes_jobs(keyed_broker: BrokerProcess, api_keys: dict[str, str]) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    [command] = blocks("node")
    queue = f"emails-{uuid.uuid4().hex[:6]}"
    line = (
        command["body"].replace(ADDRESS, keyed_broker.url).replace("JOBBROKER_QUEUE=emails", f"JOBBROKER_QUEUE={queue}")
    )
    async with jb.AsyncClient(keyed_broker.url, api_key=api_keys["admin"]) as admin:
        good = await admin.enqueue(queue, "send-email", {"to": "ada@example.com"})
        bad = await admin.enqueue(queue, "send-email", {"to": "nobody"}, max_attempts=3)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("JOBBROKER_", "OTEL_"))}
        node = subprocess.Popen(  # noqa: ASYNC220 - the test waits on it in a thread
            ["bash", "-c", line],
            cwd=REPO,
            env={**clean, "JOBBROKER_API_KEY": api_keys["consume"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            async def settled() -> bool:
                states = [(await admin.get_job(j.id)).state for j in (good, bad)]
                return states == [jb.JobState.SUCCEEDED, jb.JobState.DEAD]

            await eventually(settled, within_s=30)
            dead = await admin.get_job(bad.id)
            assert dead.attempts == 1 and dead.errors[-1].error.type == "PermanentError"
        finally:
            os.killpg(node.pid, signal.SIGTERM)  # the shell's group: node itself gets it
            output, _ = await asyncio.to_thread(node.communicate, timeout=30)
            node.kill()
        assert node.returncode == 0, output.decode()
