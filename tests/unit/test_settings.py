"""Settings: environment names, nested groups, and refusal of absurd values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobbroker.settings import Settings


def test_defaults_bind_loopback_8080_without_a_database_url() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.database_url) == ("127.0.0.1", 8080, None)
    assert settings.jobs.max_payload_bytes == 256 * 1024


def test_environment_sets_flat_and_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBBROKER_DATABASE_URL", "postgresql://u:hunter2pw@db/x")
    monkeypatch.setenv("JOBBROKER_PORT", "9000")
    monkeypatch.setenv("JOBBROKER_JOBS__MAX_ATTEMPTS", "12")
    monkeypatch.setenv("JOBBROKER_LEASE__REAPER_INTERVAL_S", "0.25")
    settings = Settings()
    assert settings.port == 9000 and settings.jobs.max_attempts == 12 and settings.lease.reaper_interval_s == 0.25
    assert "hunter2pw" not in repr(settings)


@pytest.mark.parametrize(
    "overrides",
    [
        {"port": 70000},
        {"jobs": {"max_attempts": 0}},
        {"jobs": {"backoff_initial_s": 10, "backoff_max_s": 1}},
        {"db": {"pool_min_size": 10, "pool_max_size": 2}},
        {"lease": {"reaper_interval_s": 0}},
        {"log_format": "xml"},
    ],
)
def test_absurd_values_are_refused_at_startup(overrides: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)


def test_the_schema_defaults_to_jobbroker_and_comes_from_jobbroker_db__schema(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().db.schema_name == "jobbroker"
    monkeypatch.setenv("JOBBROKER_DB__SCHEMA", "broker_jobs")
    assert Settings().db.schema_name == "broker_jobs"


@pytest.mark.parametrize(
    "schema", ["", "Jobs", "jobs-x", "1jobs", "jobs; DROP TABLE job", 'a"b', "pg_jobs", "information_schema", "a" * 64]
)
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(schema: str) -> None:
    with pytest.raises(ValidationError, match="schema"):
        Settings(db={"schema": schema})


def test_serve_starts_one_process_per_usable_cpu_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os

    from jobbroker import settings as settings_module

    monkeypatch.setattr(settings_module, "CGROUP_CPU_MAX", tmp_path / "none")
    assert Settings().workers == "auto"
    assert Settings().serve_workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("JOBBROKER_WORKERS", "3")
    assert Settings().serve_workers() == 3
    monkeypatch.setenv("JOBBROKER_WORKERS", "0")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(("cpu_max", "limit"), [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1)])
def test_a_container_cpu_limit_caps_the_automatic_process_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path, cpu_max: str, limit: int | None
) -> None:
    import os

    from jobbroker import settings as settings_module

    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(settings_module, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    cpus = len(os.sched_getaffinity(0))
    assert Settings().serve_workers() == (cpus if limit is None else min(cpus, limit))


def test_job_event_lines_are_off_by_default_and_follow_a_debug_level() -> None:
    assert Settings().job_events_logged() is False
    assert Settings(log_level="debug").job_events_logged() is True
    assert Settings(log_job_events=True).job_events_logged() is True
    assert Settings(log_level="debug", log_job_events=False).job_events_logged() is False
