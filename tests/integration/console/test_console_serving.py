"""The console's pages and assets are served by the broker, open (they hold no data), and with
headers that keep the page's scripts to the broker's own; anything else under /ui is a 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobbroker.console import ROUTES

pytestmark = pytest.mark.slow


async def test_every_page_is_served_without_a_key_with_a_strict_policy(console_broker: Any) -> None:
    async with httpx.AsyncClient(base_url=console_broker.url) as c:
        home = await c.get("/ui")
        assert home.status_code == 307 and home.headers["location"] == "/ui/queues"
        for route in ROUTES:
            path = route.replace("{queue}", "emails").replace("{id}", "7")
            page = await c.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
            assert page.headers["referrer-policy"] == "no-referrer"
            assert '<script type="module" src="/ui/assets/js/app.js">' in page.text
            assert "jbk_" not in page.text
        for asset in ("/ui/assets/js/app.js", "/ui/assets/js/pages/dlq.js", "/ui/assets/console.css"):
            answer = await c.get(asset)
            assert answer.status_code == 200 and answer.content, asset
        assert (await c.get("/ui/nothing-here")).status_code == 404
        assert (await c.get("/v1/queues")).status_code == 401


async def test_no_page_or_asset_loads_anything_from_elsewhere(console_broker: Any) -> None:
    async with httpx.AsyncClient(base_url=console_broker.url) as c:
        texts = [(await c.get(p)).text for p in ("/ui/queues", "/ui/assets/console.css", "/ui/assets/js/app.js")]
    for text in texts:
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
