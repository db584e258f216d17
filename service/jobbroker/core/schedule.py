"""Recurring jobs: when a cron expression next fires, in its own time zone."""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from jobbroker.core.errors import InvalidInput

# In the tz database but not a place's time: the host's own zone, and tzdata's placeholder.
NOT_ZONES = frozenset({"localtime", "Factory"})
CRON_FIELDS = 5


@functools.cache
def zone_names() -> frozenset[str]:
    """The IANA zone keys (`Europe/Berlin`, `UTC`); not a tzdata directory such as `Europe`."""
    return frozenset(available_timezones()) - NOT_ZONES


def zone(name: str) -> ZoneInfo:
    if name not in zone_names():
        raise InvalidInput(f"unknown time zone {name!r}: an IANA zone name such as Europe/Berlin or UTC is expected")
    return ZoneInfo(name)


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first instant strictly after `after` that `cron` names, read as wall-clock time in
    `timezone` (so "0 9 * * *" stays at 9:00 local across daylight-saving changes)."""
    if len(cron.split()) != CRON_FIELDS:
        raise InvalidInput(f"invalid cron expression {cron!r}: five fields (minute hour day month weekday) expected")
    try:
        return next(CronSim(cron, after.astimezone(zone(timezone))))
    except CronSimError as exc:
        raise InvalidInput(f"invalid cron expression {cron!r}: {exc}") from exc
    except StopIteration as exc:
        raise InvalidInput(f"cron expression {cron!r} never fires") from exc
