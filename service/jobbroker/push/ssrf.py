"""Which subscriber URLs the broker may call: checked when a subscription is saved and again on every
connection, after DNS resolution, against the addresses actually connected to.

Without this, anyone who may create a subscription could make the broker POST to its own network
(a database's HTTP port, a cloud metadata service at 169.254.169.254, an admin API on localhost).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from jobbroker import __version__
from jobbroker.core.errors import UrlNotAllowed
from jobbroker.settings import PushSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# IPv6 forms that carry an IPv4 address, each judged by the address it carries as well as by itself.
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (:: and ::1 aside)
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT, RFC 6145: ::ffff:0:a.b.c.d
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
# RFC 8215: NAT64 for local use, so never public; the IPv4 address may sit at any of RFC 6052's offsets.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
# Where RFC 6052 puts the 4 IPv4 bytes for each prefix length (byte 8, the "u" octet, is skipped).
RFC6052_BYTES = {32: (4, 5, 6, 7), 40: (5, 6, 7, 9), 48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12)}
RFC6052_BYTES[96] = (12, 13, 14, 15)
# Python counts these as global; they are not the public internet.
NOT_PUBLIC = (LOCAL_NAT64,)
RESOLVE_TIMEOUT_S = 5.0


class AddressRefused(httpcore.ConnectError):
    """A connection the policy forbids; httpx raises it as the cause of an httpx.ConnectError."""


@dataclass(frozen=True)
class NetworkPolicy:
    allow_public: bool
    allowed_networks: tuple[Network, ...]
    allowed_hosts: tuple[str, ...] = ()
    require_https: bool = False

    @classmethod
    def from_settings(cls, settings: PushSettings) -> NetworkPolicy:
        return cls(
            settings.allow_public,
            tuple(settings.allowed_networks),
            tuple(h.lower() for h in settings.allowed_hosts),
            settings.require_https,
        )

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port, or UrlNotAllowed saying what is wrong with it."""
        if not url.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            raise UrlNotAllowed("the URL must be ASCII without spaces or control characters (punycode for IDNs)")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UrlNotAllowed(f"the URL is malformed: {exc}") from None
        schemes = ("https",) if self.require_https else ("http", "https")
        # urlsplit lowers the scheme: HTTP:// is http.
        if parts.scheme not in schemes:
            raise UrlNotAllowed(f"the URL scheme must be {' or '.join(schemes)}")
        if not parts.hostname:
            raise UrlNotAllowed("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise UrlNotAllowed("credentials in the URL are not accepted: receivers verify the signature instead")
        if port == 0:
            raise UrlNotAllowed("the URL port must be between 1 and 65535")
        host = parts.hostname.lower()
        if self.allowed_hosts and not any(_host_matches(host, p) for p in self.allowed_hosts):
            raise UrlNotAllowed(f"host {host!r} is not in the allowed hosts (JOBBROKER_PUSH__ALLOWED_HOSTS)")
        return host, port or (443 if parts.scheme == "https" else 80)

    def address_allowed(self, address: Address) -> bool:
        """Every form of the address (and any IPv4 address it embeds) must be allowed."""
        return all(self._one_allowed(a) for a in _forms(address))

    def _one_allowed(self, address: Address) -> bool:
        if any(address in network for network in self.allowed_networks):
            return True
        if not self.allow_public or not address.is_global or address.is_multicast:
            return False
        return not (isinstance(address, ipaddress.IPv6Address) and any(address in n for n in NOT_PUBLIC))

    async def resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses, all of them allowed, or UrlNotAllowed; OSError when DNS fails."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
        refused = [a for a in addresses if not self.address_allowed(ipaddress.ip_address(a))]
        if refused or not addresses:
            raise UrlNotAllowed(
                f"host {host!r} resolves to {', '.join(refused) or 'nothing'}, outside the allowed networks "
                "(public addresses and JOBBROKER_PUSH__ALLOWED_NETWORKS)"
            )
        return addresses

    async def check(self, url: str) -> None:
        """Refuse a subscriber URL that is malformed, not allowed, or resolves to a refused address."""
        host, port = self.check_url(url)
        try:
            await self.resolve(host, port)
        except (OSError, TimeoutError) as exc:
            raise UrlNotAllowed(f"host {host!r} does not resolve: {exc}") from None


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _forms(address: Address) -> Iterable[Address]:
    """The address and every IPv4 address it carries: an IPv4-mapped address is its IPv4 address;
    IPv4-compatible, SIIT, NAT64, 6to4, Teredo and ISATAP addresses each embed one."""
    if isinstance(address, ipaddress.IPv4Address):
        yield address
        return
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
        return
    yield address
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if (address in IPV4_COMPATIBLE and int(address) > 1) or address in IPV4_TRANSLATED or address in NAT64:
        yield low
    if address in LOCAL_NAT64:
        packed = address.packed
        for offsets in RFC6052_BYTES.values():
            yield ipaddress.IPv4Address(bytes(packed[i] for i in offsets))
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo
    if (int(address) >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP interface id: [02]00:5efe:a.b.c.d
        yield low


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves each connection's host itself, checks every address, and connects to a checked one.

    TLS still verifies the certificate against (and sends SNI for) the URL's host name.
    """

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.resolve(host, port)
        except UrlNotAllowed as exc:
            raise AddressRefused(exc.detail) from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not subscriber addresses")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a connection pool whose every connection goes through GuardedBackend."""

    def __init__(self, policy: NetworkPolicy, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self.policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Every delivery's URL is checked again under the policy as it is now (a subscription saved
        under a looser one, or by an older version, is refused); its addresses are checked on connecting."""
        try:
            self.policy.check_url(str(request.url))
        except UrlNotAllowed as exc:
            raise httpx.ConnectError(exc.detail, request=request) from AddressRefused(exc.detail)
        return await super().handle_async_request(request)


def guarded_client(policy: NetworkPolicy, max_keepalive: int) -> httpx.AsyncClient:
    """The one client a dispatcher shares across subscriptions: pooled and kept alive, no proxies from
    the environment (a proxy would connect on our behalf, past the checks), and no redirects."""
    # No overall connection cap: each subscription's max_concurrency bounds its own connections,
    # and a shared cap would let one slow subscriber starve the others.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=max_keepalive, keepalive_expiry=30)
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, limits),
        trust_env=False,
        follow_redirects=False,
        headers={"user-agent": f"jobbroker/{__version__}"},
    )
