"""Verify jobbroker push deliveries in a receiver: Standard Webhooks signatures, standard library only.

    from jobbroker_client.webhooks import verify
    delivery = verify(body, headers, "whsec_...")   # raises WebhookVerificationError

With FastAPI (imported only when `fastapi_dependency` is called):

    verified = fastapi_dependency("whsec_...")

    @app.post("/jobbroker")
    async def receive(delivery: PushDelivery = Depends(verified)) -> dict: ...

A delivery is signed with every secret the subscription currently has (during a rotation, the new and
the old one); it verifies when any of them matches any of the secrets given here. Its `webhook_id` is
the same on every attempt of the same job: deduplicate on it when handling twice would hurt.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "PushDelivery",
    "WebhookVerificationError",
    "fastapi_dependency",
    "sign",
    "verify",
]

DEFAULT_TOLERANCE_SECONDS = 300
_PREFIX = "whsec_"

SecretLike = str | bytes


class WebhookVerificationError(Exception):
    """The delivery is not authentic, too old or too new, or not a jobbroker delivery."""


@dataclass(frozen=True)
class PushDelivery:
    """One verified delivery: the job and the webhook headers it came with."""

    webhook_id: str
    timestamp: int
    job_id: str
    queue: str
    type: str
    payload: Any
    attempt: int
    max_attempts: int | None
    correlation_id: str | None
    created_at: str
    body: dict[str, Any]


def _key(secret: SecretLike) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a secret is 'whsec_' followed by base64") from exc


def sign(secret: SecretLike, webhook_id: str, timestamp: int, body: bytes | str) -> str:
    """The `v1,<base64>` signature of a delivery (what the broker sends; useful in tests)."""
    content = body.encode() if isinstance(body, str) else body
    digest = hmac.new(_key(secret), f"{webhook_id}.{timestamp}.".encode() + content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: SecretLike | Sequence[SecretLike],
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> PushDelivery:
    """Check the signature and timestamp of a delivery and answer its contents.

    `headers` may be any mapping (names in any case); `secret` one secret or several (a receiver
    part-way through a rotation). The timestamp must be within `tolerance_seconds` of `now`.
    """
    content = body.encode() if isinstance(body, str) else bytes(body)
    found = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp, signatures = (found.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (webhook_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance (replayed or clock skew)")
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("give at least one secret")
    expected = [sign(s, webhook_id, timestamp, content).encode() for s in secrets]
    offered = [s.encode() for s in signatures.split() if s.startswith("v1,")]
    # Every comparison runs, so timing says nothing about which secret or signature matched.
    matched = False
    for candidate in offered:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate, wanted)
    if not matched:
        raise WebhookVerificationError("no signature matches")
    return _delivery(webhook_id, timestamp, content)


def _delivery(webhook_id: str, timestamp: int, content: bytes) -> PushDelivery:
    try:
        data = json.loads(content)
        return PushDelivery(
            webhook_id=webhook_id,
            timestamp=timestamp,
            job_id=str(data["id"]),
            queue=data["queue"],
            type=data["type"],
            payload=data.get("payload"),
            attempt=int(data["attempt"]),
            max_attempts=data.get("max_attempts"),
            correlation_id=data.get("correlation_id"),
            created_at=data["created_at"],
            body=data,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError(f"the body is not a jobbroker delivery: {exc}") from None


def fastapi_dependency(
    secret: SecretLike | Sequence[SecretLike], *, tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
) -> Callable[..., Awaitable[PushDelivery]]:
    """A FastAPI dependency answering the verified delivery, or 401 (the broker retries) when it fails."""
    from fastapi import HTTPException, Request

    async def verified_delivery(request: Request) -> PushDelivery:
        try:
            return verify(await request.body(), request.headers, secret, tolerance_seconds=tolerance_seconds)
        except WebhookVerificationError as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None

    return verified_delivery
