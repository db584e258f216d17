"""The bench measures the broker as `make serve` starts it: the same command, no options, no settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_bench_starts_the_broker_as_make_serve_does(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = pytest.importorskip("bench.harness", reason="the bench extra is not installed")
    recipe = re.search(r"^serve:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    assert recipe.group(1) == "$(BIN)/jobbroker serve"
    monkeypatch.setenv("JOBBROKER_WORKERS", "7")
    monkeypatch.setenv("JOBBROKER_LOG_LEVEL", "warning")
    broker = harness.BrokerServer("postgresql://u@127.0.0.1:1/db")
    assert broker.command[1:] == ["serve"]
    assert Path(broker.command[0]).name == "jobbroker"
    settings = {k for k in broker.env if k.startswith("JOBBROKER_")}
    assert settings == {"JOBBROKER_DATABASE_URL", "JOBBROKER_PORT"}
