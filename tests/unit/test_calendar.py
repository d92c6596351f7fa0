"""Working-day deadline arithmetic (domain section 3.4 and section 8 edge cases 1-7, 12)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from workalendar.europe import UnitedKingdom

import tasks.calendar as calendar_module
from rprp.commands.deadline import run as deadline_command
from tasks.bank_holiday_rules import bank_holidays, easter_sunday
from tasks.calendar import (
    LONDON,
    build_calendar,
    england_and_wales,
    is_on_time,
    parse_extra_holidays,
    parse_instant,
    service_day,
    working_day_deadline,
)


@pytest.fixture(autouse=True)
def _no_configured_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's RPRP_EXTRA_HOLIDAYS must not change these results."""
    monkeypatch.delenv("RPRP_EXTRA_HOLIDAYS", raising=False)


def deadline_date(served: str, days: int = 5, **kwargs: object) -> date:
    return working_day_deadline(parse_instant(served), days, **kwargs).astimezone(LONDON).date()


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


# Section 3.4 worked examples and edge cases 1-6.
@pytest.mark.parametrize(("served", "due", "why"), [
    ("2025-05-23T10:00", "2025-06-02", "26 May 2025 is the spring bank holiday"),
    ("2025-04-17T10:00", "2025-04-28", "Good Friday 18 Apr and Easter Monday 21 Apr"),
    ("2025-12-23T10:00", "2026-01-02", "Christmas, Boxing Day and New Year's Day"),
    ("2025-12-24T10:00", "2026-01-05", "Christmas Eve is served; 25, 26 Dec and 1 Jan excluded"),
    ("2025-06-06T18:00", "2025-06-13", "Friday evening: the window counts from Monday"),
    ("2025-06-07T11:00", "2025-06-13", "a Saturday service counts like the Friday"),
    ("2025-06-08T11:00", "2025-06-13", "a Sunday service counts like the Friday"),
    ("2022-05-31T10:00", "2022-06-09", "jubilee: spring holiday moved to 2 June, extra 3 June"),
    ("2022-09-16T10:00", "2022-09-26", "state funeral of Queen Elizabeth II on 19 Sep 2022"),
    ("2023-05-05T10:00", "2023-05-15", "coronation of King Charles III on 8 May 2023"),
    ("2026-12-23T10:00", "2027-01-04", "Boxing Day 2026 is a Saturday: substitute 28 December"),
    ("2027-12-23T10:00", "2028-01-04", "Christmas 2027 at a weekend: substitutes 27 and 28 Dec"),
])
def test_worked_examples(served: str, due: str, why: str) -> None:
    assert deadline_date(served).isoformat() == due, why


def test_friday_evening_and_saturday_service_share_a_deadline() -> None:
    assert deadline_date("2025-06-06T18:00") == deadline_date("2025-06-07T09:00")


@pytest.mark.parametrize(("day", "why"), [
    ("2025-05-26", "spring bank holiday"),
    ("2025-04-18", "Good Friday"),
    ("2025-04-21", "Easter Monday"),
    ("2025-12-25", "Christmas Day"),
    ("2025-12-26", "Boxing Day"),
    ("2026-01-01", "New Year's Day"),
    ("2022-06-02", "spring bank holiday moved for the jubilee"),
    ("2022-06-03", "Platinum Jubilee bank holiday"),
    ("2022-09-19", "state funeral"),
    ("2023-05-08", "coronation"),
    ("2026-12-28", "Boxing Day substitute"),
    ("2027-12-27", "Christmas Day substitute"),
    ("2027-12-28", "Boxing Day substitute"),
])
def test_holidays_are_not_working_days(day: str, why: str) -> None:
    assert not england_and_wales().is_working_day(date.fromisoformat(day)), why


@pytest.mark.parametrize("day", ["2022-05-30", "2025-12-24", "2025-12-29", "2026-12-29"])
def test_ordinary_weekdays_are_working_days(day: str) -> None:
    """30 May 2022 would be the spring holiday by the 'last Monday in May' rule; it was not."""
    assert england_and_wales().is_working_day(date.fromisoformat(day))


def test_one_off_holidays_come_from_the_govuk_data_not_from_a_rule() -> None:
    """Edge case 6: drop the GOV.UK data and the coronation holiday disappears with it."""
    rules_only = build_calendar(govuk=frozenset(), extras=frozenset())
    assert rules_only.is_working_day(date(2023, 5, 8))
    assert not england_and_wales().is_working_day(date(2023, 5, 8))
    # workalendar 17.0 lacks the coronation; the GOV.UK list supplies it.
    assert date(2023, 5, 8) not in {d for d, _ in UnitedKingdom().holidays(2023)}


