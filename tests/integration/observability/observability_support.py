"""An app whose queue gauges are read afresh on every scrape, and reading the exposition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobbroker.app import create_app
from jobbroker.settings import Settings


@pytest.fixture(scope="module")
async def observed_app(database_url: str) -> AsyncIterator[Any]:
    settings = Settings(database_url=database_url, lease={"reaper_interval_s": 0.1}, metrics={"refresh_s": 0})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def observed(observed_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=observed_app), base_url="http://broker") as c:
        yield c


class Scrape:
    """One parsed exposition: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return {lbl: v for (n, lbl), v in self.samples.items() if n == name and wanted <= lbl}


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
