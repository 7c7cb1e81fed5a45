"""Active hours: windows in IANA zones, days of week, windows crossing midnight, DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spotgate.core.schedule import is_active, next_transition
from spotgate.fleet import ActiveHours


def hours(timezone: str, *windows: tuple[Any, str, str]) -> ActiveHours:
    return ActiveHours.model_validate(
        {"timezone": timezone, "windows": [{"days": days, "start": start, "end": end} for days, start, end in windows]}
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
BERLIN_OFFICE = hours("Europe/Berlin", (WEEKDAYS, "07:00", "21:00"))
FRIDAY_NIGHT = hours("UTC", (["fri"], "22:00", "02:00"))
MONDAY_ALL_DAY = hours("UTC", (["mon"], "00:00", "00:00"))
BERLIN_SUNDAY_EARLY = hours("Europe/Berlin", (["sun"], "01:00", "05:00"))
NEW_YORK_SUNDAY_ONE_AM = hours("America/New_York", (["sun"], "01:00", "02:00"))
SPLIT_DAY = hours("UTC", (WEEKDAYS, "08:00", "12:00"), (WEEKDAYS, "13:00", "17:00"))

ACTIVE_CASES = [
    pytest.param(None, "2026-11-22T03:00:00", True, id="no_hours_means_always"),
    pytest.param(BERLIN_OFFICE, "2026-11-23T06:30:00", True, id="winter_0730_cet_open"),
    pytest.param(BERLIN_OFFICE, "2026-11-23T05:59:59", False, id="winter_0659_cet_closed"),
    pytest.param(BERLIN_OFFICE, "2026-11-23T20:00:00", False, id="end_is_exclusive"),
    pytest.param(BERLIN_OFFICE, "2026-11-28T12:00:00", False, id="saturday_closed"),
    pytest.param(BERLIN_OFFICE, "2026-07-06T05:30:00", True, id="summer_0730_cest_open"),
    pytest.param(BERLIN_OFFICE, "2026-07-06T04:30:00", False, id="summer_0630_cest_closed"),
    pytest.param(FRIDAY_NIGHT, "2026-11-27T22:00:00", True, id="crossing_start_inclusive"),
    pytest.param(FRIDAY_NIGHT, "2026-11-28T01:00:00", True, id="crossing_covers_saturday_small_hours"),
    pytest.param(FRIDAY_NIGHT, "2026-11-28T02:00:00", False, id="crossing_end_exclusive"),
    pytest.param(FRIDAY_NIGHT, "2026-11-27T01:00:00", False, id="crossing_belongs_to_its_start_day"),
    pytest.param(MONDAY_ALL_DAY, "2026-11-23T23:59:59", True, id="equal_start_end_is_24h"),
    pytest.param(MONDAY_ALL_DAY, "2026-11-24T00:00:00", False, id="equal_start_end_ends_next_midnight"),
    pytest.param(BERLIN_SUNDAY_EARLY, "2026-03-29T00:30:00", True, id="spring_forward_before_gap"),
    pytest.param(BERLIN_SUNDAY_EARLY, "2026-03-29T01:30:00", True, id="spring_forward_after_gap"),
    pytest.param(BERLIN_SUNDAY_EARLY, "2026-03-29T03:00:00", False, id="spring_forward_window_over_at_0500_cest"),
    pytest.param(NEW_YORK_SUNDAY_ONE_AM, "2026-11-01T05:30:00", True, id="fall_back_first_0130"),
    pytest.param(NEW_YORK_SUNDAY_ONE_AM, "2026-11-01T06:30:00", True, id="fall_back_repeated_0130"),
    pytest.param(NEW_YORK_SUNDAY_ONE_AM, "2026-11-01T07:30:00", False, id="fall_back_0230_est"),
    pytest.param(SPLIT_DAY, "2026-11-23T12:30:00", False, id="lunch_gap_between_windows"),
    pytest.param(SPLIT_DAY, "2026-11-23T13:00:00", True, id="second_window"),
]


@pytest.mark.parametrize(("active_hours", "at", "expected"), ACTIVE_CASES)
def test_is_active(active_hours: ActiveHours | None, at: str, expected: bool) -> None:
    assert is_active(active_hours, utc(at)) is expected


EVERY_DAY_ALL_DAY = hours("UTC", (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00", "00:00"))
BERLIN_MONDAY_MORNING = hours("Europe/Berlin", (["mon"], "07:00", "09:00"))

TRANSITION_CASES = [
    pytest.param(None, "2026-11-23T12:00:00", None, id="no_hours_never_changes"),
    pytest.param(EVERY_DAY_ALL_DAY, "2026-11-23T12:00:00", None, id="always_open_never_changes"),
    pytest.param(BERLIN_OFFICE, "2026-11-23T12:00:00", "2026-11-23T20:00:00", id="closes_tonight"),
    pytest.param(BERLIN_OFFICE, "2026-11-27T21:00:00", "2026-11-30T06:00:00", id="opens_after_the_weekend"),
    pytest.param(FRIDAY_NIGHT, "2026-11-27T23:00:00", "2026-11-28T02:00:00", id="crossing_window_closes"),
    pytest.param(BERLIN_MONDAY_MORNING, "2026-03-29T12:00:00", "2026-03-30T05:00:00", id="first_monday_in_cest"),
    pytest.param(SPLIT_DAY, "2026-11-23T12:00:00", "2026-11-23T13:00:00", id="next_window_same_day"),
]


@pytest.mark.parametrize(("active_hours", "at", "expected"), TRANSITION_CASES)
def test_next_transition(active_hours: ActiveHours | None, at: str, expected: str | None) -> None:
    assert next_transition(active_hours, utc(at)) == (utc(expected) if expected else None)


@pytest.mark.parametrize(("active_hours", "at", "expected"), TRANSITION_CASES[2:])
def test_activity_flips_exactly_at_the_transition(active_hours: ActiveHours, at: str, expected: str) -> None:
    assert is_active(active_hours, utc(expected)) is not is_active(active_hours, utc(at))
