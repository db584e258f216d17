"""The ready hub's hand-out of wake-ups: at most one long poll per ready job, longest-waiting first,
and no wake-up lost when its holder leaves without looking."""

from __future__ import annotations

from jobbroker.store.notify import ReadyHub, Waiter, parse


def hub() -> ReadyHub:
    return ReadyHub("postgresql://unused/x", "jobbroker")  # never started: no connection


def woken(waiters: list[Waiter]) -> list[int]:
    return [i for i, w in enumerate(waiters) if w.event.is_set()]


def test_payloads_carry_a_queue_and_maybe_a_count() -> None:
    assert parse("emails 3") == ("emails", 3)
    assert parse("emails 3 2026-12-01 21:00:00.123456+00") == ("emails", 3)
    assert parse("emails") == ("emails", None)
    assert parse("@subscriptions") == ("@subscriptions", None)
    assert parse("q junk") == ("q", None)


def test_a_notification_wakes_as_many_waiters_as_jobs_longest_waiting_first() -> None:
    h = hub()
    waiters = [h.join("q") for _ in range(10)]
    h._on_notify(None, 0, "jobbroker_ready", "q 1")
    assert woken(waiters) == [0]
    h._on_notify(None, 0, "jobbroker_ready", "q 3")
    assert woken(waiters) == [0, 1, 2, 3]
    h._on_notify(None, 0, "jobbroker_ready", "q 100")
    assert woken(waiters) == list(range(10))


def test_a_notification_without_a_count_wakes_one() -> None:
    h = hub()
    waiters = [h.join("q") for _ in range(5)]
    h._on_notify(None, 0, "jobbroker_ready", "q")
    assert woken(waiters) == [0]


def test_other_queues_are_not_woken_and_listeners_always_are() -> None:
    h = hub()
    other = h.join("other")
    mine = [h.join("q") for _ in range(3)]
    listener = h.register("q")
    h._on_notify(None, 0, "jobbroker_ready", "q 1")
    assert not other.event.is_set() and woken(mine) == [0] and listener.is_set()


def test_a_waiter_that_looked_lines_up_again_at_the_back() -> None:
    h = hub()
    a, b, c = h.join("q"), h.join("q"), h.join("q")
    h.pass_on("q")
    assert h.take(a) is True and not a.event.is_set()
    h.pass_on("q", 2)
    assert woken([a, b, c]) == [1, 2]
    h.pass_on("q")
    assert a.event.is_set()
    assert h.take(b) is True  # b looked after its wake-up: back in line
    d = h.join("q")
    e = h.join("q")
    assert h.take(d) is False  # d looked after a timeout: it keeps its place, behind b
    h.pass_on("q", 2)
    assert woken([b, d, e]) == [0, 1]


def test_a_wake_up_its_holder_did_not_use_goes_to_the_next_in_line() -> None:
    h = hub()
    a, b, c = h.join("q"), h.join("q"), h.join("q")
    h.pass_on("q")
    h.leave(a)  # found jobs in the look it was doing when woken, and left
    assert woken([a, b, c]) == [0, 1]
    h.leave(c)  # never woken: nothing to pass on
    assert not c.event.is_set()
    h.take(b)
    h.leave(b)  # used its wake-up
    assert h._line == {}


def test_a_lost_connection_wakes_everyone() -> None:
    h = hub()
    waiters = [h.join(q) for q in ("a", "a", "b")]
    h._wake_all()
    assert woken(waiters) == [0, 1, 2]


def test_only_a_wake_up_without_a_count_is_a_relay() -> None:
    h = hub()
    a, b = h.join("q"), h.join("q")
    h._on_notify(None, 0, "jobbroker_ready", "q 1 t")
    assert h.take(a) and not a.relay
    h._on_notify(None, 0, "jobbroker_ready", "q")
    assert h.take(b) and b.relay
    # Line: a, b. A wake-up its holder leaves unused is passed on as the kind it was.
    h._on_notify(None, 0, "jobbroker_ready", "q")
    h.leave(a)
    assert b.woken and b.relay
    c, d = h.join("q"), h.join("q")
    h._on_notify(None, 0, "jobbroker_ready", "q 1 t")
    h.leave(c)
    assert d.woken and not d.relay
