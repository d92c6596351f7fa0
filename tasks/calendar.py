"""Working days in England and Wales: weekends and bank holidays excluded, one-off ones too.

GOV.UK's published list (bundled with `govuk-bank-holidays`, read offline) is the authority for
the years it covers; workalendar's rules fill in years beyond it. Extra non-working days can be
declared in RPRP_EXTRA_HOLIDAYS. Every deadline stores the version of the list it was computed on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from govuk_bank_holidays.bank_holidays import BankHolidays
from workalendar.europe import UnitedKingdom

LONDON = ZoneInfo("Europe/London")
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class WorkingCalendar:
    holidays: frozenset[date]
    version: str
    fallback_from: int  # first year not covered by the GOV.UK list

    def is_working_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        if day.year >= self.fallback_from and _rule_holiday(day):
            return False
        return day not in self.holidays

    def next_working_day(self, day: date) -> date:
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: date, n: int) -> date:
        """The nth working day after start; start itself is never counted."""
        if n < 1:
            raise ValueError("the number of working days must be at least 1")
        day = start
        while n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count


@lru_cache(maxsize=4096)
def _rule_holiday(day: date) -> bool:
    return UnitedKingdom().is_holiday(day)


@lru_cache(maxsize=1)
def _govuk_dates() -> tuple[frozenset[date], int]:
    data = BankHolidays(use_cached_holidays=True).get_holidays(
        division=BankHolidays.ENGLAND_AND_WALES)
    dates = frozenset(item["date"] for item in data)
    return dates, max(d.year for d in dates) + 1


def parse_extra_holidays(text: str) -> frozenset[date]:
    """'2026-12-24,2026-12-31' -> dates; a bad value names itself in the error."""
    days = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            days.add(date.fromisoformat(part))
        except ValueError as exc:
            raise ValueError(f"extra holiday '{part}' is not an ISO date (YYYY-MM-DD)") from exc
    return frozenset(days)


def england_and_wales(extra_holidays: Iterable[date] | None = None) -> WorkingCalendar:
    """The calendar in force: GOV.UK list, rules beyond it, plus declared extra holidays."""
    if extra_holidays is None:
        extras = parse_extra_holidays(os.environ.get("RPRP_EXTRA_HOLIDAYS", ""))
    else:
        extras = frozenset(extra_holidays)
    return _calendar(extras)


@lru_cache(maxsize=32)
def _calendar(extras: frozenset[date]) -> WorkingCalendar:
    govuk, fallback_from = _govuk_dates()
    digest = hashlib.sha256(",".join(sorted(map(str, govuk))).encode()).hexdigest()[:8]
    version = f"ew-govuk-to{fallback_from - 1}-{digest}"
    if extras:
        extra_digest = hashlib.sha256(",".join(sorted(map(str, extras))).encode()).hexdigest()
        version += f"+extra-{extra_digest[:8]}"
    return WorkingCalendar(holidays=govuk | extras, version=version, fallback_from=fallback_from)


def parse_instant(text: str) -> datetime:
    """ISO 8601; without an offset it is read as Europe/London. Returns aware UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an ISO 8601 date and time") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=LONDON)
    return value.astimezone(UTC)


def service_day(served_at: datetime) -> date:
    """The Europe/London calendar date on which a notice was served."""
    if served_at.tzinfo is None:
        raise ValueError("served_at must carry a time zone")
    return served_at.astimezone(LONDON).date()


def working_day_deadline(served_at: datetime, working_days: int,
                         calendar: WorkingCalendar | None = None) -> datetime:
    """The end (23:59:59 London) of the nth working day after the day of service, in UTC."""
    calendar = calendar or england_and_wales()
    last_day = calendar.add_working_days(service_day(served_at), working_days)
    return datetime.combine(last_day, END_OF_DAY, tzinfo=LONDON).astimezone(UTC)


def is_on_time(received_at: datetime, deadline: datetime) -> bool:
    return received_at.astimezone(UTC) <= deadline.astimezone(UTC)
