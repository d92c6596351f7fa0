"""What the portal does to a case, shared by the pages and the JSON API.

The case DB is written first and always; Prefect is told afterwards, best effort. If Prefect is
unreachable the referral is kept, the case page offers "Start", and the sweep retries wakes.
Only ids ever go to Prefect: never the account or monitoring data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from infra.db import session_scope
from infra.settings import get_settings
from models import (
    Account,
    ActionReview,
    AuditEvent,
    Case,
    Deadline,
    DiscussionInvitation,
    Officer,
    Outbox,
    Report,
)
from models.enums import CaseState, DeadlineStatus, InvitationStatus, OutboxStatus
from tasks import report_check
from tasks.casework import Wait, close_externally, wait_for
from tasks.deadlines import date_text
from tasks.history_import import is_imported
from tasks.intake import ReferralIn, create_case
from tasks.links import flow_run_link
from tasks.orchestration import start_case_flow, stop_flow_run, wake_case, wake_flow_run
from tasks.outbox import KIND_TITLES

log = logging.getLogger("rprp.portal")

PREFECT_TIMEOUT = 20.0  # seconds a page waits for Prefect before carrying on without it


class CaseClosed(Exception):
    """The case is already in a final state: a closed case stays closed."""

    def __init__(self, state: CaseState) -> None:
        super().__init__(f"The case is already closed ({state.label.lower()}).")
        self.state = state


# -- referral ---------------------------------------------------------------------------------

def store_referral(referral: ReferralIn, *, actor: str,
                   idempotency_key: str | None) -> tuple[Case, bool]:
    """Create the case in one transaction; a repeat with the same key (or, without a key, the
    same content) returns the first case. Two racing requests still make one case."""
    for attempt in range(2):
        try:
            with session_scope() as session:
                return create_case(session, referral, actor=actor,
                                   idempotency_key=idempotency_key)
        except IntegrityError:
            if attempt:
                raise
            # Another request stored the same key between our check and our insert.
    raise AssertionError("unreachable")


def is_imported_record(case_id: int) -> bool:
    """A case loaded by `rprp import cases`: nothing on its page starts or wakes a run."""
    with session_scope() as session:
        return is_imported(session, case_id)


async def start_flow(case_id: int) -> str | None:
    """Start the case's flow run (idempotent in Prefect); None if Prefect is unreachable."""
    try:
        return await asyncio.wait_for(start_case_flow(case_id), PREFECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the case waiting for "Start"
        log.warning("flow run for case %s not started: %s", case_id, type(exc).__name__)
        return None


async def wake_after_account(case_id: int) -> bool:
    """Tell the case's run an account arrived; if that fails the sweep wakes it later. The
    transaction that stored the account flagged the case for the wake (tasks/casework.py
    `flag_for_wake`), and only a wake that happens clears the flag."""
    try:
        return await asyncio.wait_for(wake_case(case_id), PREFECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        log.warning("case %s not woken: %s; left flagged for the sweep", case_id,
                    type(exc).__name__)
        return False


async def wake_after_decline(case_id: int) -> bool:
    """The officer declined to give an account: wake the run now, as when one arrives."""
    return await wake_after_account(case_id)


# -- closing from outside the flow -------------------------------------------------------------

async def settle_flow_run(flow_run_id: str | None, message: str) -> str:
    """After the case closed outside its run: wake the run (it then sees the closed case and
    finishes, sending the closure emails) or, if it waits for a person's form, stop it."""
    if not flow_run_id:
        return "not_started"
    try:
        woken = await asyncio.wait_for(
            wake_flow_run(flow_run_id, attempts=3), PREFECT_TIMEOUT)
        if woken:
            return "woken"
        await asyncio.wait_for(stop_flow_run(flow_run_id, message), PREFECT_TIMEOUT)
        return "stopped"
    except Exception as exc:  # noqa: BLE001
        log.warning("flow run %s not settled: %s", flow_run_id, type(exc).__name__)
        return "unreachable"


def _close(case_id: int, to_state: CaseState, *, actor: str, reason: str,
           left_on: date | None = None) -> Case:
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise LookupError(case_id)
        if case.state.is_terminal:
            raise CaseClosed(case.state)
    close_externally(case_id, to_state, actor=actor, reason=reason, left_on=left_on)
    return load_case(case_id)


async def officer_left(case_id: int, left_on: date, *, actor: str) -> tuple[Case, str]:
    case = _close(case_id, CaseState.DISCONTINUED, actor=actor, left_on=left_on,
                  reason=f"Officer left the force on {date_text(left_on)}")
    return case, await settle_flow_run(case.flow_run_id,
                                       "Case discontinued: the officer left the force")


async def cancel(case_id: int, reason: str, *, actor: str) -> tuple[Case, str]:
    case = _close(case_id, CaseState.CANCELLED, actor=actor, reason=reason)
    return case, await settle_flow_run(case.flow_run_id, "Referral cancelled by PSD")


# -- reading -----------------------------------------------------------------------------------

def load_case(case_id: int) -> Case:
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is None:
            raise LookupError(case_id)
        return case


@dataclass(frozen=True)
class FailedMail:
    """An email of the case given up after its last attempt: what it was, to whom by role, and
    when; never its subject, body or address, so the page quotes no letter."""

    title: str
    recipient_role: str
    given_up_at: datetime
    attempts: int


def recipient_role(case: Case, officer: Officer, recipient: str) -> str:
    """Who an address is on this case, as PSD would say it."""
    address = recipient.strip().lower()
    settings = get_settings()
    if address == officer.email.strip().lower():
        return "the officer"
    if address == case.reviewer_email.strip().lower():
        return "the reviewer"
    if case.complainant_email and address == case.complainant_email.strip().lower():
        return "the complainant"
    if address in {settings.psd_email.lower(), *settings.decision_makers}:
        return "Professional Standards"
    return "another recipient"


def _failed_mail(session: Session, case: Case, officer: Officer) -> list[FailedMail]:
    rows = session.exec(select(Outbox.kind, Outbox.recipient, Outbox.next_attempt_at,
                               Outbox.attempts)
                        .where(Outbox.case_id == case.id, Outbox.status == OutboxStatus.FAILED)
                        .order_by(Outbox.next_attempt_at)).all()  # type: ignore[arg-type]
    return [FailedMail(KIND_TITLES.get(kind, kind), recipient_role(case, officer, recipient),
                       at, attempts) for kind, recipient, at, attempts in rows]


@dataclass(frozen=True)
class ReportRound:
    """A round of the report as PSD checks it: the reviewer's text (never the discussion
    summary, which is confidential), the checklist and PSD's answer."""

    round: int
    submitted_by: str
    submitted_at: datetime
    outcome: str
    psd_comments: str
    content: dict[str, Any]
    checklist: list[report_check.Check]


def _report_rounds(session: Session, case_id: int) -> list[ReportRound]:
    rounds = []
    for draft in report_check.rounds(session, case_id):
        content = json.loads(draft.content)
        checks = report_check.checklist(content)
        content.pop("discussion_summary", None)
        rounds.append(ReportRound(draft.round, draft.submitted_by, draft.submitted_at,
                                  draft.outcome, draft.psd_comments, content, checks))
    return rounds


@dataclass
class CaseFile:
    """Everything a case page or the API shows, read in one transaction. No account text."""

    case: Case
    officer: Officer
    deadlines: list[Deadline]
    accounts: list[Account]
    audit: list[AuditEvent]
    wait: Wait | None
    invitations: list[DiscussionInvitation] = field(default_factory=list)
    report: Report | None = None
    open_review: ActionReview | None = None
    failed_mail: list[FailedMail] = field(default_factory=list)
    report_rounds: list[ReportRound] = field(default_factory=list)

    @property
    def current_invitation(self) -> DiscussionInvitation | None:
        """The discussion invitation in force (sent, not moved, cancelled or answered)."""
        for invitation in reversed(self.invitations):
            if invitation.status is InvitationStatus.SENT and invitation.outcome is None:
                return invitation
        return None

    @property
    def pending_decision(self) -> Wait | None:
        """A step a person answers in the Prefect UI (not a wait for the officer or a timer)."""
        return self.wait if self.wait is not None and self.wait.kind != "wake" else None

    @property
    def flow_run_url(self) -> str:
        return flow_run_link(self.case.flow_run_id)

    @property
    def review_run_url(self) -> str:
        """Where the open action-plan review is decided: its own run, not the case's."""
        return flow_run_link(self.open_review.flow_run_id) if self.open_review else ""

    @property
    def next_deadline(self) -> Deadline | None:
        open_ = [d for d in self.deadlines if d.status is DeadlineStatus.OPEN]
        return min(open_, key=lambda d: d.due_at) if open_ else None


def case_file(case_id: int) -> CaseFile | None:
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is None:
            return None
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        deadlines = list(session.exec(select(Deadline).where(Deadline.case_id == case_id)
                                      .order_by(col(Deadline.due_at), col(Deadline.id))))
        accounts = list(session.exec(select(Account).where(Account.case_id == case_id)
                                     .order_by(col(Account.id))))
        events = list(session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)
                                   .order_by(col(AuditEvent.id))))
        for account in accounts:
            session.expunge(account)
            account.text = ""  # the page lists accounts; reading one is a separate, audited step
        invitations = list(session.exec(select(DiscussionInvitation)
                                        .where(DiscussionInvitation.case_id == case_id)
                                        .order_by(col(DiscussionInvitation.id))))
        report = session.exec(select(Report).where(Report.case_id == case_id)).first()
        if report is not None:
            session.expunge(report)
            report.discussion_summary = ""  # confidential: the page never shows it
        return CaseFile(case, officer, deadlines, accounts, events, wait_for(case), invitations,
                        report, _open_review(session, case), _failed_mail(session, case, officer),
                        _report_rounds(session, case_id))


