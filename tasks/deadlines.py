"""Deadlines on the case record: computed once, stored in UTC with the calendar version used."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import Session, select

from infra.settings import get_settings
from models import Case, Deadline, as_utc, to_db
from models.enums import DeadlineKind, DeadlineStatus
from tasks.calendar import LONDON, england_and_wales, working_day_deadline


def working_days_after(start: datetime, working_days: int) -> tuple[datetime, str]:
    """End (23:59:59 London) of the nth working day after start's London date, and the version."""
    calendar = england_and_wales()
    return working_day_deadline(start, working_days, calendar), calendar.version


def set_deadline(session: Session, case: Case, kind: DeadlineKind, due_at: datetime,
                 calendar_version: str, round: int = 1) -> Deadline:
    """One deadline per (case, kind, round): a replay finds it instead of adding a second."""
    existing = session.exec(
        select(Deadline).where(Deadline.case_id == case.id, Deadline.kind == kind,
                               Deadline.round == round)
    ).first()
    if existing is not None:
        return existing
    assert case.id is not None
    deadline = Deadline(case_id=case.id, kind=kind, round=round, due_at=to_db(due_at),
                        calendar_version=calendar_version, status=DeadlineStatus.OPEN)
    session.add(deadline)
    session.flush()
    return deadline


def set_working_day_target(session: Session, case: Case, kind: DeadlineKind, working_days: int,
                           now: datetime | None = None) -> Deadline:
    """A force-policy target for a pending step, counted in working days from now."""
    due_at, version = working_days_after(now or datetime.now(UTC), working_days)
    return set_deadline(session, case, kind, due_at, version, round=case.transition_count)


def account_deadline(session: Session, case: Case) -> Deadline | None:
    return session.exec(
        select(Deadline).where(Deadline.case_id == case.id, Deadline.kind == DeadlineKind.ACCOUNT,
                               Deadline.round == case.notice_round)
    ).first()


def london_date(value: datetime) -> date:
    return as_utc(value).astimezone(LONDON).date()


def date_text(value: datetime | date) -> str:
    """'Friday 13 June 2025': how dates read in letters."""
    day = london_date(value) if isinstance(value, datetime) else value
    return f"{day:%A} {day.day} {day:%B %Y}"


def policy() -> dict[str, int]:
    s = get_settings()
    return {
        "decision": s.decision_target_working_days,
        "discussion": s.discussion_target_working_days,
        "report": s.report_target_working_days,
        "report_check": s.report_check_target_working_days,
    }
