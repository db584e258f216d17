"""The API tests' fixture: small steps of the worker protocol over the in-process client."""

from __future__ import annotations

import httpx
import pytest

from support import Api


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
