"""Working days in England and Wales: weekends and bank or public holidays excluded.

Holidays are data, not rules, wherever data exists, because one-off holidays happen (the 2022
jubilee moved the spring bank holiday; the 2022 state funeral; the 2023 coronation). For each
year the official GOV.UK list for `england-and-wales` (the copy bundled with the
`govuk-bank-holidays` package, its JSON file read offline: never fetched, and without the
package's HTTP client) is the authority. The England and Wales rules (`tasks.bank_holiday_rules`,
the same days as workalendar's `UnitedKingdom`, which tests hold them to) fill in only the years
that list does not cover. Extra non-working days can be declared
in configuration (RPRP_EXTRA_HOLIDAYS) without a code change. Every computed deadline should be
stored with the calendar's `version`, so a later change to the data can be traced.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from tasks.bank_holiday_rules import bank_holidays

LONDON = ZoneInfo("Europe/London")
END_OF_DAY = time(23, 59, 59)
EXTRA_HOLIDAYS_ENV = "RPRP_EXTRA_HOLIDAYS"
# The calendar is materialised for these years; a date outside them is refused, not guessed.
FIRST_YEAR, LAST_YEAR = 2000, 2100


@dataclass(frozen=True)
class WorkingCalendar:
    """Every non-weekend day off in FIRST_YEAR..LAST_YEAR, and a version naming that list."""

    holidays: frozenset[date]
    version: str
    first_year: int = FIRST_YEAR
    last_year: int = LAST_YEAR

    def is_working_day(self, day: date) -> bool:
        """Not a Saturday, Sunday, or bank/public holiday in England and Wales."""
        if not self.first_year <= day.year <= self.last_year:
            raise ValueError(f"no holiday data for {day.isoformat()}: the working-day calendar "
                             f"covers {self.first_year} to {self.last_year}")
        return day.weekday() < 5 and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """The day itself if it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: date, n: int) -> date:
        """The nth working day after start. Start is never counted (day 0 = day of service)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the number of working days must be a whole number of at least 1, "
                             f"not {n!r}")
        day = start
        while n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how many days of a window have elapsed by `end`."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count


def _digest(days: Iterable[date]) -> str:
    return hashlib.sha256(",".join(sorted(d.isoformat() for d in days)).encode()).hexdigest()[:10]


@lru_cache(maxsize=1)
def _govuk_dates() -> frozenset[date]:
    """The GOV.UK england-and-wales list as bundled with the package (no network access)."""
    data = json.loads((files("govuk_bank_holidays") / "bank-holidays.json").read_text("utf-8"))
    events = data["england-and-wales"]["events"]
    return frozenset(date.fromisoformat(event["date"]) for event in events)


def _covered_years(govuk: frozenset[date]) -> frozenset[int]:
    """Years the GOV.UK list covers in full: it reaches that year's Christmas holidays."""
    return frozenset(d.year for d in govuk if d.month == 12 and d.day >= 25)


@lru_cache(maxsize=1)
def _rule_dates() -> dict[int, frozenset[date]]:
    """The England and Wales holidays by the rules, per year, for the fallback years."""
    return {year: bank_holidays(year) for year in range(FIRST_YEAR, LAST_YEAR + 1)}


def build_calendar(govuk: frozenset[date], extras: frozenset[date]) -> WorkingCalendar:
    """GOV.UK dates rule the years they cover; rules fill the rest; extras are added on top.

    For a year the GOV.UK list covers only in part, its dates are merged with the rules.
    """
    covered = _covered_years(govuk)
    holidays: set[date] = {d for d in govuk if FIRST_YEAR <= d.year <= LAST_YEAR}
    for year, days in _rule_dates().items():
        if year not in covered:
            holidays |= days
    holidays = {d for d in holidays if d.weekday() < 5}
    span = f"{min(covered)}-{max(covered)}" if covered else "none"
    version = f"ew-govuk-{span}-{_digest(holidays)}"
    version += f"+extra-{_digest(extras)}" if extras else "+extra-none"
    return WorkingCalendar(holidays=frozenset(holidays | extras), version=version)


def _to_date(value: object) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"extra holiday {value.isoformat()} must be a date, not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"extra holiday {value!r} is not an ISO date (YYYY-MM-DD)")


def parse_extra_holidays(text: str) -> frozenset[date]:
    """Comma-separated ISO dates (RPRP_EXTRA_HOLIDAYS) -> dates; a bad one is named in the error."""
    return frozenset(_to_date(part) for part in text.split(",") if part.strip())


def england_and_wales(extra_holidays: Iterable[date] | None = None) -> WorkingCalendar:
    """The calendar in force. Without explicit extras, RPRP_EXTRA_HOLIDAYS is read (each call)."""
    if extra_holidays is None:
        extras = parse_extra_holidays(os.environ.get(EXTRA_HOLIDAYS_ENV, ""))
    elif isinstance(extra_holidays, str):
        extras = parse_extra_holidays(extra_holidays)
    else:
        extras = frozenset(_to_date(value) for value in extra_holidays)
    return _calendar(extras)


@lru_cache(maxsize=32)
def _calendar(extras: frozenset[date]) -> WorkingCalendar:
    return build_calendar(_govuk_dates(), extras)


def parse_instant(text: str) -> datetime:
    """ISO 8601; without an offset it is London wall-clock time. Returns aware UTC for storage."""
    try:
        value = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time "
                         f"(e.g. 2025-06-06T18:00 or 2025-06-06T17:00Z)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=LONDON)
    return value.astimezone(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone (store instants in UTC)")


def service_day(served_at: datetime) -> date:
    """The Europe/London calendar date of service: the day the statutory count starts after."""
    _require_aware(served_at, "served_at")
    return served_at.astimezone(LONDON).date()


def working_day_deadline(served_at: datetime, working_days: int,
                         calendar: WorkingCalendar | None = None) -> datetime:
    """End (23:59:59 London) of the nth working day after the London day of service, in UTC."""
    calendar = calendar or england_and_wales()
    last_day = calendar.add_working_days(service_day(served_at), working_days)
    return datetime.combine(last_day, END_OF_DAY, tzinfo=LONDON).astimezone(UTC)


def is_on_time(received_at: datetime, deadline: datetime) -> bool:
    """Received no later than the deadline's second: 23:59:59.9 on the last day still counts."""
    _require_aware(received_at, "received_at")
    _require_aware(deadline, "deadline")
    return received_at.replace(microsecond=0) <= deadline
