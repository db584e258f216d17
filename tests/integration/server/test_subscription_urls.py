"""Subscriber URLs against a real server: any scheme case is accepted as that scheme and stored lower
case, inner addresses in any IPv6 form and port 0 are refused with a problem, nothing answers 500,
and no signing secret reaches the server's log or an error answer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from jobbroker.core.errors import InvalidInput
from jobbroker.core.push import NewSubscription
from support import BrokerProcess

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def api(broker_url: str) -> httpx.Client:
    with httpx.Client(base_url=broker_url, timeout=10) as client:
        yield client


def queue() -> str:
    return f"sub-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("scheme", ["HTTP", "Http", "hTtP", "HTTPS", "Https"])
def test_a_scheme_in_any_case_is_that_scheme(api: httpx.Client, broker_process: BrokerProcess, scheme: str) -> None:
    created = api.post(
        "/v1/subscriptions", json={"queue": queue(), "url": f"{scheme}://127.0.0.1:9/hook", "secret": SECRET}
    )
    assert created.status_code == 201, created.text
    assert created.json()["url"] == f"{scheme.lower()}://127.0.0.1:9/hook"
    changed = api.patch(f"/v1/subscriptions/{created.json()['id']}", json={"url": f"{scheme}://127.0.0.1:10/x"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == f"{scheme.lower()}://127.0.0.1:10/x"
    assert SECRET not in broker_process.output() and "Failing row" not in broker_process.output()


@pytest.mark.parametrize(
    "url",
    [
        "http://[::10.0.0.1]:8080/",
        "http://[::ffff:0:a00:1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[2002:a00:1::1]/",
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
        "http://127.0.0.1:0/hook",
        "HTTP://[::ffff:10.0.0.1]/",
        "ftp://127.0.0.1/",
        "FTP://127.0.0.1/",
        "http:///nohost",
        "http://127.0.0.1:99999/",
    ],
)
def test_refused_urls_are_problems_on_create_and_change(
    api: httpx.Client, broker_process: BrokerProcess, url: str
) -> None:
    refused = api.post("/v1/subscriptions", json={"queue": queue(), "url": url, "secret": SECRET})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] in ("url_not_allowed", "validation_error")
    assert SECRET not in refused.text
    created = api.post("/v1/subscriptions", json={"queue": queue(), "url": "http://127.0.0.1:9/", "secret": SECRET})
    changed = api.patch(f"/v1/subscriptions/{created.json()['id']}", json={"url": url})
    assert changed.status_code == 422, changed.text
    assert SECRET not in broker_process.output()


async def test_a_row_the_database_refuses_is_a_problem_without_the_row(app: Any) -> None:
    """Past the API's checks (an older client, a direct call), a constraint failure names the
    constraint, not the row the driver quotes with its secret."""
    store = app.state.broker.subscriptions
    bad = NewSubscription(queue=queue(), url="HTTP://127.0.0.1:9/", secret=SECRET)
    with pytest.raises(InvalidInput) as raised:
        await store.create(bad)
    assert "subscription_url_check" in raised.value.detail and SECRET not in raised.value.detail
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
