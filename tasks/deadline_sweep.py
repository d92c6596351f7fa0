"""What the morning sweep does, as of any instant: its duties, one function each, in the order
the sweep runs them (`DUTIES`). Every action is keyed, so a second sweep at the same instant finds
nothing left to do.

Each duty is isolated twice over. Within a duty, each case's work is its own unit (a savepoint, or
its own transaction): a case that fails is rolled back alone, recorded in `SweepReport.errors` by
its reference and the duty, and the duty goes on with the other cases. A duty that fails as a
whole is recorded by its name and the sweep goes on with the next duty. Errors name the duty, the
case reference and the error's class, never its message, which may quote the record.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, col, select

from infra.db import session_scope
from infra.settings import get_settings
from models import ActionReview, Case, Deadline, Officer, Report, as_utc, to_db
from models.enums import TERMINAL_STATES, CaseState, DeadlineKind, DeadlineStatus
from tasks import learning_register, letters, meetings, outbox, steps
from tasks.calendar import LONDON, WorkingCalendar, england_and_wales, working_day_deadline
from tasks.casework import mark_no_account
from tasks.deadlines import date_text
from tasks.discussion_invitation import reminders_due, send_reminder
from tasks.notice import notice_link
from tasks.orchestration import (
    recover_stalled_runs,
    resume_retired_wait,
    start_action_review_flow,
    wake_case,
)
from tasks.records import lock_case

log = logging.getLogger("rprp.sweep")

COMPLAINANT_LEAD = timedelta(days=3)  # send a progress letter up to 3 days before it is owed
OVERDUE_WHAT = {
    DeadlineKind.DECISION: "the pending decision",
    DeadlineKind.DISCUSSION: "the reflective practice discussion and its outcome",
    DeadlineKind.REPORT: "the Reflective Review Development Report",
    DeadlineKind.ACTION_REVIEW: "the action-plan review",
    DeadlineKind.REPORT_CHECK: "PSD's quality check of the report",
}
MAX_ERRORS_LISTED = 20  # per duty: a broken database should not fill the run with lines

# The duties' names: the sweep's tasks in the Prefect UI, and how errors name them.
ACCOUNT_REMINDERS = "account-reminders"
MISSED_ACCOUNT_DEADLINES = "missed-account-deadlines"
RESUME_CASES = "resume-cases"
OVERDUE_STEPS = "overdue-steps"
DISCUSSION_REMINDERS = "discussion-reminders"
COMPLAINANT_LETTERS = "complainant-letters"
PDR_REMINDERS = "pdr-reminders"
DUE_ACTION_REVIEWS = "due-action-reviews"
LEARNING_REMINDERS = "learning-reminders"
STALLED_RUNS = "stalled-runs"
MEETING_REMINDERS = "meeting-reminders"
DELIVER_MAIL = "deliver-mail"  # the flow's last task (flows/sweep.py): the outbox, not a query


@dataclass
class SweepReport:
    """Counts, and errors naming a duty and a case reference: the sweep's result is visible in
    Prefect, so it names no person and quotes no record."""

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
    learning_reminders: int = 0
    errors_not_listed: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {f.name: (list(getattr(self, f.name)) if isinstance(getattr(self, f.name), list)
                         else getattr(self, f.name)) for f in fields(self)}

    @property
    def failed_duties(self) -> list[str]:
        """The duties with an error, in the order they ran."""
        return list(dict.fromkeys(error.split(":", 1)[0] for error in self.errors))

    def merge(self, other: SweepReport) -> None:
        """Add one duty's part (a task's result) to the whole sweep's report."""
        for f in fields(self):
            value = getattr(other, f.name)
            if isinstance(value, int):
                setattr(self, f.name, getattr(self, f.name) + value)
            elif isinstance(value, list):
                getattr(self, f.name).extend(value)

    def _record(self, duty: str, line: str) -> None:
        if sum(error.startswith(f"{duty}:") for error in self.errors) >= MAX_ERRORS_LISTED:
            self.errors_not_listed += 1
        else:
            self.errors.append(line)

    def case_failed(self, duty: str, reference: str, exc: BaseException) -> None:
        """One case's part of a duty failed and was rolled back; the duty went on."""
        _log_failure(f"{duty}: {reference}", exc)
        self._record(duty, f"{duty}: {reference} not done ({type(exc).__name__})")

    def duty_failed(self, duty: str, exc: BaseException) -> None:
        """A duty stopped part-way or never started; the sweep went on with the next one."""
        _log_failure(duty, exc)
        self._record(duty, f"{duty}: the duty failed ({type(exc).__name__}); the other duties ran")


def _log_failure(what: str, exc: BaseException) -> None:
    """Where it failed, for the operator, in this process's log only (not Prefect's): the error's
    class and the code's lines, never its message, which may quote the record."""
    log.error("Sweep: %s failed (%s)\n%s", what, type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)).rstrip())