def test_govuk_data_rules_the_years_it_covers() -> None:
    """A fake GOV.UK list for 2022 without 2 and 3 June is obeyed over the rules."""
    real_2022 = {d for d in england_and_wales().holidays if d.year == 2022}
    fake = frozenset(real_2022 - {date(2022, 6, 2), date(2022, 6, 3)})
    calendar = build_calendar(govuk=fake, extras=frozenset())
    assert calendar.is_working_day(date(2022, 6, 2))
    assert calendar.is_working_day(date(2022, 5, 30))
    assert calendar.version != england_and_wales().version


def test_the_module_hard_codes_no_holiday_dates() -> None:
    source = inspect.getsource(calendar_module)
    assert not re.findall(r"\b\d{4}-\d{2}-\d{2}\b|date\(\s*\d", source)


@pytest.mark.parametrize("year", range(1990, 2101))
def test_the_rules_give_the_days_workalendar_gives(year: int) -> None:
    """workalendar's UnitedKingdom is the oracle the hand-written rules are held to, every year."""
    oracle = {day for day, _ in UnitedKingdom().holidays(year) if day.weekday() < 5}
    assert {day for day in bank_holidays(year) if day.weekday() < 5} == oracle


@pytest.mark.parametrize(("year", "easter"), [
    (2000, date(2000, 4, 23)), (2008, date(2008, 3, 23)), (2011, date(2011, 4, 24)),
    (2019, date(2019, 4, 21)), (2038, date(2038, 4, 25)), (2285, date(2285, 3, 22)),
])
def test_easter_sunday_by_the_computus(year: int, easter: date) -> None:
    """The earliest (22 March) and latest (25 April) Easters are inside the computus's range."""
    assert easter_sunday(year) == easter


def test_the_calendar_loads_without_workalendar_or_an_http_client() -> None:
    """Every short step imports the calendar: it must not pull in every European calendar,
    the astronomy packages or `requests` (issue 15: a step's start-up is mostly imports)."""
    probe = ("import sys, tasks.calendar, flows.case_lifecycle\n"
             "print(sorted(m for m in ('workalendar', 'requests', 'convertdate', 'pymeeus')"
             " if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_years_beyond_the_govuk_list_fall_back_to_the_rules() -> None:
    calendar = england_and_wales()
    assert not calendar.is_working_day(date(2029, 3, 30))  # Good Friday 2029
    assert not calendar.is_working_day(date(2011, 4, 29))  # royal wedding, before the list
    assert calendar.is_working_day(date(2029, 3, 29))


def test_dates_outside_the_calendar_range_are_refused() -> None:
    with pytest.raises(ValueError, match="2101"):
        england_and_wales().is_working_day(date(2101, 1, 3))


def test_next_working_day() -> None:
    calendar = england_and_wales()
    assert calendar.next_working_day(date(2025, 6, 6)) == date(2025, 6, 6)
    assert calendar.next_working_day(date(2025, 6, 7)) == date(2025, 6, 9)
    assert calendar.next_working_day(date(2025, 12, 25)) == date(2025, 12, 29)


def test_working_days_between_counts_the_half_open_interval() -> None:
    calendar = england_and_wales()
    assert calendar.working_days_between(date(2025, 5, 23), date(2025, 6, 2)) == 5
    assert calendar.working_days_between(date(2025, 6, 9), date(2025, 6, 9)) == 0
    assert calendar.working_days_between(date(2025, 6, 9), date(2025, 6, 10)) == 1
    assert calendar.working_days_between(date(2025, 6, 10), date(2025, 6, 9)) == 0


def test_working_days_between_inverts_add_working_days() -> None:
    calendar = england_and_wales()
    start = date(2025, 12, 1)
    for offset in range(60):
        day = start + timedelta(days=offset)
        for n in (1, 5, 20):
            assert calendar.working_days_between(day, calendar.add_working_days(day, n)) == n


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_working_days_must_be_a_whole_number_from_one(n: object) -> None:
    with pytest.raises(ValueError):
        england_and_wales().add_working_days(date(2025, 6, 6), n)  # type: ignore[arg-type]


# Time zones (edge case 7 and the 23:30 / 00:30 BST case).
def test_parse_instant_reads_naive_times_as_london() -> None:
    assert parse_instant("2025-06-09T23:30") == datetime(2025, 6, 9, 22, 30, tzinfo=UTC)
    assert parse_instant("2025-01-09T23:30") == datetime(2025, 1, 9, 23, 30, tzinfo=UTC)
    assert parse_instant("2025-06-09T23:30Z") == datetime(2025, 6, 9, 23, 30, tzinfo=UTC)
    assert parse_instant("2025-06-09T23:30+02:00").tzinfo is UTC


@pytest.mark.parametrize("text", ["", "next tuesday", "2025-13-01T10:00", "2025-06-09 25:00"])
def test_parse_instant_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant(text)


def test_service_day_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="time zone"):
        service_day(datetime(2025, 6, 9, 12, 0))


