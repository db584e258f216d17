"""A refused setting is described in one line by its environment name, without repeating a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobbroker.settings import ServerSettings, Settings, describe_error


def refusal(**overrides: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Settings(**overrides)
    return [describe_error(e) for e in raised.value.errors()]


def test_flat_and_nested_settings_are_named_as_in_the_environment() -> None:
    [port] = refusal(port="notaport")
    assert port.startswith("JOBBROKER_PORT: ") and "'notaport'" in port
    [nested] = refusal(server={"header_timeout_s": 0})
    assert nested.startswith("JOBBROKER_SERVER__HEADER_TIMEOUT_S: ")
    [level] = refusal(log_level="verbose")
    assert level.startswith("JOBBROKER_LOG_LEVEL: ") and "'info'" in level
    [whole] = refusal(db={"pool_min_size": 10, "pool_max_size": 2})
    assert whole.startswith("the settings: ")


@pytest.mark.parametrize("url", ["mysql://root:s3cretpw@db/app", "sqlite:///s3cretpw.db", "s3cretpw"])
def test_a_database_url_that_is_not_postgres_is_refused_without_repeating_it(url: str) -> None:
    [line] = refusal(database_url=url)
    assert line.startswith("JOBBROKER_DATABASE_URL: ") and "s3cretpw" not in line


@pytest.mark.parametrize(
    "url", ["postgresql://u:p@h/d", "postgres://h/d", "postgresql+asyncpg://h/d", "POSTGRESQL://h/d"]
)
def test_postgres_urls_are_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url is not None


def test_log_levels_are_case_insensitive() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"


def test_connection_defaults_leave_long_polls_room() -> None:
    server = ServerSettings()
    assert server.keep_alive_s > 5  # longer than httpx's pool expiry: the client closes first
    assert server.header_timeout_s <= 30 and server.body_timeout_s <= 120
    assert server.max_connections >= 1000
