"""Standard Webhooks signing (broker side) against two verifiers: the `standardwebhooks` package from
PyPI and the SDK's `jobbroker_client.webhooks`, including its FastAPI dependency."""

from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest
import standardwebhooks
from fastapi import Depends, FastAPI

from jobbroker.push import signing
from jobbroker_client import webhooks

BODY = orjson.dumps(
    {
        "id": "42",
        "queue": "emails",
        "type": "send-email",
        "payload": {"to": "ada", "note": "ünïcode ✓"},
        "attempt": 2,
        "max_attempts": 5,
        "correlation_id": None,
        "created_at": "2024-05-01T12:00:00Z",
    }
)


def signed(*secrets: str, at: int | None = None, body: bytes = BODY) -> dict[str, str]:
    return signing.headers(secrets, "job_42", int(time.time()) if at is None else at, body)


def test_generated_secrets_are_whsec_base64_of_32_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first != second and first.startswith("whsec_")
    assert len(signing.secret_key(first)) == 32


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "nope_" + "a" * 40,
        "whsec_###",
        "whsec_" + base64.b64encode(b"x" * 23).decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        signing.secret_key(secret)


def test_the_signature_is_hmac_sha256_of_id_timestamp_body_keyed_by_the_decoded_secret() -> None:
    import hashlib
    import hmac

    secret = signing.generate_secret()
    expected = hmac.new(signing.secret_key(secret), b"job_42.1700000000." + BODY, hashlib.sha256).digest()
    assert signing.sign(secret, "job_42", 1700000000, BODY) == "v1," + base64.b64encode(expected).decode()


def test_standardwebhooks_verifies_our_signature() -> None:
    secret = signing.generate_secret()
    assert standardwebhooks.Webhook(secret).verify(BODY, signed(secret)) == orjson.loads(BODY)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.generate_secret()).verify(BODY, signed(secret))


def test_during_rotation_either_secret_verifies() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    headers = signed(new, old)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
        webhooks.verify(BODY, headers, secret)
    webhooks.verify(BODY, headers, [signing.generate_secret(), old])


def test_sdk_verify_answers_the_delivery() -> None:
    secret = signing.generate_secret()
    delivery = webhooks.verify(BODY, signed(secret), secret)
    assert (delivery.webhook_id, delivery.job_id, delivery.queue, delivery.type) == (
        "job_42",
        "42",
        "emails",
        "send-email",
    )
    assert delivery.payload == {"to": "ada", "note": "ünïcode ✓"} and delivery.attempt == 2
    assert delivery.max_attempts == 5 and delivery.correlation_id is None
    assert webhooks.sign(secret, "job_42", 1, BODY) == signing.sign(secret, "job_42", 1, BODY)
    upper = {k.upper(): v for k, v in signed(secret).items()}
    assert webhooks.verify(BODY.decode(), upper, secret).job_id == "42"


def test_sdk_refuses_tampering_wrong_secrets_and_stale_timestamps() -> None:
    secret = signing.generate_secret()
    headers = signed(secret)
    with pytest.raises(webhooks.WebhookVerificationError, match="no signature"):
        webhooks.verify(BODY.replace(b"ada", b"eve"), headers, secret)
    with pytest.raises(webhooks.WebhookVerificationError, match="no signature"):
        webhooks.verify(BODY, headers, signing.generate_secret())
    with pytest.raises(webhooks.WebhookVerificationError, match="no signature"):
        webhooks.verify(BODY, {**headers, "webhook-id": "job_43"}, secret)
    old = signed(secret, at=int(time.time()) - 301)
    with pytest.raises(webhooks.WebhookVerificationError, match="tolerance"):
        webhooks.verify(BODY, old, secret)
    assert webhooks.verify(BODY, old, secret, tolerance_seconds=600).job_id == "42"
    future = signed(secret, at=int(time.time()) + 301)
    with pytest.raises(webhooks.WebhookVerificationError, match="tolerance"):
        webhooks.verify(BODY, future, secret)
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        with pytest.raises(webhooks.WebhookVerificationError, match="missing"):
            webhooks.verify(BODY, {k: v for k, v in headers.items() if k != missing}, secret)
    with pytest.raises(webhooks.WebhookVerificationError, match="integer"):
        webhooks.verify(BODY, {**headers, "webhook-timestamp": "soon"}, secret)
    with pytest.raises(webhooks.WebhookVerificationError, match="no signature"):
        webhooks.verify(BODY, {**headers, "webhook-signature": "v2,abc garbage"}, secret)


def test_sdk_refuses_a_signed_body_that_is_not_a_delivery() -> None:
    secret = signing.generate_secret()
    with pytest.raises(webhooks.WebhookVerificationError, match="not a jobbroker delivery"):
        webhooks.verify(b"[1, 2]", signed(secret, body=b"[1, 2]"), secret)


async def test_fastapi_dependency_admits_signed_deliveries_and_answers_401_otherwise() -> None:
    secret = signing.generate_secret()
    app = FastAPI()
    verified = webhooks.fastapi_dependency(secret)

    @app.post("/hook")
    async def receive(delivery: webhooks.PushDelivery = Depends(verified)) -> dict[str, object]:
        return {"job": delivery.job_id, "to": delivery.payload["to"]}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
        good = await client.post("/hook", content=BODY, headers=signed(secret))
        assert good.status_code == 200 and good.json() == {"job": "42", "to": "ada"}
        bad = await client.post("/hook", content=BODY, headers=signed(signing.generate_secret()))
        assert bad.status_code == 401
        unsigned = await client.post("/hook", content=BODY)
        assert unsigned.status_code == 401
