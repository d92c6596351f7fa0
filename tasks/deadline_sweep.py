"""What the morning sweep does, as of any instant: reminders, missed deadlines, overdue steps,
due action reviews and complainant letters. Every action is keyed, so a second sweep at the same
instant finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from models import ActionReview, Case, Deadline, Officer, Report, to_db
from models.enums import TERMINAL_STATES, CaseState, DeadlineKind, DeadlineStatus
from rprp.db import session_scope
from rprp.settings import get_settings
from tasks import letters
from tasks.calendar import LONDON, WorkingCalendar, england_and_wales
from tasks.casework import mark_no_account
from tasks.discussion_invitation import send_reminders
from tasks.notice import notice_link
from tasks.orchestration import recover_stalled_runs, start_action_review_flow, wake_case
from tasks.records import lock_case

COMPLAINANT_LEAD = timedelta(days=3)  # send a progress letter up to 3 days before it is owed
OVERDUE_WHAT = {
    DeadlineKind.DECISION: "the pending decision",
    DeadlineKind.DISCUSSION: "the reflective practice discussion and its outcome",
    DeadlineKind.REPORT: "the Reflective Review Development Report",
    DeadlineKind.ACTION_REVIEW: "the action-plan review",
}


@dataclass
class SweepReport:
    """Counts only: the sweep's result is visible in Prefect, so it names no person."""

    as_of: str
    cases_read: int = 0
    reminders: int = 0
    missed_deadlines: int = 0
    woken: int = 0
    overdue_reminders: int = 0
    reviews_started: int = 0
    runs_recovered: int = 0
    complainant_letters: int = 0
    discussion_reminders: int = 0
    pdr_reminders: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reminder_day(calendar: WorkingCalendar, due: date, working_days_before: int) -> date:
    """The working day `n` working days before the deadline day (0: the deadline day)."""
    day = due
    remaining = working_days_before
    while remaining > 0:
        day -= timedelta(days=1)
        if calendar.is_working_day(day):
            remaining -= 1
    return day


def _utc(as_of: datetime) -> datetime:
    return to_db(as_of)


def account_reminders(as_of: datetime, report: SweepReport) -> None:
    calendar = england_and_wales()
    offsets = get_settings().reminder_offsets
    today = as_of.astimezone(LONDON).date()
    now = _utc(as_of)
    with session_scope() as session:
        rows = session.exec(
            select(Case, Deadline, Officer)
            .join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .join(Officer, Officer.id == Case.officer_id)  # type: ignore[arg-type]
            .where(Case.state == CaseState.AWAITING_ACCOUNT,
                   Deadline.kind == DeadlineKind.ACCOUNT,
                   Deadline.round == Case.notice_round,
                   Deadline.status == DeadlineStatus.OPEN,
                   Deadline.due_at >= now, Deadline.due_at <= now + timedelta(days=21))
        ).all()
        report.cases_read += len(rows)
        for case, deadline, officer in rows:
            due_day = deadline.due_at.replace(tzinfo=UTC).astimezone(LONDON).date()
            applicable = [n for n in offsets if reminder_day(calendar, due_day, n) <= today]
            if not applicable:
                continue
            if letters.account_reminder(session, case, officer, deadline, min(applicable),
                                        notice_link(case, deadline.due_at)):
                report.reminders += 1


def missed_account_deadlines(as_of: datetime, report: SweepReport) -> list[int]:
    now = _utc(as_of)
    with session_scope() as session:
        ids = session.exec(
            select(Case.id).join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Case.state == CaseState.AWAITING_ACCOUNT,
                   Deadline.kind == DeadlineKind.ACCOUNT, Deadline.round == Case.notice_round,
                   Deadline.status == DeadlineStatus.OPEN, Deadline.due_at < now)
        ).all()
    report.cases_read += len(ids)
    missed = []
    for case_id in ids:
        with session_scope() as session:
            if mark_no_account(session, lock_case(session, case_id), as_of):
                missed.append(case_id)
    report.missed_deadlines += len(missed)
    return missed


def overdue_steps(as_of: datetime, report: SweepReport) -> None:
    now = _utc(as_of)
    with session_scope() as session:
        rows = session.exec(
            select(Case, Deadline).join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Deadline.kind.in_(list(OVERDUE_WHAT)),  # type: ignore[attr-defined]
                   Deadline.status == DeadlineStatus.OPEN, Deadline.due_at < now,
                   Case.state.not_in(list(TERMINAL_STATES)))  # type: ignore[attr-defined]
        ).all()
        report.cases_read += len(rows)
        for case, deadline in rows:
            if deadline.kind is DeadlineKind.ACTION_REVIEW and deadline.due_at + timedelta(
                    days=get_settings().decision_target_working_days) > now:
                continue  # a review is overdue only once its decision target has also passed
            if letters.overdue(session, case, deadline, OVERDUE_WHAT[deadline.kind]):
                report.overdue_reminders += 1


