"""Filing the Reflective Review Development Report and reviewing its action plan (reg 70)."""

from __future__ import annotations

import calendar as _calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from infra.db import session_scope
from models import (
    Action,
    ActionReview,
    ActionReviewNote,
    Case,
    Officer,
    Report,
    as_utc,
    utc_now,
)
from models.choices import Agreement, ReviewOutcome
from models.enums import ActionStatus, ActionType, DeadlineKind
from tasks import learning_register, letters
from tasks.calendar import LONDON, england_and_wales
from tasks.deadlines import date_text, set_deadline
from tasks.identifiers import collar_parts, mentions_any, name_parts
from tasks.records import audit, close_deadlines, lock_case, officer_of


class ReportRejected(ValueError):
    """A report or review that breaks a rule: recorded, and the step is asked again."""


def add_months(day: date, months: int) -> date:
    """Same day n months on; 29 Feb 2024 + 12 months is 28 Feb 2025 (the month has no 29th)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def names_the_officer(text: str, officer: Officer) -> bool:
    """True if `text` has the officer's first name, surname, full name or collar number as a
    whole word, in any case: what the complainant reads must not identify the officer."""
    return mentions_any(text, name_parts(officer.name, min_length=2)
                        + collar_parts(officer.collar_number))


def complainant_summary(case: Case, officer: Officer, answer: Any) -> str:
    """The outcome letter's words about the learning, checked; empty where no complaint."""
    if not case.origin.has_complainant_duties:
        return ""
    text = str(getattr(answer, "complainant_summary", "") or "").strip()
    if len(text) < 10:
        raise ReportRejected("Write what the complainant will be told about the learning "
                             "(at least 10 characters)")
    if names_the_officer(text, officer):
        raise ReportRejected("What the complainant will be told names the officer (their name "
                             "or collar number): the complainant's letter must not identify "
                             "them. Reword it and submit again")
    return text


def end_of_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=LONDON).astimezone(UTC)


def file_report(session: Session, case: Case, answer: Any, decider: str,
                discussion_summary: str, now: datetime) -> Report:
    """Store the report, its actions, the review and PDR clocks, and queue the copies.

    The answer passed the form's rules (tasks/decisions.py); the discussion summary comes from
    the case DB, where the gateway sealed it, never from Prefect's input.
    """
    summary = complainant_summary(case, officer_of(session, case), answer)
    assert case.id is not None
    report = Report(
        case_id=case.id, issue_summary=answer.issue_summary,
        discussion_summary=discussion_summary, officer_lessons=answer.officer_lessons,
        force_lessons=answer.force_lessons, review_period_weeks=answer.review_period_weeks,
        agreed_on=answer.agreed_on, officer_agrees=answer.agreement is Agreement.AGREED,
        officer_comments=answer.officer_comments, submitted_by=decider,
        sent_to_aa_at=as_utc(now), pdr_due_on=add_months(answer.agreed_on, 12),
        complainant_summary=summary,
    )
    session.add(report)
    actions = [
        Action(case_id=case.id, type=a.type.action_type, description=a.description, owner=a.owner,
               due_on=a.due_on,
               status=ActionStatus.CLOSED if a.type.action_type is ActionType.NO_FURTHER_ACTION
               else ActionStatus.OPEN)
        for a in answer.actions
    ]
    session.add_all(actions)
    version = england_and_wales().version
    review_on = answer.agreed_on + timedelta(weeks=answer.review_period_weeks)
    session.add(ActionReview(case_id=case.id, number=1, due_on=review_on))
    set_deadline(session, case, DeadlineKind.ACTION_REVIEW, end_of_day(review_on), version, 1)
    set_deadline(session, case, DeadlineKind.PDR, end_of_day(report.pdr_due_on), version, 1)
    session.flush()
    audit(session, case, actor=decider, action="report_filed",
          detail=f"{len(actions)} actions; first review by {date_text(review_on)}; "
                 f"discussed at the PDR by {date_text(report.pdr_due_on)}")
    letters.report_filed(session, case, officer_of(session, case), report, actions, review_on,
                         now)
    # Reg 70(4): the lessons for the force go to the learning register, apart from the case.
    learning_register.create_from_report(session, case, report, now)
    return report


