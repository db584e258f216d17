"""The subscriber URL policy judges every IPv6 form that carries an IPv4 address by that address,
refuses port 0, reads the scheme case-insensitively, and is applied again to every delivery."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from jobbroker.api.subscription_schemas import SubscriptionCreate, SubscriptionPatch
from jobbroker.core.errors import UrlNotAllowed
from jobbroker.core.push import PushTarget
from jobbroker.push import delivery
from jobbroker.push.ssrf import AddressRefused, NetworkPolicy, guarded_client
from jobbroker.settings import PushSettings

DEFAULT = NetworkPolicy.from_settings(PushSettings())
LIMITS = delivery.Limits(max_result_bytes=100, error_body_chars=10, max_retry_after_s=60)
# Private, link-local, metadata and unspecified IPv4 addresses, each carried by every IPv6 form.
INNER = ["10.0.0.1", "192.168.1.1", "169.254.169.254", "172.16.0.1", "100.64.0.1", "0.0.0.0"]
PUBLIC = "93.184.216.34"


def embeddings(v4: str) -> dict[str, str]:
    n = int(ipaddress.IPv4Address(v4))
    hi, lo = n >> 16, n & 0xFFFF
    b = ipaddress.IPv4Address(v4).packed
    teredo_client = n ^ 0xFFFFFFFF
    return {
        "mapped": f"::ffff:{v4}",
        "compatible": f"::{v4}",
        "translated (SIIT)": f"::ffff:0:{hi:x}:{lo:x}",
        "NAT64 well-known": f"64:ff9b::{hi:x}:{lo:x}",
        "NAT64 local /96": f"64:ff9b:1::{hi:x}:{lo:x}",
        "NAT64 local /48": f"64:ff9b:1:{hi:x}:{b[2]:x}:{b[3]:x}00::",
        "NAT64 local /64": f"64:ff9b:1:0:{b[0]:x}:{b[1]:02x}{b[2]:02x}:{b[3]:02x}00::",
        "6to4": f"2002:{hi:x}:{lo:x}::1",
        "Teredo": f"2001:0:4136:e378:8000:63bf:{teredo_client >> 16:x}:{teredo_client & 0xFFFF:x}",
        "ISATAP": f"2606:4700::5efe:{hi:x}:{lo:x}",
    }


@pytest.mark.parametrize("v4", INNER)
@pytest.mark.parametrize("form", list(embeddings(PUBLIC)))
def test_every_ipv6_form_of_an_inner_ipv4_address_is_refused(form: str, v4: str) -> None:
    address = ipaddress.ip_address(embeddings(v4)[form])
    assert not DEFAULT.address_allowed(address), f"{form} {address} carries {v4}"


@pytest.mark.parametrize("form", ["mapped", "compatible", "translated (SIIT)", "NAT64 well-known", "6to4", "ISATAP"])
def test_the_forms_of_a_public_ipv4_address_stay_allowed(form: str) -> None:
    assert DEFAULT.address_allowed(ipaddress.ip_address(embeddings(PUBLIC)[form]))


def test_local_use_nat64_and_teredo_are_never_public() -> None:
    for form in ("NAT64 local /96", "NAT64 local /48", "NAT64 local /64", "Teredo"):
        assert not DEFAULT.address_allowed(ipaddress.ip_address(embeddings(PUBLIC)[form]))


def test_loopback_and_plain_public_ipv6_keep_their_verdicts() -> None:
    assert DEFAULT.address_allowed(ipaddress.ip_address("::1"))
    assert not DEFAULT.address_allowed(ipaddress.ip_address("::"))
    assert DEFAULT.address_allowed(ipaddress.ip_address("2606:4700::1111"))
    closed = NetworkPolicy.from_settings(PushSettings(allowed_networks=[]))
    assert not closed.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not closed.address_allowed(ipaddress.ip_address("::127.0.0.1"))


@pytest.mark.parametrize("literal", ["[::10.0.0.1]", "[::ffff:0:a00:1]", "[::ffff:10.0.0.1]", "[64:ff9b:1::a00:1]"])
async def test_a_url_naming_such_an_address_is_refused(literal: str) -> None:
    with pytest.raises(UrlNotAllowed):
        await DEFAULT.check(f"http://{literal}:8080/hook")


@pytest.mark.parametrize("url", ["http://127.0.0.1:0/", "https://hooks.example.com:0/x", "http://[::1]:0/"])
def test_port_zero_is_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="port"):
        DEFAULT.check_url(url)


@pytest.mark.parametrize("url", ["HTTP://127.0.0.1:9/x", "Https://127.0.0.1:9/x", "hTTp://127.0.0.1:9/x"])
def test_the_scheme_is_case_insensitive_and_stored_lower_case(url: str) -> None:
    assert DEFAULT.check_url(url) == ("127.0.0.1", 9)
    created = SubscriptionCreate.model_validate({"queue": "q", "url": url})
    assert created.url == url.split("://")[0].lower() + "://127.0.0.1:9/x"
    assert SubscriptionPatch.model_validate({"url": url}).url == created.url
    with pytest.raises(UrlNotAllowed, match="https"):
        NetworkPolicy.from_settings(PushSettings(require_https=True)).check_url(url.replace("s:", ":"))


def target(url: str) -> PushTarget:
    return PushTarget(
        id=1,
        queue="q",
        url=url,
        types=None,
        max_concurrency=1,
        timeout_s=5,
        paused=False,
        signing_secrets=("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",),
        active=0,
    )


JOB = {"id": 1, "queue": "q", "type": "t", "payload": {}, "attempt": 1, "max_attempts": 3}
JOB |= {"correlation_id": None, "flow_key": None, "created_at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        (PushSettings(require_https=True), "http://127.0.0.1:9/hook"),
        (PushSettings(allowed_hosts=["hooks.example.com"]), "http://127.0.0.1:9/hook"),
        (PushSettings(allowed_networks=[]), "http://127.0.0.1:9/hook"),
        (PushSettings(), "http://[::ffff:0:a00:1]:9/hook"),
        (PushSettings(), "http://127.0.0.1:0/hook"),
    ],
)
async def test_a_delivery_is_checked_under_the_policy_as_it_is_now(settings: PushSettings, url: str) -> None:
    """A subscription saved under a looser policy (or before a DNS change) is refused when delivering."""
    policy = NetworkPolicy.from_settings(settings)
    client = guarded_client(policy, 10)
    try:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.post(url, content=b"{}")
        assert isinstance(raised.value.__cause__, AddressRefused)
        outcome = await delivery.send(client, target(url), JOB, LIMITS)
    finally:
        await client.aclose()
    assert outcome.status == "url_not_allowed" and outcome.error is not None
    assert outcome.error["type"] == "url_not_allowed"
