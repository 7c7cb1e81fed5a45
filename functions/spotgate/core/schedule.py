"""Active hours: whether a pool should be able to serve from its VMs at a given instant.

Windows are written in local wall-clock time of an IANA zone, because that is how operators think
("weekdays 07:00-21:00 Berlin"); comparing wall-clock times after converting the instant keeps the answer
right across DST changes. A window whose end is not after its start crosses midnight and belongs to the day
it starts on: ``fri 22:00-02:00`` covers Saturday 01:00, not Friday 01:00.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from spotgate.fleet import DAYS, ActiveHours, Window

# Look this far ahead for the next change; a week covers every weekly pattern, the extra day a crossing window.
_HORIZON_DAYS = 8


def is_active(hours: ActiveHours | None, at: datetime) -> bool:
    """True if ``at`` (timezone-aware) falls in one of the windows; ``None`` means always active."""
    if hours is None:
        return True
    local = at.astimezone(ZoneInfo(hours.timezone))
    return any(_window_covers(window, local.date(), local.time()) for window in hours.windows)


def next_transition(hours: ActiveHours | None, at: datetime) -> datetime | None:
    """The first instant after ``at`` where ``is_active`` changes, in UTC; None if it never changes.

    Inside a DST gap (a wall-clock time that does not exist) the answer may be late by the gap's length;
    callers use it to schedule a re-check, and the minute tick covers any slack.
    """
    if hours is None:
        return None
    zone = ZoneInfo(hours.timezone)
    now_active = is_active(hours, at)
    first_day = at.astimezone(zone).date() - timedelta(days=1)
    boundaries = sorted(
        {
            _instant(first_day + timedelta(days=offset), moment, zone)
            for offset in range(_HORIZON_DAYS + 1)
            for window in hours.windows
            for moment in (window.start, window.end)
        }
    )
    return next((b for b in boundaries if b > at and is_active(hours, b) != now_active), None)


def _window_covers(window: Window, day: date, clock: time) -> bool:
    today = DAYS[day.weekday()] in window.days
    if window.start < window.end:
        return today and window.start <= clock < window.end
    yesterday = DAYS[(day.weekday() - 1) % 7] in window.days
    return (today and clock >= window.start) or (yesterday and clock < window.end)


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)
