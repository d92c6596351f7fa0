"""The sweep's duties against the case DB alone: one failing duty, or one failing case, leaves
the others to do their work and is reported by name, never by what the record says; a review is
overdue only once its decision target has passed in working days. No Prefect: the duties that
call it (resume-cases, due-action-reviews, stalled-runs) are left out where a test runs a sweep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from infra.db import session_scope
from models import Case, Deadline, Outbox
from models.enums import DeadlineKind, DeadlineStatus
from tasks import deadline_sweep, letters
from tasks.calendar import LONDON, england_and_wales, working_day_deadline
from tasks.casework import advance
from tasks.deadline_sweep import (
    ACCOUNT_REMINDERS,
    COMPLAINANT_LETTERS,
    OVERDUE_STEPS,
    PDR_REMINDERS,
    SweepReport,
    complainant_letters,
    overdue_steps,
    sweep,
)
from tasks.deadlines import set_deadline
from tasks.intake import create_case
from tests.support.cases import PSD, case_row, outbox, sample_referral

SECRET = "Jo Public of 1 Secret Street"  # what a failing case's error must never carry
WITHOUT_PREFECT = {"resume-cases", "due-action-reviews", "stalled-runs"}


@pytest.fixture(autouse=True)
def mail_left_unsent() -> Iterator[None]:
    """These tests read the outbox, never send it: their rows are set aside afterwards, so later
    SMTP tests in the session are not handed emails to fictional people."""
    with session_scope() as session:
        before = session.exec(select(func.max(Outbox.id))).one() or 0
    yield
    with session_scope() as session:
        session.exec(update(Outbox).where(col(Outbox.id) > before, col(Outbox.status) == "pending")
                     .values(status="sent").execution_options(synchronize_session=False))


def served_case(complaint: bool = False) -> int:
    """A stored case whose notice is served: awaiting the account."""
    overrides: dict[str, Any] = {}
    if complaint:
        overrides = {"origin": "public_complaint", "complainant": {
            "name": "Jo Public", "email": "jo.public@example.org",
            "review_body": "local_policing_body"}}
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(**overrides), actor=PSD)
        case_id = case.id
    assert case_id is not None
    advance(case_id)
    return case_id


def at_seven(day: date) -> datetime:
    return datetime.combine(day, time(7), tzinfo=LONDON)


def account_due_day(case_id: int) -> date:
    with session_scope() as session:
        deadline = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT)).one()
    return deadline.due_at.replace(tzinfo=UTC).astimezone(LONDON).date()


def owed_letter(case_id: int, due_at: datetime, number: int = 50) -> int:
    """A progress letter owed to the complainant at `due_at` (long past, so no other case's
    letter is due with it)."""
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        deadline = set_deadline(session, case, DeadlineKind.COMPLAINANT_UPDATE, due_at,
                                england_and_wales().version, number)
        assert deadline.id is not None
        return deadline.id


def kinds(case_id: int, kind: str) -> list[Outbox]:
    return [row for row in outbox(case_id) if row.kind == kind]


def letter_50(case_id: int) -> list[Outbox]:
    """The progress letter `owed_letter` makes owed (the case's own first letter aside)."""
    return [row for row in kinds(case_id, "complainant_progress")
            if row.key.endswith(":progress50")]


async def test_a_failing_duty_is_reported_by_name_and_the_other_duties_still_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = served_case()
    ran_after: list[str] = []

    def broken(as_of: datetime, report: SweepReport) -> None:
        raise KeyError(SECRET)

    def after(as_of: datetime, report: SweepReport) -> None:
        ran_after.append("pdr")

    duties = tuple(
        replace(d, run=broken) if d.name == COMPLAINANT_LETTERS
        else replace(d, run=after) if d.name == PDR_REMINDERS else d
        for d in deadline_sweep.DUTIES if d.name not in WITHOUT_PREFECT)
    monkeypatch.setattr(deadline_sweep, "DUTIES", duties)

    result = await sweep(at_seven(account_due_day(case_id)))

    [notice] = kinds(case_id, "officer_notice")
    assert [r.recipient for r in kinds(case_id, "account_reminder")] == [notice.recipient]
    assert ran_after == ["pdr"]
    assert result.errors == [
        "complainant-letters: the duty failed (KeyError); the other duties ran"]
    assert result.failed_duties == [COMPLAINANT_LETTERS]
    assert SECRET not in str(result.as_dict())


def test_one_failing_case_is_rolled_back_alone_and_named_by_its_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad, good = served_case(complaint=True), served_case(complaint=True)
    owed = datetime(2026, 3, 10, 9, tzinfo=UTC)
    bad_deadline, good_deadline = owed_letter(bad, owed), owed_letter(good, owed)
    real = letters.complainant_progress

    def progress(session: Any, case: Any, number: int, sent_at: datetime) -> bool:
        sent = real(session, case, number, sent_at)  # the letter is queued, then it fails
        if case.id == bad:
            raise ValueError(SECRET)
        return sent

    monkeypatch.setattr(letters, "complainant_progress", progress)
    report = SweepReport(as_of="test")
    complainant_letters(owed, report)

    assert report.errors == [f"complainant-letters: {case_row(bad).reference} not done "
                             f"(ValueError)"]
    assert SECRET not in str(report.as_dict())
    assert report.complainant_letters == 1
    assert len(letter_50(good)) == 1
    assert letter_50(bad) == []  # its half-done work was undone
    with session_scope() as session:
        assert session.get(Deadline, good_deadline).status is DeadlineStatus.MET  # type: ignore[union-attr]
        assert session.get(Deadline, bad_deadline).status is DeadlineStatus.OPEN  # type: ignore[union-attr]

    # The next sweep, with the fault gone, sends the letter the bad case still owes.
    monkeypatch.setattr(letters, "complainant_progress", real)
    again = SweepReport(as_of="test")
    complainant_letters(owed, again)
    assert again.errors == [] and again.complainant_letters == 1
    assert len(letter_50(bad)) == 1


def test_errors_are_listed_up_to_a_limit_per_duty() -> None:
    report = SweepReport(as_of="test")
    for n in range(deadline_sweep.MAX_ERRORS_LISTED + 5):
        report.case_failed(OVERDUE_STEPS, f"RPRP-{n:06d}", RuntimeError(SECRET))
    report.case_failed(ACCOUNT_REMINDERS, "RPRP-000001", RuntimeError(SECRET))
    assert len(report.errors) == deadline_sweep.MAX_ERRORS_LISTED + 1
    assert report.errors_not_listed == 5
    assert report.failed_duties == [OVERDUE_STEPS, ACCOUNT_REMINDERS]


def test_a_review_is_overdue_only_once_its_target_has_passed_in_working_days() -> None:
    """Review due Friday 6 March 2026; the 5-working-day decision target ends Friday 13 March,
    not Wednesday 11 March (5 calendar days)."""
    case_id = served_case()
    review_day = date(2026, 3, 6)
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        due = datetime.combine(review_day, time(23, 59, 59), tzinfo=LONDON)
        set_deadline(session, case, DeadlineKind.ACTION_REVIEW, due,
                     england_and_wales().version, 1)
    target = working_day_deadline(due, 5).astimezone(LONDON).date()
    assert target == date(2026, 3, 13)

    def reminded() -> int:
        return sum("action-plan review" in row.body_text
                   for row in kinds(case_id, "overdue_reminder"))

    overdue_steps(at_seven(date(2026, 3, 12)), SweepReport(as_of="thu"))
    assert reminded() == 0
    overdue_steps(at_seven(target), SweepReport(as_of="fri"))  # the target's own morning
    assert reminded() == 0
    overdue_steps(at_seven(target + timedelta(days=3)), SweepReport(as_of="mon"))
    assert reminded() == 2  # the reviewer and PSD, once each



async def test_a_run_counts_as_stalled_after_a_fraction_of_a_minute_if_so_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.settings import get_settings, reset_settings

    asked: list[timedelta] = []

    async def recover(stale_after: timedelta) -> list[str]:
        asked.append(stale_after)
        return ["run-1"]

    monkeypatch.setattr(deadline_sweep, "recover_stalled_runs", recover)
    try:
        monkeypatch.setenv("RPRP_STALLED_RUN_MINUTES", "0.25")
        reset_settings()
        report = SweepReport(as_of="test")
        await deadline_sweep.stalled_runs(datetime.now(UTC), report)
        assert asked == [timedelta(seconds=15)] and report.runs_recovered == 1
        monkeypatch.setenv("RPRP_STALLED_RUN_MINUTES", "0")
        reset_settings()
        with pytest.raises(ValueError, match="stalled_run_minutes"):
            get_settings()
    finally:
        monkeypatch.delenv("RPRP_STALLED_RUN_MINUTES", raising=False)
        reset_settings()
