"""schemathesis against a real `jobbroker serve`: every phase (examples, coverage, fuzzing, stateful)
with the `not_a_server_error` and `response_schema_conformance` checks, and zero failures.

The same command, for a broker you run yourself, is in the README ("Checking the API").
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import BrokerProcess

ST = Path(sys.executable).with_name("st")
# Bounded so the run takes about two minutes on an idle 2-core machine (longer when it is shared);
# the coverage phase is not bounded by it (it covers every operation's schema).
MAX_EXAMPLES = "5"


@pytest.mark.timeout(660)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_spec(
    own_broker: BrokerProcess, tmp_path: Path
) -> None:
    st = ST if ST.exists() else shutil.which("st")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    command = [
        str(st),
        "run",
        f"{own_broker.url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        MAX_EXAMPLES,
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
    ]
    # In a temporary directory: schemathesis keeps its state in ./.schemathesis.
    ran = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = ran.stdout[-6000:] + ran.stderr[-2000:]
    assert ran.returncode == 0, report
    summary = ran.stdout.rpartition("SUMMARY")[2]
    assert re.search(r"\d+ generated, \d+ passed", summary) and "failed" not in summary, report
