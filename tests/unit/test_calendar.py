"""Working-day deadline arithmetic (domain section 3.4 and edge cases 1-7, 11-12)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from freezegun import freeze_time

from rprp.commands.deadline import run as deadline_command
from tasks.calendar import (
    LONDON,
    england_and_wales,
    is_on_time,
    parse_extra_holidays,
    parse_instant,
    service_day,
    working_day_deadline,
)
from tasks.report import add_months


def deadline_date(served: str, days: int = 5, **kwargs: object) -> date:
    return working_day_deadline(parse_instant(served), days, **kwargs).astimezone(LONDON).date()


@pytest.mark.parametrize(("served", "due", "why"), [
    ("2025-05-23T10:00", "2025-06-02", "26 May 2025 is the spring bank holiday"),
    ("2025-04-17T10:00", "2025-04-28", "Good Friday and Easter Monday"),
    ("2025-12-23T10:00", "2026-01-02", "Christmas, Boxing Day and New Year's Day"),
    ("2025-12-24T10:00", "2026-01-05", "Christmas Eve is a working day"),
    ("2025-06-06T18:00", "2025-06-13", "Friday evening: the window counts from Monday"),
    ("2025-06-07T11:00", "2025-06-13", "a Saturday service counts like the Friday"),
    ("2025-06-08T11:00", "2025-06-13", "a Sunday service counts like the Friday"),
    ("2022-05-31T10:00", "2022-06-09", "2022 jubilee: spring holiday moved to 2 June, extra 3 June"),
    ("2022-09-16T10:00", "2022-09-26", "state funeral of Queen Elizabeth II"),
    ("2023-05-05T10:00", "2023-05-15", "coronation of King Charles III"),
    ("2026-12-23T10:00", "2027-01-04", "Boxing Day 2026 is a Saturday: substitute 28 December"),
    ("2027-12-23T10:00", "2028-01-04", "Christmas 2027 at a weekend: substitutes 27 and 28 December"),
])
def test_worked_examples(served: str, due: str, why: str) -> None:
    assert deadline_date(served).isoformat() == due, why


@pytest.mark.parametrize("day", ["2022-06-02", "2022-06-03", "2022-09-19", "2023-05-08",
                                 "2026-12-28", "2027-12-27", "2027-12-28", "2025-12-25",
                                 "2025-04-18"])
def test_one_off_and_substitute_holidays_are_not_working_days(day: str) -> None:
    assert not england_and_wales().is_working_day(date.fromisoformat(day))


def test_the_moved_2022_spring_holiday_left_30_may_a_working_day() -> None:
    """The rule 'last Monday of May' would be wrong in 2022: the data decides."""
    assert england_and_wales().is_working_day(date(2022, 5, 30))


def test_deadline_is_the_end_of_the_day_in_london_stored_in_utc() -> None:
    summer = working_day_deadline(parse_instant("2025-06-06T18:00"), 5)
    winter = working_day_deadline(parse_instant("2025-01-06T09:00"), 5)
    assert summer == datetime(2025, 6, 13, 22, 59, 59, tzinfo=UTC)  # 23:59:59 BST
    assert winter == datetime(2025, 1, 13, 23, 59, 59, tzinfo=UTC)  # 23:59:59 GMT


def test_half_past_eleven_and_half_past_midnight_in_summer_time_are_different_days() -> None:
    """23:30 UTC on a BST evening is 00:30 the next London day: the service day moves."""
    late_evening = parse_instant("2025-06-09T23:30+01:00")  # Monday 23:30 London
    after_midnight = parse_instant("2025-06-09T23:30Z")  # Tuesday 00:30 London
    assert service_day(late_evening) == date(2025, 6, 9)
    assert service_day(after_midnight) == date(2025, 6, 10)
    assert deadline_date("2025-06-09T23:30+01:00") == date(2025, 6, 16)
    assert deadline_date("2025-06-09T23:30Z") == date(2025, 6, 17)


def test_an_account_at_the_last_second_is_on_time_and_a_second_later_is_late() -> None:
    deadline = working_day_deadline(parse_instant("2025-06-06T18:00"), 5)
    assert is_on_time(parse_instant("2025-06-13T23:59:58"), deadline)
    assert not is_on_time(parse_instant("2025-06-14T00:00:01"), deadline)


def test_deadline_across_the_october_clock_change() -> None:
    """Served in BST, due in GMT (clocks go back on Sunday 26 October 2025)."""
    deadline = working_day_deadline(parse_instant("2025-10-23T10:00"), 5)
    assert deadline.astimezone(LONDON).date() == date(2025, 10, 30)
    assert deadline == datetime(2025, 10, 30, 23, 59, 59, tzinfo=UTC)
    assert not is_on_time(parse_instant("2025-10-31T00:00:01"), deadline)


@freeze_time("2025-06-06 17:00:00")
def test_serving_now_uses_the_london_date_of_the_frozen_clock() -> None:
    now = datetime.now(UTC)
    assert working_day_deadline(now, 5).astimezone(LONDON).date() == date(2025, 6, 13)


@freeze_time("2025-12-31 23:30:00")
def test_new_years_eve_late_service_counts_from_new_year() -> None:
    now = datetime.now(UTC)
    assert working_day_deadline(now, 5).astimezone(LONDON).date() == date(2026, 1, 8)


def test_extra_holidays_by_argument_move_the_deadline_and_change_the_version() -> None:
    plain = england_and_wales(set())
    extra = england_and_wales({date(2025, 6, 10)})
    assert extra.version != plain.version
    served = parse_instant("2025-06-06T18:00")
    assert working_day_deadline(served, 5, extra).astimezone(LONDON).date() == date(2025, 6, 16)


def test_extra_holidays_by_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_EXTRA_HOLIDAYS", "2025-06-10, 2025-06-11")
    calendar = england_and_wales()
    assert not calendar.is_working_day(date(2025, 6, 10))
    assert "+extra-" in calendar.version
    assert deadline_date("2025-06-06T18:00", calendar=calendar) == date(2025, 6, 17)


def test_invalid_extra_holiday_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match="2025-13-01"):
        parse_extra_holidays("2025-06-10,2025-13-01")


def test_working_days_must_be_positive() -> None:
    with pytest.raises(ValueError):
        england_and_wales().add_working_days(date(2025, 6, 6), 0)


def test_pdr_clock_from_a_leap_day_report() -> None:
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)


def test_deadline_command_prints_the_date_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "2025-05-23T10:00", "--working-days", "5"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2025-06-02"


def test_deadline_command_reads_a_naive_time_as_london(capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "2025-06-09T23:30"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2025-06-16"
    assert deadline_command(["--served", "2025-06-09T23:30+00:00"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2025-06-17"


def test_deadline_command_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert deadline_command(["--served", "next tuesday"]) == 2
    assert "next tuesday" in capsys.readouterr().err
