"""Domain errors, each with the stable machine code the API reports.

BrokerError
├── JobNotFound          404 job_not_found
├── NotFound             404 not_found
├── SubscriptionNotFound 404 subscription_not_found
├── ScheduleNotFound     404 schedule_not_found
├── ScheduleExists       409 schedule_exists
├── LeaseLost            409 lease_lost
├── InvalidState         409 invalid_state
├── Conflict             409 conflict
├── IdempotencyConflict  409 idempotency_conflict
├── PayloadTooLarge      413 payload_too_large
├── InvalidInput         422 validation_error
│   └── FilterRequired   422 filter_required
├── RedriveNotFound      404 redrive_not_found
├── UrlNotAllowed        422 url_not_allowed
├── Unauthorized         401 unauthorized
├── Forbidden            403 forbidden
└── DatabaseUnavailable  503 database_unavailable
"""

from __future__ import annotations

from typing import ClassVar


class BrokerError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class JobNotFound(BrokerError):
    status, code, title = 404, "job_not_found", "Job not found"


class NotFound(BrokerError):
    status, code, title = 404, "not_found", "Not found"


class SubscriptionNotFound(BrokerError):
    status, code, title = 404, "subscription_not_found", "Subscription not found"


class ScheduleNotFound(BrokerError):
    status, code, title = 404, "schedule_not_found", "Schedule not found"


class ScheduleExists(BrokerError):
    status, code, title = 409, "schedule_exists", "A schedule of that name exists"


class LeaseLost(BrokerError):
    status, code, title = 409, "lease_lost", "Lease lost"


class InvalidState(BrokerError):
    status, code, title = 409, "invalid_state", "Invalid state for this operation"


class Conflict(BrokerError):
    status, code, title = 409, "conflict", "Conflict with the stored data"


class IdempotencyConflict(BrokerError):
    status, code, title = 409, "idempotency_conflict", "Idempotency key reused with a different job"


class PayloadTooLarge(BrokerError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class InvalidInput(BrokerError):
    status, code, title = 422, "validation_error", "Validation error"


class FilterRequired(InvalidInput):
    code, title = "filter_required", "A filter is required"


class RedriveNotFound(BrokerError):
    status, code, title = 404, "redrive_not_found", "Redrive not found"


class UrlNotAllowed(BrokerError):
    status, code, title = 422, "url_not_allowed", "Subscriber URL not allowed"


class Unauthorized(BrokerError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(BrokerError):
    status, code, title = 403, "forbidden", "Forbidden"


class DatabaseUnavailable(BrokerError):
    status, code, title = 503, "database_unavailable", "Database unavailable"