def test_half_past_eleven_and_half_past_midnight_in_summer_time_are_different_days() -> None:
    """23:30 UTC on a BST evening is 00:30 the next London day: the service day moves."""
    late_evening = parse_instant("2025-06-09T23:30+01:00")  # Monday 23:30 London
    after_midnight = parse_instant("2025-06-09T23:30Z")  # Tuesday 00:30 London
    assert service_day(late_evening) == date(2025, 6, 9)
    assert service_day(after_midnight) == date(2025, 6, 10)
    assert working_day_deadline(late_evening, 5).astimezone(LONDON).date() == date(2025, 6, 16)
    assert working_day_deadline(after_midnight, 5).astimezone(LONDON).date() == date(2025, 6, 17)


def test_deadline_is_the_end_of_the_day_in_london_stored_in_utc() -> None:
    summer = working_day_deadline(parse_instant("2025-06-06T18:00"), 5)
    winter = working_day_deadline(parse_instant("2025-01-06T09:00"), 5)
    assert summer == datetime(2025, 6, 13, 22, 59, 59, tzinfo=UTC)  # 23:59:59 BST
    assert winter == datetime(2025, 1, 13, 23, 59, 59, tzinfo=UTC)  # 23:59:59 GMT
    assert summer.utcoffset() == timedelta(0)
    assert summer.astimezone(LONDON).time().isoformat() == "23:59:59"


def test_served_with_any_offset_gives_the_same_deadline_as_the_same_instant() -> None:
    plus_two = datetime(2025, 6, 10, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 00:30 BST
    assert working_day_deadline(plus_two, 5) == working_day_deadline(
        parse_instant("2025-06-10T00:30"), 5)


def test_an_account_at_the_last_second_is_on_time_and_a_second_later_is_late() -> None:
    deadline = working_day_deadline(parse_instant("2025-06-06T18:00"), 5)
    assert is_on_time(parse_instant("2025-06-13T23:59:58"), deadline)
    assert is_on_time(parse_instant("2025-06-13T23:59:59.900"), deadline)
    assert not is_on_time(parse_instant("2025-06-14T00:00:01"), deadline)


def test_on_time_refuses_naive_datetimes() -> None:
    deadline = working_day_deadline(parse_instant("2025-06-06T18:00"), 5)
    with pytest.raises(ValueError):
        is_on_time(datetime(2025, 6, 13, 12, 0), deadline)


def test_deadline_across_the_october_clock_change() -> None:
    """Served in BST, due in GMT: clocks go back at 02:00 BST on Sunday 26 October 2025."""
    deadline = working_day_deadline(parse_instant("2025-10-23T10:00"), 5)
    assert deadline.astimezone(LONDON).date() == date(2025, 10, 30)
    assert deadline == datetime(2025, 10, 30, 23, 59, 59, tzinfo=UTC)  # GMT: UTC == London
    assert is_on_time(parse_instant("2025-10-30T23:59:58"), deadline)
    assert not is_on_time(parse_instant("2025-10-31T00:00:01"), deadline)


def test_deadline_across_the_march_clock_change() -> None:
    """Served in GMT, due in BST: clocks go forward on Sunday 30 March 2025."""
    deadline = working_day_deadline(parse_instant("2025-03-27T10:00"), 5)
    assert deadline == datetime(2025, 4, 3, 22, 59, 59, tzinfo=UTC)
    assert is_on_time(parse_instant("2025-04-03T23:59:58"), deadline)
    assert not is_on_time(parse_instant("2025-04-04T00:00:01"), deadline)


@freeze_time("2025-06-06 17:00:00")  # 18:00 BST on a Friday
def test_serving_now_uses_the_london_date_of_the_frozen_clock() -> None:
    assert working_day_deadline(datetime.now(UTC), 5).astimezone(LONDON).date() == date(2025, 6, 13)


@freeze_time("2025-06-09 23:30:00")  # 00:30 BST on Tuesday 10 June
def test_serving_now_just_after_london_midnight_counts_from_the_london_day() -> None:
    assert service_day(datetime.now(UTC)) == date(2025, 6, 10)
    assert working_day_deadline(datetime.now(UTC), 5).astimezone(LONDON).date() == date(2025, 6, 17)


@freeze_time("2025-12-31 23:30:00")  # GMT: still 31 December in London
def test_new_years_eve_late_service_counts_from_new_year() -> None:
    assert working_day_deadline(datetime.now(UTC), 5).astimezone(LONDON).date() == date(2026, 1, 8)


# Extra holidays and the calendar version.
def test_extra_holidays_by_argument_move_the_deadline_and_change_the_version() -> None:
    plain = england_and_wales(set())
    extra = england_and_wales({date(2025, 6, 10)})
    assert plain.version.endswith("+extra-none")
    assert extra.version != plain.version
    served = parse_instant("2025-06-06T18:00")
    assert working_day_deadline(served, 5, extra).astimezone(LONDON).date() == date(2025, 6, 16)
    assert working_day_deadline(served, 5, plain).astimezone(LONDON).date() == date(2025, 6, 13)


def test_version_is_deterministic_and_depends_on_the_extras() -> None:
    a = england_and_wales([date(2025, 6, 10), date(2025, 6, 11)])
    b = england_and_wales([date(2025, 6, 11), date(2025, 6, 10), date(2025, 6, 10)])
    c = england_and_wales([date(2025, 6, 10)])
    assert a.version == b.version
    assert a.version != c.version
    assert england_and_wales().version == england_and_wales([]).version
    assert a is b  # cached per set of extras


def test_extra_holidays_by_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_EXTRA_HOLIDAYS", "2025-06-10, 2025-06-11")
    calendar = england_and_wales()
    assert not calendar.is_working_day(date(2025, 6, 10))
    assert calendar.version == england_and_wales([date(2025, 6, 10), date(2025, 6, 11)]).version
    assert deadline_date("2025-06-06T18:00") == date(2025, 6, 17)


def test_an_explicit_value_overrides_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_EXTRA_HOLIDAYS", "2025-06-10")
    assert england_and_wales([]).is_working_day(date(2025, 6, 10))


def test_invalid_extra_holiday_in_configuration_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_EXTRA_HOLIDAYS", "2025-06-10,10/06/2025")
    with pytest.raises(ValueError, match="10/06/2025"):
        england_and_wales()


@pytest.mark.parametrize("bad", [["2025-13-01"], [datetime(2025, 6, 10, 9, 0)], [20250610],
                                 "2025-06-10,nope"])
def test_invalid_extra_holidays_by_argument_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="extra holiday"):
        england_and_wales(bad)  # type: ignore[arg-type]


