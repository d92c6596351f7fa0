"""England and Wales bank holidays by their rules, for the years the GOV.UK list does not cover.

The rules are the Banking and Financial Dealings Act 1971's schedule as proclaimed each year:
New Year's Day, Good Friday, Easter Monday, the first and last Mondays of May, the last Monday
of August, Christmas Day and Boxing Day, with a weekday in lieu when New Year's Day, Christmas
Day or Boxing Day falls at a weekend; and the one-off days proclaimed in the years before the
GOV.UK list begins (2012). They are the same days workalendar's `UnitedKingdom` gives (its
calendar is this module's test oracle); written out here because importing workalendar loads
every European calendar and the astronomy packages, seconds of a short step's start-up.
A future one-off holiday cannot be known here: the GOV.UK list (and RPRP_EXTRA_HOLIDAYS) carry
those.
"""

from __future__ import annotations

from datetime import date, timedelta

MONDAY, SATURDAY, SUNDAY = 0, 5, 6

# Proclaimed one-off days, and the years a regular holiday was moved for one.
ONE_OFF: dict[int, tuple[date, ...]] = {
    1999: (date(1999, 12, 31),),  # the millennium
    2002: (date(2002, 6, 3),),  # the Golden Jubilee
    2011: (date(2011, 4, 29),),  # the royal wedding
    2012: (date(2012, 6, 5),),  # the Diamond Jubilee
    2022: (date(2022, 6, 3), date(2022, 9, 19)),  # the Platinum Jubilee; the state funeral
}
EARLY_MAY_MOVED = {2020: date(2020, 5, 8)}  # VE Day's 75th anniversary
SPRING_MOVED = {2002: date(2002, 6, 4), 2012: date(2012, 6, 4), 2022: date(2022, 6, 2)}


def easter_sunday(year: int) -> date:
    """Western Easter (the anonymous Gregorian computus of Meeus, Jones and Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_monday(year: int, month: int) -> date:
    day = date(year, month, 1)
    return day + timedelta(days=(MONDAY - day.weekday()) % 7)


def _last_monday(year: int, month: int) -> date:
    last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - MONDAY) % 7)


def _christmas_in_lieu(year: int) -> tuple[date, ...]:
    christmas = date(year, 12, 25)
    if christmas.weekday() == SATURDAY:  # Christmas on Monday 27th, Boxing Day on Tuesday 28th
        return (date(year, 12, 27), date(year, 12, 28))
    if christmas.weekday() == SUNDAY:  # Boxing Day on Monday 26th, Christmas on Tuesday 27th
        return (date(year, 12, 27),)
    if christmas.weekday() == 4:  # Boxing Day on Saturday: Monday 28th
        return (date(year, 12, 28),)
    return ()


def bank_holidays(year: int) -> frozenset[date]:
    """The year's days off by the rules, weekend days included (a caller drops them)."""
    easter = easter_sunday(year)
    new_year = date(year, 1, 1)
    days = {
        new_year, easter - timedelta(days=2), easter, easter + timedelta(days=1),
        EARLY_MAY_MOVED.get(year, _first_monday(year, 5)),
        SPRING_MOVED.get(year, _last_monday(year, 5)),
        _last_monday(year, 8), date(year, 12, 25), date(year, 12, 26),
        *_christmas_in_lieu(year), *ONE_OFF.get(year, ()),
    }
    if new_year.weekday() in (SATURDAY, SUNDAY):
        days.add(new_year + timedelta(days=(MONDAY - new_year.weekday()) % 7))
    return frozenset(days)
