"""Value objects of push delivery, passed between the API, the store and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

from jobbroker.core.errors import SubscriptionNotFound

MAX_SUBSCRIPTION_ID = 2**63 - 1


def parse_subscription_id(raw: str) -> int:
    """Subscription ids are positive 64-bit integers on the wire as strings; anything else names none."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_SUBSCRIPTION_ID:
        raise SubscriptionNotFound(f"no subscription with id {raw!r}")
    return int(raw)


def push_worker_id(subscription_id: int) -> str:
    """The worker id under which a subscription's deliveries hold their leases."""
    return f"push:{subscription_id}"


@dataclass(frozen=True, slots=True)
class NewSubscription:
    queue: str
    url: str
    secret: str
    types: tuple[str, ...] | None = None
    max_concurrency: int = 10
    timeout_s: int = 30
    paused: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A subscription as a claim sees it under its row lock: where to send, how, and how much room is left."""

    id: int
    queue: str
    url: str
    types: tuple[str, ...] | None
    max_concurrency: int
    timeout_s: int
    paused: bool
    signing_secrets: tuple[str, ...]
    active: int

    @property
    def worker_id(self) -> str:
        return push_worker_id(self.id)

    @property
    def room(self) -> int:
        return 0 if self.paused else max(0, self.max_concurrency - self.active)
