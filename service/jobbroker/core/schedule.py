"""Recurring jobs: when a cron expression next fires, in its own time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from jobbroker.core.errors import InvalidInput


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first instant strictly after `after` that `cron` names, read as wall-clock time in
    `timezone` (so "0 9 * * *" stays at 9:00 local across daylight-saving changes)."""
    try:
        return next(CronSim(cron, after.astimezone(zone(timezone))))
    except CronSimError as exc:
        raise InvalidInput(f"invalid cron expression {cron!r}: {exc}") from exc
    except StopIteration as exc:
        raise InvalidInput(f"cron expression {cron!r} never fires") from exc
