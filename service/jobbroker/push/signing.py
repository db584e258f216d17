"""Standard Webhooks signatures (https://www.standardwebhooks.com): symmetric `v1` HMAC-SHA256.

A secret is `whsec_` followed by the base64 of 24–64 random bytes; those bytes are the HMAC key.
The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the `webhook-signature` header
carries one `v1,<base64 digest>` per secret, space-separated, so a receiver that knows either the
old or the new secret verifies a delivery made during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
NEW_KEY_BYTES = 32
# The pattern an API request's secret must match before its key length is checked.
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]+={0,2}$"


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(NEW_KEY_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError when it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError("a secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after 'whsec_' must be base64") from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"the secret must decode to {MIN_KEY_BYTES}–{MAX_KEY_BYTES} bytes, not {len(key)}")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(signing_secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every given secret (newest first)."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, webhook_id, timestamp, body) for s in signing_secrets),
    }
