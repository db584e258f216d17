"""clients/node/jobbroker.d.ts type-checks with tsc --strict, and a consumer written as the README's
Node example is typed by it (a wrong use fails). Needs Node and the tools venv's TypeScript."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_CLIENT = REPO / "clients" / "node"
TSC = REPO / ".venv-tools" / "node" / "node_modules" / ".bin" / "tsc"

CONSUMER = """
import { Client, PermanentError, Retry, Worker, type JobContext, type WorkerStats } from "jobbroker-worker";

const worker = new Worker({ url: "http://127.0.0.1:8080", queue: "emails", concurrency: 4, apiKey: undefined });
worker.handle<{ to: string }>("send-email", async (job: JobContext<{ to: string }>) => {
  job.throwIfCancelled();
  job.setProgress({ step: 1 });
  if (job.attempt > 3) throw new PermanentError(`giving up on ${job.payload.to}`);
  if (job.signal.aborted) throw new Retry(5);
  return { sent: job.payload.to, trace: job.trace_context?.traceparent ?? null };
});
const client = new Client({ url: "http://127.0.0.1:8080" });
const enqueued = await client.enqueue("emails", "send-email", { to: "ada@example.com" }, { idempotency_key: "k" });
const duplicate: boolean = enqueued.duplicate;
const stats: WorkerStats = await worker.run({ installSignalHandlers: true });
console.log(duplicate, stats.succeeded);
"""
WRONG = """
import { Worker } from "jobbroker-worker";
new Worker({ queue: "emails" }).handle(42, () => null);
"""


def tsc() -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    found = TSC if TSC.exists() else shutil.which("tsc")
    if found is None:
        pytest.skip("tsc is not installed (make tools installs it where npm exists)")
    return str(found)


def check(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "node_modules").mkdir(exist_ok=True)
    link = tmp_path / "node_modules" / "jobbroker-worker"
    if not link.exists():
        link.symlink_to(NODE_CLIENT, target_is_directory=True)
    (tmp_path / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    (tmp_path / "consumer.ts").write_text(source)
    options = {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "types": [],
        "lib": ["es2022", "dom"],
        "skipLibCheck": False,
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "files": ["consumer.ts"]}))
    return subprocess.run([tsc(), "-p", str(tmp_path)], capture_output=True, text=True, timeout=120)


def test_the_declarations_type_a_worker_and_a_producer(tmp_path: Path) -> None:
    done = check(tmp_path, CONSUMER)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_use_is_a_type_error(tmp_path: Path) -> None:
    done = check(tmp_path, WRONG)
    assert done.returncode != 0 and "consumer.ts" in done.stdout