@contextmanager
def each_case(report: SweepReport, duty: str, reference: str,
              session: Session | None = None) -> Iterator[None]:
    """One case's part of a duty: if it fails, only its changes are undone (a savepoint of the
    duty's `session`, when it shares one) and the failure is recorded; the duty goes on."""
    try:
        if session is None:
            yield
        else:
            with session.begin_nested():
                yield
    except Exception as exc:
        report.case_failed(duty, reference, exc)


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


def _reference(case_id: int) -> str:
    return f"RPRP-{case_id:06d}"


def account_reminders(as_of: datetime, report: SweepReport) -> None:
    """Remind the officer of the account deadline, the policy working days before it."""
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
            with each_case(report, ACCOUNT_REMINDERS, case.reference, session):
                if letters.account_reminder(session, case, officer, deadline, min(applicable),
                                            notice_link(case, deadline.due_at)):
                    report.reminders += 1


def missed_account_deadlines(as_of: datetime, report: SweepReport) -> None:
    """The account deadline passed with no account: record it, tell PSD and the reviewer, and
    flag the case so `resume_cases` wakes its run (now, or on a later sweep if it cannot)."""
    now = _utc(as_of)
    with session_scope() as session:
        ids = session.exec(
            select(Case.id).join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Case.state == CaseState.AWAITING_ACCOUNT,
                   Deadline.kind == DeadlineKind.ACCOUNT, Deadline.round == Case.notice_round,
                   Deadline.status == DeadlineStatus.OPEN, Deadline.due_at < now)
        ).all()
    report.cases_read += len(ids)
    for case_id in ids:
        assert case_id is not None
        with each_case(report, MISSED_ACCOUNT_DEADLINES, _reference(case_id)):
            with session_scope() as session:
                case = lock_case(session, case_id)
                if mark_no_account(session, case, as_of):
                    case.wake_requested = True
                    session.add(case)
                    report.missed_deadlines += 1


def overdue_steps(as_of: datetime, report: SweepReport) -> None:
    """Remind the reviewer and PSD of a step past its target date, once per deadline."""
    now = _utc(as_of)
    target = get_settings().decision_target_working_days
    calendar = england_and_wales()
    with session_scope() as session:
        rows = session.exec(
            select(Case, Deadline).join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Deadline.kind.in_(list(OVERDUE_WHAT)),  # type: ignore[attr-defined]
                   Deadline.status == DeadlineStatus.OPEN, Deadline.due_at < now,
                   Case.state.not_in(list(TERMINAL_STATES)))  # type: ignore[attr-defined]
        ).all()
        report.cases_read += len(rows)
        for case, deadline in rows:
            if deadline.kind is DeadlineKind.ACTION_REVIEW and working_day_deadline(
                    as_utc(deadline.due_at), target, calendar) >= now:
                continue  # a review is overdue only once its decision target has also passed
            with each_case(report, OVERDUE_STEPS, case.reference, session):
                if letters.overdue(session, case, deadline, OVERDUE_WHAT[deadline.kind]):
                    report.overdue_reminders += 1


def complainant_letters(as_of: datetime, report: SweepReport) -> None:
    """The complainant's progress letter, at least every four weeks while the case is open."""
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
            with each_case(report, COMPLAINANT_LETTERS, case.reference, session):
                if letters.complainant_progress(session, case, deadline.round, as_of):
                    report.complainant_letters += 1
                deadline.status = DeadlineStatus.MET
                deadline.met_at = now
                session.add(deadline)


def discussion_reminders(as_of: datetime, report: SweepReport) -> None:
    """The working day before a discussion: the officer and the reviewer, once per version."""
    with session_scope() as session:
        rows = reminders_due(session, as_of)
        report.cases_read += len(rows)
        for invitation, case, officer in rows:
            with each_case(report, DISCUSSION_REMINDERS, case.reference, session):
                report.discussion_reminders += send_reminder(session, invitation, case, officer)


def meeting_reminders(as_of: datetime, report: SweepReport) -> None:
    """Reflective practice meetings' policy timers (replies, the record, the CRC), the owners of
    actions past their due date, and the business unit on a meeting's anniversary, once each."""
    with session_scope() as session:
        report.overdue_reminders += meetings.overdue_reminders(session, _utc(as_of))
        report.overdue_reminders += meetings.action_reminders(session, _utc(as_of))
        report.overdue_reminders += meetings.annual_review_reminders(session, _utc(as_of))


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
            with each_case(report, PDR_REMINDERS, case.reference, session):
                if letters.pdr_reminder(session, case, filed, deadline):
                    report.pdr_reminders += 1


