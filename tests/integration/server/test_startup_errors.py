"""`jobbroker serve` refuses bad settings, an unusable database and an unbindable address with one
line on stderr and exit code 2: no traceback, no secret, and a taken port found before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from support import REPO, free_port


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")}
    environment |= {"JOBBROKER_DATA_DIR": str(tmp_path / "data"), "JOBBROKER_PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "jobbroker", "serve", *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobbroker: "), result.stderr
    for name in names:
        assert name in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"JOBBROKER_PORT": "notaport"}, "JOBBROKER_PORT"),
        ({"JOBBROKER_PORT": "70000"}, "JOBBROKER_PORT"),
        ({"JOBBROKER_LOG_LEVEL": "verbose"}, "JOBBROKER_LOG_LEVEL"),
        ({"JOBBROKER_LOG_FORMAT": "xml"}, "JOBBROKER_LOG_FORMAT"),
        ({"JOBBROKER_DATABASE_URL": "mysql://root:s3cretpw@db/app"}, "JOBBROKER_DATABASE_URL"),
        ({"JOBBROKER_SERVER__MAX_CONNECTIONS": "0"}, "JOBBROKER_SERVER__MAX_CONNECTIONS"),
        ({"JOBBROKER_LEASE__MAX_WAIT_S": "soon"}, "JOBBROKER_LEASE__MAX_WAIT_S"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], name: str) -> None:
    line = assert_refused(serve(tmp_path, **env), name)
    assert "s3cretpw" not in line
    assert not (tmp_path / "data").exists(), "nothing may start before the settings are checked"


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://jobbroker:s3cretpw@127.0.0.1:{free_port()}/jobbroker"
    line = assert_refused(serve(tmp_path, JOBBROKER_DATABASE_URL=url), "JOBBROKER_DATABASE_URL")
    assert "s3cretpw" not in line


async def test_a_missing_database_is_one_line(tmp_path: Path, fresh_database: Callable[[], Awaitable[str]]) -> None:
    parts = urlsplit(await fresh_database())
    missing = urlunsplit(parts._replace(path="/jobbroker_no_such_database"))
    line = assert_refused(serve(tmp_path, JOBBROKER_DATABASE_URL=missing), "JOBBROKER_DATABASE_URL")
    assert "jobbroker_no_such_database" in line and "does not exist" in line


@pytest.mark.parametrize("host", ["no-such-host.invalid", "10.254.254.254"])
def test_a_host_that_cannot_be_bound_is_one_line(tmp_path: Path, host: str) -> None:
    assert_refused(serve(tmp_path, "--insecure", JOBBROKER_HOST=host), "JOBBROKER_HOST", host)


def test_a_taken_port_is_found_before_anything_starts_and_names_jobbroker_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No database URL: the embedded PostgreSQL would start (and migrations run) before a late bind.
        line = assert_refused(serve(tmp_path, JOBBROKER_PORT=str(port)), "JOBBROKER_PORT", str(port))
    assert "in use" in line
    assert not (tmp_path / "data").exists(), "the embedded PostgreSQL started before the port was checked"
