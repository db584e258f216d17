"""/metrics is open by default (for the usual in-cluster scrape) and behind a key when asked."""

from __future__ import annotations

import httpx
from auth_support import KEYS, bearer, secured_settings

from jobbroker.app import create_app


async def test_metrics_stay_open_by_default_with_keys_configured(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/metrics")).status_code == 200


async def test_protected_metrics_need_the_metrics_or_admin_scope(database_url: str) -> None:
    app = create_app(secured_settings(database_url, metrics={"require_auth": True}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://broker") as c,
    ):
        missing = await c.get("/metrics")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert (await c.get("/metrics", headers=bearer("jbk_wrong"))).status_code == 401
        for name, key in KEYS.items():
            status = (await c.get("/metrics", headers=bearer(key))).status_code
            assert status == (200 if name in ("metrics", "admin") else 403), name