def learning_reminders(as_of: datetime, report: SweepReport) -> None:
    """Remind each owner, once, of a learning item still open or planned after its target date.
    The key holds the target date: PSD setting a new target earns one more reminder after it.
    The email names the item, never its case, officer or complainant."""
    today = as_of.astimezone(LONDON).date()
    with session_scope() as session:
        items = learning_register.overdue(session, today)
        for item in items:
            assert item.target_on is not None
            reference = learning_register.item_reference(item)
            with each_case(report, LEARNING_REMINDERS, reference, session):
                context = {
                    "case": {"reference": reference, "rprp_reason": "",
                             "allegation_category": "", "public_summary": ""},
                    "officer": None,
                    "item_reference": reference,
                    "theme_text": item.theme or "not yet assigned",
                    "unit_text": item.unit or "not yet assigned",
                    "item_text": item.text,
                    "target_text": date_text(item.target_on),
                    "status_text": item.status,
                }
                if outbox.enqueue(session, key=f"learning-overdue:{item.id}:"
                                  f"{item.target_on.isoformat()}",
                                  kind="learning_item_overdue", recipient=item.owner,
                                  context=context):
                    report.learning_reminders += 1


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
    """Start the run of each action-plan review whose review period is up."""
    for case_id, number in due_reviews(as_of):
        with each_case(report, DUE_ACTION_REVIEWS, _reference(case_id)):
            flow_run_id = await start_action_review_flow(case_id, number)
            with session_scope() as session:
                review = session.exec(select(ActionReview).where(
                    ActionReview.case_id == case_id, ActionReview.number == number)).one()
                review.flow_run_id = flow_run_id
                session.add(review)
            report.reviews_started += 1


async def resume_cases(as_of: datetime, report: SweepReport) -> None:
    """Wake the runs of cases flagged for it: a missed deadline, or a wake that failed before
    (Prefect unreachable when the portal recorded an account). A case not woken stays flagged.
    Then resume the runs of cases waiting on a step the code no longer has (tasks/steps.py
    `RETIRED`), so each moves on by its rule."""
    with session_scope() as session:
        flagged = session.exec(select(Case.id).where(Case.wake_requested == True)).all()  # noqa: E712
        retired = session.exec(select(Case.id).where(
            col(Case.state).in_(list(steps.RETIRED)))).all() if steps.RETIRED else []
    for case_id in flagged:
        assert case_id is not None
        with each_case(report, RESUME_CASES, _reference(case_id)):
            if await wake_case(int(case_id), attempts=1):
                report.woken += 1
    for case_id in retired:
        assert case_id is not None
        with each_case(report, RESUME_CASES, _reference(case_id)):
            if await resume_retired_wait(int(case_id)):
                report.woken += 1


async def stalled_runs(as_of: datetime, report: SweepReport) -> None:
    """Reschedule case runs whose process died mid-step, so they replay from the record."""
    stale_after = timedelta(minutes=get_settings().stalled_run_minutes)
    report.runs_recovered += len(await recover_stalled_runs(stale_after))


DutyFunction = Callable[[datetime, SweepReport], Awaitable[None] | None]


@dataclass(frozen=True)
class Duty:
    """One duty of the sweep: its name (the task's in the run graph) and what it does."""

    name: str
    run: DutyFunction


# The sweep's duties, in order: missed deadlines are flagged before cases are resumed.
DUTIES: tuple[Duty, ...] = (
    Duty(ACCOUNT_REMINDERS, account_reminders),
    Duty(MISSED_ACCOUNT_DEADLINES, missed_account_deadlines),
    Duty(RESUME_CASES, resume_cases),
    Duty(OVERDUE_STEPS, overdue_steps),
    Duty(DISCUSSION_REMINDERS, discussion_reminders),
    Duty(COMPLAINANT_LETTERS, complainant_letters),
    Duty(PDR_REMINDERS, pdr_reminders),
    Duty(LEARNING_REMINDERS, learning_reminders),
    Duty(DUE_ACTION_REVIEWS, start_due_reviews),
    Duty(MEETING_REMINDERS, meeting_reminders),
    Duty(STALLED_RUNS, stalled_runs),
)


async def perform(duty: Duty, as_of: datetime, report: SweepReport) -> bool:
    """Do one duty, isolated: False (and the failure recorded) if it raised part-way."""
    try:
        outcome = duty.run(as_of, report)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception as exc:
        report.duty_failed(duty.name, exc)
        return False
    return True


def sweep_instant(as_of: datetime | None) -> datetime:
    """The sweep's instant: now by default; a naive one is Europe/London, as people write it."""
    as_of = as_of or datetime.now(UTC)
    return as_of.replace(tzinfo=LONDON) if as_of.tzinfo is None else as_of


async def sweep(as_of: datetime | None = None) -> SweepReport:
    """Every duty as of `as_of` (default now), each isolated; without Prefect tasks, for tests
    and the bench. The `rprp-sweep` flow runs the same `DUTIES`, each as its own task."""
    as_of = sweep_instant(as_of)
    report = SweepReport(as_of=as_of.isoformat())
    for duty in DUTIES:
        await perform(duty, as_of, report)
    return report
