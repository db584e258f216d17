"""API keys: generated once, stored only as SHA-256 hashes with their scopes, checked in constant time.

A configured entry reads `sha256:<64 hex>:<scope>[+<scope>...]`. The key itself is 32 random bytes,
so an unsalted fast hash is enough: there is nothing to brute-force that is cheaper than the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

KEY_PREFIX = "jbk_"
PUBLIC_ID_HEX = 12
_ENTRY = re.compile(r"^sha256:([0-9a-f]{64}):([a-z+]+)$")


class Scope(StrEnum):
    PRODUCE = "produce"  # enqueue jobs
    CONSUME = "consume"  # lease, heartbeat, ack, nack
    METRICS = "metrics"  # read /metrics when it is protected
    READ = "read"  # every GET an admin key may make: jobs with their payloads, queues, the DLQ, settings
    ADMIN = "admin"  # everything, including inspecting, cancelling and replaying jobs


@dataclass(frozen=True, slots=True)
class ApiKey:
    digest: bytes
    scopes: frozenset[Scope]

    @property
    def id(self) -> str:
        """The key's short public id (logs, the audit log's actor): the start of its hash, never the key."""
        return self.digest.hex()[:PUBLIC_ID_HEX]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def public_id(key: str) -> str:
    """What `ApiKey.id` answers for this key: 48 bits of its hash, safe to show anywhere."""
    return digest(key).hex()[:PUBLIC_ID_HEX]


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def entry(key: str, scopes: Iterable[Scope]) -> str:
    """The configuration line for a key: its hash and scopes, never the key."""
    ordered = [s.value for s in Scope if s in set(scopes)]
    if not ordered:
        raise ValueError("a key needs at least one scope")
    return f"sha256:{digest(key).hex()}:{'+'.join(ordered)}"


def parse_entry(text: str) -> ApiKey:
    match = _ENTRY.match(text.strip())
    if match is None:
        raise ValueError("an API key entry reads sha256:<64 lowercase hex>:<scope>[+<scope>...]")
    names = match.group(2).split("+")
    unknown = [n for n in names if n not in Scope.__members__.values()]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(Scope)}")
    return ApiKey(bytes.fromhex(match.group(1)), frozenset(Scope(n) for n in names))


class KeyRing:
    """The configured keys. Empty means authentication is off (development mode)."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys = tuple(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def find(self, presented: str) -> ApiKey | None:
        """The key matching `presented`; every entry is compared so timing says nothing of which."""
        wanted = digest(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found

    @classmethod
    def parse(cls, entries: str | None, file: Path | None = None) -> KeyRing:
        """Entries separated by commas or newlines, from the setting and from the file; `#` starts a comment."""
        texts = [entries or ""]
        if file is not None:
            texts.append(file.read_text())
        keys = []
        for text in texts:
            for line in text.splitlines():
                for item in line.split("#", 1)[0].split(","):
                    if item.strip():
                        keys.append(parse_entry(item))
        return cls(keys)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_refusal(keys: KeyRing, host: str, insecure: bool) -> str | None:
    """Why serving on `host` would be unsafe: reachable from other machines with no API keys."""
    if keys.enabled or insecure or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who reaches it could read and change every job. "
        "Configure JOBBROKER_API_KEYS (see `jobbroker keys create`), bind 127.0.0.1, or pass --insecure."
    )
