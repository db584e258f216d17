"""`jobbroker keys create` and the guard of `jobbroker serve` against an open public bind."""

from __future__ import annotations

import os
import subprocess
import sys

from jobbroker.keys import KeyRing, Scope


def jobbroker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")}
    return subprocess.run(
        [sys.executable, "-m", "jobbroker", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_keys_create_prints_the_key_then_its_entry() -> None:
    done = jobbroker("keys", "create", "--scope", "consume", "--scope", "produce")
    assert done.returncode == 0, done.stderr
    key, entry = done.stdout.splitlines()
    assert key.startswith("jbk_") and key not in entry
    assert entry.endswith(":produce+consume")
    found = KeyRing.parse(entry).find(key)
    assert found is not None and found.scopes == {Scope.PRODUCE, Scope.CONSUME}
    # The public id (the audit log's actor) is shown too: the start of the hash, never the key.
    assert f"public id, which the audit log and the logs show as its actor, is {found.id}" in done.stderr
    assert len(found.id) == 12 and found.id in entry and key not in done.stderr


def test_keys_create_refuses_an_unknown_scope() -> None:
    assert jobbroker("keys", "create", "--scope", "root").returncode != 0


def test_serve_refuses_a_public_bind_without_keys() -> None:
    done = jobbroker("serve", "--host", "0.0.0.0", JOBBROKER_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2
    assert "--insecure" in done.stderr and "JOBBROKER_API_KEYS" in done.stderr


def test_serve_refuses_malformed_key_entries() -> None:
    done = jobbroker("serve", JOBBROKER_API_KEYS="jbk_a-raw-key", JOBBROKER_DATABASE_URL="postgresql://x@127.0.0.1:1/x")
    assert done.returncode == 2
    assert "sha256:<64 lowercase hex>" in done.stderr
    assert "jbk_a-raw-key" not in done.stdout + done.stderr
