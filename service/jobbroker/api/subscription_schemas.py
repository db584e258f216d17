"""Request and answer schemas of push subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from jobbroker.api.schemas import QUEUE_PATTERN, JobType, Strict
from jobbroker.core.push import NewSubscription
from jobbroker.push import signing

MAX_TIMEOUT_S = 900
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _valid_secret(value: str) -> str:
    signing.secret_key(value)
    return value


def _lower_scheme(value: str) -> str:
    """`HTTP://host/` is `http://host/` (schemes are case-insensitive); the rest stays as given."""
    scheme, sep, rest = value.partition("://")
    return scheme.lower() + sep + rest if sep and scheme.isascii() and scheme.isalpha() else value


Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="http(s) URL the jobs are POSTed to. It must resolve to an allowed address (see docs/push.md).",
        examples=["https://hooks.example.com/jobbroker"],
    ),
    AfterValidator(_lower_scheme),
]
Secret = Annotated[
    str,
    Field(
        pattern=signing.SECRET_PATTERN,
        max_length=200,
        description="A Standard Webhooks secret: `whsec_` and the base64 of 24–64 random bytes.",
        examples=[EXAMPLE_SECRET],
    ),
    AfterValidator(_valid_secret),
]
Types = Annotated[
    list[JobType] | None,
    Field(min_length=1, max_length=100, description="Deliver only jobs of these types; null: every type."),
]
MaxConcurrency = Annotated[int, Field(ge=1, le=1000, description="Deliveries in flight at most, across all replicas.")]
TimeoutSeconds = Annotated[
    int, Field(ge=1, le=MAX_TIMEOUT_S, description="A delivery not answered within this many seconds has failed.")
]
Description = Annotated[str | None, Field(max_length=500, description="A note for operators.")]


class SubscriptionCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "queue": "emails",
                    "url": "https://hooks.example.com/jobbroker",
                    "types": ["send-email"],
                    "max_concurrency": 10,
                    "timeout_seconds": 30,
                }
            ]
        },
    )

    queue: str = Field(pattern=QUEUE_PATTERN, description="The queue whose jobs are pushed.", examples=["emails"])
    url: Url
    types: Types = None
    secret: Secret | None = Field(None, description="The signing secret; one is generated when none is given.")
    max_concurrency: MaxConcurrency = 10
    timeout_seconds: TimeoutSeconds = 30
    paused: bool = Field(False, description="A paused subscription delivers nothing; its jobs wait.")
    description: Description = None

    def to_core(self, secret: str) -> NewSubscription:
        return NewSubscription(
            queue=self.queue,
            url=self.url,
            secret=secret,
            types=tuple(self.types) if self.types is not None else None,
            max_concurrency=self.max_concurrency,
            timeout_s=self.timeout_seconds,
            paused=self.paused,
            description=self.description,
        )


class SubscriptionPatch(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"paused": True}, {"max_concurrency": 3, "types": None}]}
    )

    url: Url | None = None
    types: Types = None
    max_concurrency: MaxConcurrency | None = None
    timeout_seconds: TimeoutSeconds | None = None
    paused: bool | None = None
    description: Description = None

    @model_validator(mode="after")
    def _no_null_settings(self) -> SubscriptionPatch:
        nulled = [
            f
            for f in ("url", "max_concurrency", "timeout_seconds", "paused")
            if f in self.model_fields_set and getattr(self, f) is None
        ]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} cannot be null")
        return self


class RotateSecretRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"overlap_seconds": 86_400}]})

    secret: Secret | None = Field(None, description="The new secret; one is generated when none is given.")
    overlap_seconds: int | None = Field(
        None,
        ge=0,
        le=30 * 86_400,
        description="How long deliveries carry a signature by the old secret too (default from the settings, "
        "24 h); 0 drops the old secret at once.",
    )


class SubscriptionOut(BaseModel):
    id: str = Field(examples=["7"])
    queue: str
    url: str
    types: list[str] | None
    max_concurrency: int
    timeout_seconds: int
    paused: bool
    description: str | None
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries are signed with the previous secret as well."
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(
        description="The signing secret. Only the create and rotate-secret answers show it.", examples=[EXAMPLE_SECRET]
    )


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    at: datetime = Field(description="When the delivery's job finished, or its failed attempt was recorded.")
    outcome: Literal["succeeded", "failed"]
    http_status: int | None = Field(description="A failed delivery's answer status, when the subscriber answered.")
    error: dict[str, Any] | None = Field(description="A failed delivery's error `type` and `message`.")


class DeliveryCounts(BaseModel):
    succeeded: int
    failed: int


class SubscriptionHealth(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "7",
                    "in_flight": 2,
                    "last_delivery": {
                        "at": "2026-12-01T21:58:02Z",
                        "outcome": "failed",
                        "http_status": 503,
                        "error": {"type": "http_503", "message": "HTTP 503 Service Unavailable"},
                    },
                    "recent": {"succeeded": 17, "failed": 3},
                }
            ]
        }
    )

    id: str
    in_flight: int = Field(description="Deliveries under way now.")
    last_delivery: DeliveryOut | None = Field(description="The latest delivery seen; null when none lately.")
    recent: DeliveryCounts = Field(description="Outcomes of the latest deliveries seen (at most 50).")