def complainant_letters(as_of: datetime, report: SweepReport) -> None:
    now = _utc(as_of)
    with session_scope() as session:
        rows = session.exec(
            select(Case, Deadline).join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Deadline.kind == DeadlineKind.COMPLAINANT_UPDATE,
                   Deadline.status == DeadlineStatus.OPEN,
                   Deadline.due_at <= now + COMPLAINANT_LEAD,
                   Case.state.not_in(list(TERMINAL_STATES)))  # type: ignore[attr-defined]
        ).all()
        report.cases_read += len(rows)
        for case, deadline in rows:
            if letters.complainant_progress(session, case, deadline.round, as_of):
                report.complainant_letters += 1
            deadline.status = DeadlineStatus.MET
            deadline.met_at = now
            session.add(deadline)


def discussion_reminders(as_of: datetime, report: SweepReport) -> None:
    """The working day before a discussion: the officer and the reviewer, once per version."""
    read, sent = send_reminders(as_of)
    report.cases_read += read
    report.discussion_reminders += sent


def pdr_reminders(as_of: datetime, report: SweepReport) -> None:
    """Remind the line manager of the reg 70(6) PDR discussion, a policy number of working
    days before its deadline; closed cases included, since the duty outlives the case."""
    calendar = england_and_wales()
    before = get_settings().pdr_reminder_working_days
    today = as_of.astimezone(LONDON).date()
    horizon = _utc(as_of) + timedelta(days=2 * before + 14)  # wider than any n working days
    with session_scope() as session:
        rows = session.exec(
            select(Case, Deadline, Report)
            .join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .join(Report, Report.case_id == Case.id)  # type: ignore[arg-type]
            .where(Deadline.kind == DeadlineKind.PDR, Deadline.status == DeadlineStatus.OPEN,
                   Deadline.due_at <= horizon,
                   Report.pdr_discussed_on.is_(None))  # type: ignore[union-attr]
        ).all()
        report.cases_read += len(rows)
        for case, deadline, filed in rows:
            if reminder_day(calendar, filed.pdr_due_on, before) > today:
                continue
            if letters.pdr_reminder(session, case, filed, deadline):
                report.pdr_reminders += 1


def due_reviews(as_of: datetime) -> list[tuple[int, int]]:
    today = as_of.astimezone(LONDON).date()
    with session_scope() as session:
        rows = session.exec(
            select(ActionReview.case_id, ActionReview.number)
            .join(Case, Case.id == ActionReview.case_id)  # type: ignore[arg-type]
            .where(Case.state == CaseState.ACTIONS_MONITORING, ActionReview.due_on <= today,
                   ActionReview.completed_at.is_(None),  # type: ignore[union-attr]
                   ActionReview.flow_run_id.is_(None))  # type: ignore[union-attr]
        ).all()
    return [(int(c), int(n)) for c, n in rows]


async def start_due_reviews(as_of: datetime, report: SweepReport) -> None:
    for case_id, number in due_reviews(as_of):
        flow_run_id = await start_action_review_flow(case_id, number)
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id, ActionReview.number == number)).one()
            review.flow_run_id = flow_run_id
            session.add(review)
        report.reviews_started += 1


async def wake_flagged(case_ids: list[int], report: SweepReport) -> None:
    with session_scope() as session:
        flagged = session.exec(select(Case.id).where(Case.wake_requested == True)).all()  # noqa: E712
    for case_id in dict.fromkeys([*case_ids, *flagged]):
        if await wake_case(int(case_id), attempts=1):
            report.woken += 1


async def sweep(as_of: datetime | None = None) -> SweepReport:
    """Run every due step as of `as_of` (default now)."""
    as_of = (as_of or datetime.now(UTC))
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=LONDON)
    report = SweepReport(as_of=as_of.isoformat())
    account_reminders(as_of, report)
    missed = missed_account_deadlines(as_of, report)
    await wake_flagged(missed, report)
    overdue_steps(as_of, report)
    discussion_reminders(as_of, report)
    complainant_letters(as_of, report)
    pdr_reminders(as_of, report)
    await start_due_reviews(as_of, report)
    stale_after = timedelta(minutes=get_settings().stalled_run_minutes)
    report.runs_recovered = len(await recover_stalled_runs(stale_after))
    return report
