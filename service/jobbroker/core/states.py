"""The job state machine: one table, read by the SQL guards' tests and by the docs."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class JobState(StrEnum):
    PENDING = "pending"  # visible to leases once run_at <= now
    ACTIVE = "active"  # held by one lease until lease_expires_at
    RETRYING = "retrying"  # failed an attempt; visible again once run_at <= now
    SUCCEEDED = "succeeded"  # acked; terminal
    DEAD = "dead"  # in the DLQ; leaves only via replay or purge
    CANCELLED = "cancelled"  # terminal unless replayed


class Event(StrEnum):
    LEASE = "lease"  # a worker takes a ready job
    ACK = "ack"  # the worker finished it
    NACK_RETRY = "nack_retry"  # the attempt failed and attempts remain
    NACK_DEAD = "nack_dead"  # failed for good: non-retryable or out of attempts
    EXPIRE_RETRY = "expire_retry"  # the lease ran out (stalled worker), attempts remain
    EXPIRE_DEAD = "expire_dead"  # the lease ran out on the last attempt
    CANCEL = "cancel"  # an operator cancelled it
    REQUEST_CANCEL = "request_cancel"  # cancel of a running job: the worker learns it on heartbeat
    RELEASE = "release"  # the worker gave it back unrun (shutting down); the attempt is returned
    REPLAY = "replay"  # an operator sent it back to pending


READY_STATES: Final = (JobState.PENDING, JobState.RETRYING)
FINISHED_STATES: Final = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)

TRANSITIONS: Final[Mapping[tuple[JobState, Event], JobState]] = {
    (JobState.PENDING, Event.LEASE): JobState.ACTIVE,
    (JobState.RETRYING, Event.LEASE): JobState.ACTIVE,
    (JobState.ACTIVE, Event.ACK): JobState.SUCCEEDED,
    (JobState.ACTIVE, Event.NACK_RETRY): JobState.RETRYING,
    (JobState.ACTIVE, Event.NACK_DEAD): JobState.DEAD,
    (JobState.ACTIVE, Event.EXPIRE_RETRY): JobState.RETRYING,
    (JobState.ACTIVE, Event.EXPIRE_DEAD): JobState.DEAD,
    (JobState.PENDING, Event.CANCEL): JobState.CANCELLED,
    (JobState.RETRYING, Event.CANCEL): JobState.CANCELLED,
    (JobState.ACTIVE, Event.REQUEST_CANCEL): JobState.ACTIVE,
    # A release lands in retrying instead when earlier attempts had failed.
    (JobState.ACTIVE, Event.RELEASE): JobState.PENDING,
    (JobState.DEAD, Event.REPLAY): JobState.PENDING,
    (JobState.CANCELLED, Event.REPLAY): JobState.PENDING,
}

# A running job whose cancel was requested does not retry: its failure or expiry ends it cancelled.
CANCEL_REQUESTED_FAILURE: Final = JobState.CANCELLED


def allowed(state: JobState, event: Event) -> bool:
    """Whether `event` may happen to a job in `state`."""
    return (state, event) in TRANSITIONS