class PdrNotRecorded(ValueError):
    """The PDR discussion cannot be recorded as given: nothing was changed."""


def record_pdr_discussion(case_id: int, discussed_on: date, actor: str,
                          now: datetime | None = None) -> Report:
    """Reg 70(6): the report was discussed at the officer's PDR; this meets the PDR deadline."""
    today = (now or datetime.now(UTC)).astimezone(LONDON).date()
    with session_scope() as session:
        case = lock_case(session, case_id)
        report = session.exec(select(Report).where(Report.case_id == case_id)).first()
        if report is None:
            raise PdrNotRecorded("There is no report yet: the PDR discussion follows the report")
        if report.pdr_discussed_on is not None:
            raise PdrNotRecorded(f"The PDR discussion was already recorded, as held on "
                                 f"{report.pdr_discussed_on:%d %B %Y}")
        if discussed_on > today:
            raise PdrNotRecorded("The date of the PDR discussion must be today or in the past")
        if discussed_on < report.agreed_on:
            raise PdrNotRecorded("The date of the PDR discussion cannot be before the report "
                                 f"was agreed ({report.agreed_on:%d %B %Y})")
        report.pdr_discussed_on, report.pdr_recorded_by = discussed_on, actor[:254]
        session.add(report)
        close_deadlines(session, case, DeadlineKind.PDR, now=as_utc(now or utc_now()))
        audit(session, case, actor=actor, action="pdr_discussed",
              detail=f"report discussed at the officer's PDR on {discussed_on.isoformat()} "
                     f"(due by {report.pdr_due_on.isoformat()})")
        session.flush()
        session.expunge(report)
        return report


def open_actions(session: Session, case_id: int) -> list[Action]:
    return list(session.exec(
        select(Action).where(Action.case_id == case_id, Action.status == ActionStatus.OPEN)
        .order_by(Action.id)  # type: ignore[arg-type]
    ))


def review_of(session: Session, case_id: int, number: int) -> ActionReview | None:
    return session.exec(select(ActionReview).where(ActionReview.case_id == case_id,
                                                   ActionReview.number == number)).first()


def apply_action_review(session: Session, case_id: int, number: int, answer: Any,
                        decider: str, now: datetime) -> bool:
    """Record a note per open action; returns True when every action is now closed. The next
    review, if any action stays open, is due one review period after today (London) at `now`."""
    now = as_utc(now)
    case = lock_case(session, case_id)
    review = review_of(session, case_id, number)
    if review is None or review.completed_at is not None:
        return not open_actions(session, case_id)
    assert review.id is not None
    for action in open_actions(session, case_id):
        assert action.id is not None
        note = getattr(answer, f"action_{action.id}_note")
        outcome = getattr(answer, f"action_{action.id}_outcome")
        closed = outcome is ReviewOutcome.CLOSE
        session.add(ActionReviewNote(review_id=review.id, action_id=action.id, note=note,
                                     closed=closed))
        if closed:
            action.status = ActionStatus.CLOSED
            action.closed_at = now
            session.add(action)
    review.completed_at = now
    review.reviewed_by = decider
    session.add(review)
    close_deadlines(session, case, DeadlineKind.ACTION_REVIEW, round=number, now=now)
    session.flush()
    remaining = open_actions(session, case_id)
    audit(session, case, actor=decider, action="action_review_recorded",
          detail=f"review {number}; {len(remaining)} actions still open")
    if remaining:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
        next_on = now.astimezone(LONDON).date() + timedelta(weeks=report.review_period_weeks)
        session.add(ActionReview(case_id=case_id, number=number + 1, due_on=next_on))
        set_deadline(session, case, DeadlineKind.ACTION_REVIEW, end_of_day(next_on),
                     england_and_wales().version, number + 1)
    return not remaining