def test_parse_extra_holidays() -> None:
    assert parse_extra_holidays("") == frozenset()
    assert parse_extra_holidays(" 2025-06-10 ,,2025-06-11,") == {date(2025, 6, 10),
                                                                 date(2025, 6, 11)}
    with pytest.raises(ValueError, match="2025-13-01"):
        parse_extra_holidays("2025-06-10,2025-13-01")


# Edge case 12 (the PDR window is calendar months, not working days).
def test_pdr_clock_from_a_leap_day_report() -> None:
    from tasks.report import add_months

    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)


# The `rprp deadline` command.
def test_deadline_command_prints_the_date_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "2025-05-23T10:00", "--working-days", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[-1] == "2025-06-02"
    assert england_and_wales().version in out
    assert "2025-06-02T22:59:59Z" in out
    assert "BST" in out


def test_deadline_command_defaults_to_five_working_days(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "2025-04-17T10:00"]) == 0
    assert last_line(capsys) == "2025-04-28"
    assert deadline_command(["--served", "2025-04-17T10:00", "--working-days", "1"]) == 0
    assert last_line(capsys) == "2025-04-22"


def test_deadline_command_reads_a_naive_time_as_london(capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "2025-06-09T23:30"]) == 0
    assert last_line(capsys) == "2025-06-16"
    assert deadline_command(["--served", "2025-06-09T23:30+00:00"]) == 0
    assert last_line(capsys) == "2025-06-17"


def test_deadline_command_takes_extra_holidays(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--served", "2025-06-06T18:00", "--extra-holiday", "2025-06-10",
            "--extra-holiday", "2025-06-11"]
    assert deadline_command(argv) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "2025-06-17"
    assert "+extra-none" not in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--served", "next tuesday"], "next tuesday"),
    ([], "--served"),
    (["--served", "2025-06-06T18:00", "--working-days", "five"], "five"),
    (["--served", "2025-06-06T18:00", "--working-days", "0"], "at least 1"),
    (["--served", "2025-06-06T18:00", "--extra-holiday", "2025-02-30"], "2025-02-30"),
    (["--served", "2101-01-03T10:00"], "2101"),
])
def test_deadline_command_refuses_bad_input(argv: list[str], needle: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert needle in captured.err
    assert len(captured.err.strip().splitlines()) == 1
