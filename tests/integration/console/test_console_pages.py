"""The console in a real browser against a real broker process: every page loads and shows its
data, the key flow, and the operator's actions (pause a queue, replay a DLQ group after its
dry-run count, follow a job's attempts, watch a redrive's progress)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from console_support import ADMIN_KEY, ARTIFACTS, PRODUCE_KEY, READ_KEY, bearer, has_route

expect = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed").expect

pytestmark = pytest.mark.slow

PAGES = {
    "/ui/queues": "emails",
    "/ui/queues/emails/keys": "Keys of emails",
    "/ui/jobs": "send_welcome",
    "/ui/dlq": "550 mailbox unavailable",
    "/ui/redrives": "Redrives",
    "/ui/schedules": "nightly-report",
    "/ui/subscriptions": "CRM sync",
    "/ui/audit": "Audit log",
}


@pytest.mark.parametrize("path", list(PAGES))
async def test_each_page_loads_and_shows_its_data(page: Any, path: str) -> None:
    await page.goto(path)
    await expect(page.locator("#content")).not_to_contain_text("Loading…")
    await expect(page.locator("body")).to_contain_text(PAGES[path])
    await expect(page.locator("#session")).to_contain_text("admin")


async def test_the_key_is_asked_once_per_session_and_never_put_in_a_url(browser: Any, console_broker: Any) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console_broker.url)
    tab = await context.new_page()
    sent: list[tuple[str, str | None]] = []
    tab.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
    await tab.goto("/ui/queues")
    await tab.get_by_role("textbox", name="API key").fill("jbk_not-a-key")
    await tab.get_by_role("button", name="Use this key").click()
    await expect(tab.locator(".key-form")).to_contain_text("not accepted")
    await tab.get_by_role("textbox", name="API key").fill(ADMIN_KEY)
    await tab.get_by_role("textbox", name="API key").press("Enter")
    await expect(tab.get_by_role("table")).to_contain_text("emails")
    await tab.get_by_role("link", name="Jobs", exact=True).click()
    await expect(tab.get_by_role("table")).to_contain_text("send_welcome")
    assert await tab.locator(".key-form").count() == 0
    assert all(ADMIN_KEY not in url for url, _ in sent)
    api_calls = [auth for url, auth in sent if "/v1/" in url]
    assert api_calls and set(api_calls[-3:]) == {f"Bearer {ADMIN_KEY}"}
    assert await context.cookies() == []
    await tab.get_by_role("button", name="Forget key").click()
    await expect(tab.locator(".key-form")).to_be_visible()
    await tab.screenshot(path=str(ARTIFACTS / "key_form.png"))
    await context.close()


async def _tab(browser: Any, console_broker: Any, key: str) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console_broker.url)
    await context.add_init_script(f"sessionStorage.setItem('jobbroker.apiKey', {key!r})")
    return context, await context.new_page()


async def test_a_read_key_gets_read_only_pages(browser: Any, console_broker: Any) -> None:
    context, tab = await _tab(browser, console_broker, READ_KEY)
    await tab.goto("/ui/queues")
    await expect(tab.locator("#session")).to_contain_text("read-only")
    await expect(tab.get_by_role("table")).to_contain_text("emails")
    assert await tab.get_by_role("button", name="Pause").count() == 0
    await tab.goto("/ui/dlq")
    await expect(tab.get_by_role("table").last).to_contain_text("550 mailbox unavailable")
    await expect(tab.locator("#content")).to_contain_text("Read-only")
    assert await tab.get_by_role("button", name=re.compile("Replay|Purge|Redrive")).count() == 0
    await tab.get_by_role("table").last.get_by_role("link").first.click()
    await expect(tab.locator("#content")).to_contain_text("customer_id")
    assert await tab.get_by_role("button", name=re.compile("Replay|Cancel")).count() == 0
    await tab.screenshot(path=str(ARTIFACTS / "read_only_job.png"))
    await context.close()


async def test_a_key_that_may_not_read_is_told_so(browser: Any, console_broker: Any) -> None:
    context, tab = await _tab(browser, console_broker, PRODUCE_KEY)
    await tab.goto("/ui/queues")
    await expect(tab.locator("#session")).to_contain_text("read-only")
    await expect(tab.locator("#content")).to_contain_text("Not allowed")
    await tab.goto("/ui/jobs")
    await expect(tab.locator("#content")).to_contain_text("may not read")
    await context.close()


async def test_pause_and_resume_a_queue_from_the_keyboard(page: Any, console_broker: Any) -> None:
    await page.goto("/ui/queues")
    row = page.get_by_role("row").filter(has_text="reports")
    await row.get_by_role("button", name="Pause").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#flash")).to_contain_text("Queue reports paused")
    await expect(row).to_contain_text("paused")
    async with httpx.AsyncClient(base_url=console_broker.url, headers=bearer(ADMIN_KEY)) as api:
        assert (await api.get("/v1/queues/reports")).json()["paused"] is True
        await row.get_by_role("button", name="Resume").click()
        await expect(page.locator("#flash")).to_contain_text("Queue reports resumed")
        assert (await api.get("/v1/queues/reports")).json()["paused"] is False


async def test_queues_show_throughput_and_times_in_the_browser_zone_with_utc_on_hover(page: Any) -> None:
    await page.goto("/ui/queues")
    emails = page.get_by_role("row").filter(has_text="emails")
    label = await emails.locator("svg.spark-ok").get_attribute("aria-label")
    assert re.fullmatch(r"\d+ succeeded in the last 60 minutes", label) and int(label.split()[0]) > 1000
    await page.goto("/ui/schedules")
    moment = page.locator("time").first
    assert (await moment.get_attribute("title")).endswith(" UTC")
    assert (await moment.get_attribute("datetime")).endswith("Z")


async def test_a_phone_width_screen_gets_one_card_per_row_without_sideways_scrolling(page: Any) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/ui/queues", "/ui/jobs", "/ui/dlq"):
        await page.goto(path)
        await expect(page.locator("#content")).not_to_contain_text("Loading…")
        await expect(page.locator("table").first).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert await page.locator("thead").first.evaluate("e => e.getBoundingClientRect().height") <= 1


async def test_a_job_page_shows_payload_errors_and_its_attempts(page: Any, console_broker: Any) -> None:
    await page.goto("/ui/jobs?queue=billing&state=dead")
    await page.get_by_role("table").get_by_role("link").first.click()
    await expect(page.locator("h1")).to_contain_text("Job ")
    await expect(page.locator("#content")).to_contain_text("customer_id")
    await expect(page.locator("#content")).to_contain_text("gateway timed out after 30 s")
    attempts = page.locator("section").filter(has=page.locator("#h-attempts"))
    if await has_route(console_broker.url, "GET", "/v1/jobs/{id}/attempts"):
        await expect(attempts.locator(".attempt")).to_have_count(1)
        await expect(attempts).to_contain_text("Attempt 1")
        await expect(attempts).to_contain_text("failed")
        await expect(attempts).to_contain_text("worker-billing-1")
    else:
        await expect(attempts).to_contain_text("not available on this broker")
    await page.get_by_role("button", name="Replay job").click()
    await page.get_by_role("dialog").get_by_role("button", name="Replay").click()
    await expect(page.locator("#flash")).to_contain_text("replayed")
    await expect(page.locator(".job-head")).to_contain_text("pending")


async def test_a_subscriptions_secret_is_rotated_and_shown_once(page: Any) -> None:
    await page.goto("/ui/subscriptions")
    await page.get_by_role("button", name="Rotate secret…").click()
    await page.get_by_role("dialog").get_by_role("button", name="Rotate secret").click()
    secret = page.get_by_role("dialog").get_by_label("New signing secret")
    assert (await secret.input_value()).startswith("whsec_")
    await page.get_by_role("dialog").get_by_role("button", name="Done").click()
    await expect(page.locator("table")).not_to_contain_text("whsec_")


async def test_pause_a_schedule(page: Any) -> None:
    await page.goto("/ui/schedules")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.locator("#flash")).to_contain_text("nightly-report paused")
    await expect(page.get_by_role("row").filter(has_text="nightly-report")).to_contain_text("paused")
    await page.get_by_role("button", name="Resume").click()
    await expect(page.locator("#flash")).to_contain_text("nightly-report resumed")


async def _dead(url: str, **filters: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=bearer(ADMIN_KEY)) as api:
        return (await api.get("/v1/dlq", params={"limit": 1000, **filters})).json()["items"]


async def test_replay_a_dlq_group_after_its_dry_run_count(page: Any, console_broker: Any) -> None:
    if not await has_route(console_broker.url, "GET", "/v1/dlq/groups"):
        pytest.skip("this broker has no GET /v1/dlq/groups yet (failure forensics)")
    declined = await _dead(console_broker.url, queue="billing", error="card declined")
    assert declined
    await page.goto("/ui/dlq")
    group = page.get_by_role("row").filter(has_text="CardDeclined")
    await expect(group).to_contain_text(str(len(declined)))
    await group.get_by_role("button", name="Replay…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"Replay {len(declined)} dead jobs?")
    await page.screenshot(path=str(ARTIFACTS / "dlq_dry_run.png"))
    await dialog.get_by_role("button", name="Replay").click()
    await expect(page.locator("#flash")).to_contain_text(f"Replayed {len(declined)} dead jobs")
    assert await _dead(console_broker.url, queue="billing", error="card declined") == []
    await expect(page.get_by_role("row").filter(has_text="CardDeclined")).to_have_count(0)


async def test_the_dlq_says_so_when_the_broker_cannot_group_errors(page: Any, console_broker: Any) -> None:
    if await has_route(console_broker.url, "GET", "/v1/dlq/groups"):
        pytest.skip("this broker groups dead jobs by error")
    await page.goto("/ui/dlq")
    await expect(page.locator("#content")).to_contain_text("not available on this broker")
    await expect(page.get_by_role("table")).to_contain_text("550 mailbox unavailable")


async def test_a_redrive_shows_its_progress_until_done(page: Any, console_broker: Any) -> None:
    if not await has_route(console_broker.url, "POST", "/v1/dlq/redrives"):
        pytest.skip("this broker has no POST /v1/dlq/redrives yet (failure forensics)")
    refused = await _dead(console_broker.url, queue="emails", error="mailbox unavailable")
    assert refused
    await page.goto("/ui/dlq")
    group = page.get_by_role("row").filter(has_text="SMTPRecipientsRefused")
    await group.get_by_role("button", name="Redrive…").click()
    await page.get_by_role("dialog").get_by_label("Jobs per second (optional)").fill("2")
    await page.get_by_role("dialog").get_by_role("button", name="Start redrive").click()
    await page.wait_for_url("**/ui/redrives**")
    row = page.get_by_role("row").filter(has=page.locator("progress"))
    await expect(row.first).to_contain_text(f"/ {len(refused)}")
    await page.screenshot(path=str(ARTIFACTS / "redrive_running.png"))
    await expect(row.first).to_contain_text("done", timeout=20_000)
    await expect(row.first).to_contain_text(f"{len(refused)} / {len(refused)} (100%)")
    assert await _dead(console_broker.url, queue="emails", error="mailbox unavailable") == []


async def test_a_failing_subscription_shows_its_last_error(page: Any) -> None:
    await page.goto("/ui/subscriptions")
    row = page.get_by_role("row").filter(has_text="CRM sync")
    for _ in range(20):
        if "failing" in await row.inner_text():
            break
        await page.wait_for_timeout(500)
        await page.reload()
    await expect(row).to_contain_text("failing")
    await expect(row).to_contain_text("cannot connect to the subscriber")


async def test_a_payloads_numbers_are_shown_exactly_as_sent(page: Any, console_broker: Any) -> None:
    """Past 2**53 a JavaScript number loses digits; the page keeps the literal (where the broker
    itself keeps integers past 64 bits; otherwise only the rest is checked)."""
    payload = {"big": 123456789012345678901234567890, "ratio": 0.1, "text": "<b>not markup</b>"}
    async with httpx.AsyncClient(base_url=console_broker.url, headers=bearer(ADMIN_KEY)) as api:
        answer = await api.post("/v1/queues/exact-q/jobs", json={"type": "t", "payload": payload})
        if answer.status_code != 201:
            payload["big"] = 12345678901234567890  # past 2**53, within 64 bits
            answer = await api.post("/v1/queues/exact-q/jobs", json={"type": "t", "payload": payload})
    assert answer.status_code == 201, answer.text
    await page.goto(f"/ui/jobs/{answer.json()['id']}")
    shown = page.locator("section").filter(has=page.locator("#h-payload")).locator("pre")
    await expect(shown).to_contain_text(f'"big": {payload["big"]}')
    await expect(shown).to_contain_text('"ratio": 0.1')
    await expect(shown).to_contain_text('"text": "<b>not markup</b>"')
    assert await page.locator("#content b").count() == 0


async def test_a_queues_flow_keys_are_listed_and_one_is_paused(page: Any, console_broker: Any) -> None:
    if not await has_route(console_broker.url, "GET", "/v1/queues/{queue}/keys"):
        pytest.skip("this broker has no flow control by key")
    await page.goto("/ui/queues")
    await page.get_by_role("row").filter(has_text="exports").get_by_role("link", name="Keys").click()
    await expect(page.locator("h1")).to_have_text("Keys of exports")
    tenant = page.get_by_role("row").filter(has_text="tenant-a")
    await expect(tenant).to_contain_text("4")
    await expect(page.get_by_role("row").filter(has_text="tenant-b")).to_contain_text("2")
    await tenant.get_by_role("button", name="Pause").click()
    await expect(page.locator("#flash")).to_contain_text("Key tenant-a paused")
    await expect(page.get_by_role("row").filter(has_text="tenant-a")).to_contain_text("paused")
    async with httpx.AsyncClient(base_url=console_broker.url, headers=bearer(ADMIN_KEY)) as api:
        assert (await api.get("/v1/queues/exports/keys/tenant-a")).json()["paused"] is True
