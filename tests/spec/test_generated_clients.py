"""Tools run on the committed spec (openapi/openapi.json): a TypeScript client generated with
@hey-api/openapi-ts types a failed call's error as a Problem (tsc checks it), and redocly lints it.

The npm packages come from tests/ts/package-lock.json into tests/ts/node_modules (git-ignored),
installed once (`npm ci`, offline from npm's cache when it can); without Node or the packages the
tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tests" / "ts"
SPEC = ROOT / "openapi" / "openapi.json"
BIN = TOOLS / "node_modules" / ".bin"


def run(*command: str | Path, cwd: Path = TOOLS, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tools() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed")
    if not (BIN / "openapi-ts").exists() or not (BIN / "tsc").exists():
        installed = run("npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", timeout=300)
        if installed.returncode != 0:
            pytest.skip(f"npm ci failed (offline, no cache?): {installed.stderr[-500:]}")
    return BIN


@pytest.fixture(scope="module")
def generated(tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ts")
    made = run(tools / "openapi-ts", "-i", SPEC, "-o", work / "client")
    assert made.returncode == 0, made.stdout + made.stderr
    shutil.copy(TOOLS / "tsconfig.json", work / "tsconfig.json")
    return work


def typecheck(work: Path, source: str) -> subprocess.CompletedProcess[str]:
    (work / "check.ts").write_text(source)
    return run(BIN / "tsc", "-p", work / "tsconfig.json", cwd=work)


def test_a_failed_ack_job_call_exposes_the_problem_code_without_a_cast(generated: Path) -> None:
    checked = typecheck(generated, (TOOLS / "check.ts").read_text())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_type_check_has_teeth_a_field_no_problem_has_fails(generated: Path) -> None:
    wrong = (TOOLS / "check.ts").read_text().replace("answer.error.code;", "answer.error.errorCode;")
    checked = typecheck(generated, wrong)
    assert checked.returncode != 0 and "errorCode" in checked.stdout


def test_redocly_lint_passes_with_no_warnings(tools: Path) -> None:
    linted = run(tools / "redocly", "lint", SPEC, "--format", "summary")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    output = linted.stdout + linted.stderr
    assert re.search(r"(?m)^(warning|error)\s", output) is None and "is valid" in output, output
