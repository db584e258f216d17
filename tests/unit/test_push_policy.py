"""The subscriber URL policy (SSRF guard) and the parsing of a subscriber's answer, without a network."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import httpx
import pytest

from jobbroker.core.errors import UrlNotAllowed
from jobbroker.push import delivery
from jobbroker.push.ssrf import NetworkPolicy
from jobbroker.settings import PushSettings

DEFAULT = NetworkPolicy.from_settings(PushSettings())
LIMITS = delivery.Limits(max_result_bytes=100, error_body_chars=10, max_retry_after_s=60)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", True),  # loopback: allowed by default, for development
        ("::1", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped
        ("::ffff:127.0.0.1", True),
        ("2002:a00:1::1", False),  # 6to4 carrying 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
    ],
)
def test_default_policy_allows_public_and_loopback_addresses_only(address: str, allowed: bool) -> None:
    assert DEFAULT.address_allowed(ipaddress.ip_address(address)) is allowed


def test_production_policy_without_loopback_and_with_an_inner_network() -> None:
    policy = NetworkPolicy.from_settings(PushSettings(allowed_networks=["10.20.0.0/16"]))
    assert not policy.address_allowed(ipaddress.ip_address("127.0.0.1"))
    assert policy.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.3.4"))
    closed = NetworkPolicy.from_settings(PushSettings(allow_public=False, allowed_networks=[]))
    assert not closed.address_allowed(ipaddress.ip_address("93.184.216.34"))


def test_url_checks() -> None:
    assert DEFAULT.check_url("https://Hooks.Example.com/x?y=1") == ("hooks.example.com", 443)
    assert DEFAULT.check_url("http://[::1]:8080/") == ("::1", 8080)
    https_only = NetworkPolicy.from_settings(PushSettings(require_https=True))
    with pytest.raises(UrlNotAllowed, match="https"):
        https_only.check_url("http://hooks.example.com/")
    hosts = NetworkPolicy.from_settings(PushSettings(allowed_hosts=["*.example.com", "api.partner.io"]))
    assert hosts.check_url("https://a.b.example.com/")[0] == "a.b.example.com"
    assert hosts.check_url("https://API.partner.io/")[0] == "api.partner.io"
    for refused in ("https://example.com/", "https://evilexample.com/", "https://partner.io/"):
        with pytest.raises(UrlNotAllowed, match="allowed hosts"):
            hosts.check_url(refused)


async def test_resolution_refuses_a_name_with_any_disallowed_address() -> None:
    closed = NetworkPolicy.from_settings(PushSettings(allowed_networks=[]))
    with pytest.raises(UrlNotAllowed, match=r"127\.0\.0\.1"):
        await closed.resolve("127.0.0.1", 80)
    assert await DEFAULT.resolve("127.0.0.1", 80) == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        (None, None),
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert delivery.retry_after_s(value, datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)) == seconds


def answer(status: int, content: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers)


def test_a_2xx_json_answer_is_the_result_and_anything_else_is_no_result() -> None:
    ok = delivery.outcome(answer(200, b'{"a": 1}', **{"content-type": "application/json"}), b'{"a": 1}', LIMITS)
    assert ok.ok and ok.result == {"a": 1}
    assert delivery.outcome(answer(204), b"", LIMITS).result is None
    text = answer(200, b"fine", **{"content-type": "text/plain"})
    assert delivery.outcome(text, b"fine", LIMITS).result is None
    big = b'{"a": "' + b"x" * 200 + b'"}'
    assert delivery.outcome(answer(200, big, **{"content-type": "application/json"}), big, LIMITS).result is None
    broken = answer(201, b"{", **{"content-type": "application/problem+json"})
    assert delivery.outcome(broken, b"{", LIMITS).ok


def test_a_non_2xx_answer_is_a_failure_with_status_and_a_snippet() -> None:
    failed = delivery.outcome(answer(503, b"x" * 50, **{"retry-after": "7"}), b"x" * 50, LIMITS)
    assert not failed.ok and failed.retry_in_s == 7
    assert failed.error == {
        "type": "http_503",
        "message": "HTTP 503 Service Unavailable: xxxxxxxxxx",
        "details": {"status": 503, "body": "x" * 10, "retry_after_seconds": 7.0},
    }
    capped = delivery.outcome(answer(429, **{"retry-after": "3600"}), b"", LIMITS)
    assert capped.retry_in_s == 60
    ignored = delivery.outcome(answer(500, **{"retry-after": "7"}), b"", LIMITS)
    assert ignored.retry_in_s is None and ignored.error["type"] == "http_500"
    redirect = delivery.outcome(answer(302, location="http://10.0.0.1/"), b"", LIMITS)
    assert redirect.error["type"] == "http_302"