def _open_review(session: Session, case: Case) -> ActionReview | None:
    """The action-plan review the case waits for, once its run has started."""
    if case.state is not CaseState.ACTIONS_MONITORING:
        return None
    return session.exec(select(ActionReview).where(
        ActionReview.case_id == case.id,
        col(ActionReview.completed_at).is_(None),
        col(ActionReview.flow_run_id).is_not(None))
        .order_by(col(ActionReview.number).desc())).first()


@dataclass
class CaseRow:
    case: Case
    officer: Officer
    next_deadline: Deadline | None


def case_rows(limit: int = 500, case_ids: set[int] | None = None) -> list[CaseRow]:
    """The newest cases; only those in `case_ids` when given (what a reviewer may see)."""
    with session_scope() as session:
        newest_first = col(Case.id).desc()
        query = select(Case, Officer).join(Officer, col(Officer.id) == Case.officer_id)
        if case_ids is not None:
            query = query.where(col(Case.id).in_(case_ids))
        rows = session.exec(query.order_by(newest_first).limit(limit)).all()
        ids = [case.id for case, _ in rows]
        nearest: dict[int, Deadline] = {}
        if ids:
            for deadline in session.exec(select(Deadline).where(
                    col(Deadline.case_id).in_(ids),
                    Deadline.status == DeadlineStatus.OPEN).order_by(col(Deadline.due_at))):
                nearest.setdefault(deadline.case_id, deadline)
        return [CaseRow(case, officer, nearest.get(case.id or 0)) for case, officer in rows]


def read_account(case_id: int, account_id: int, *, actor: str) -> tuple[Case, Account] | None:
    """One account, for PSD or the reviewer; every reading is written to the audit log."""
    from tasks.records import audit

    with session_scope() as session:
        case = session.get(Case, case_id)
        account = session.get(Account, account_id)
        if case is None or account is None or account.case_id != case_id:
            return None
        audit(session, case, actor=actor, action="account_viewed",
              detail=f"account version {account.version} (notice round {account.notice_round})")
        return case, account
