"""The transition table agrees with the design's rules."""

from __future__ import annotations

from jobbroker.core.states import FINISHED_STATES, TRANSITIONS, Event, JobState, allowed


def test_only_active_jobs_are_settled() -> None:
    for state, event in TRANSITIONS:
        if event in (Event.ACK, Event.NACK_RETRY, Event.NACK_DEAD, Event.EXPIRE_RETRY, Event.EXPIRE_DEAD):
            assert state == JobState.ACTIVE


def test_finished_jobs_leave_only_by_replay() -> None:
    for state in FINISHED_STATES:
        events = {event for (s, event) in TRANSITIONS if s == state}
        assert events <= {Event.REPLAY}
    assert not allowed(JobState.SUCCEEDED, Event.REPLAY)


def test_every_state_is_reachable_and_every_event_used() -> None:
    assert {JobState.PENDING} | set(TRANSITIONS.values()) == set(JobState)
    assert {event for (_, event) in TRANSITIONS} == set(Event)
