"""Serving the written notice: the account deadline is computed once and stored with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from infra.settings import get_settings
from models import Case, Officer, as_utc
from models.enums import CaseState, DeadlineKind
from tasks import letters
from tasks.deadlines import date_text, set_deadline, working_days_after
from tasks.links import account_link, account_token
from tasks.records import transition


def notice_link(case: Case, due_at: datetime) -> str:
    """The officer's signed link, valid past the deadline so a late account is still taken."""
    assert case.id is not None
    expires = as_utc(due_at) + timedelta(days=get_settings().account_link_grace_days)
    return account_link(account_token(case.id, case.notice_round, expires))


def serve_notice(session: Session, case: Case, officer: Officer,
                 now: datetime | None = None) -> None:
    """Notify the officer in writing and start the 5-working-day account window."""
    served_at = now or datetime.now(UTC)
    due_at, version = working_days_after(served_at, get_settings().account_working_days)
    deadline = set_deadline(session, case, DeadlineKind.ACCOUNT, due_at, version,
                            round=case.notice_round)
    transition(session, case, CaseState.AWAITING_ACCOUNT, actor="system", action="notice_served",
               detail=f"notice {case.notice_round}; account due by {date_text(deadline.due_at)}")
    letters.officer_notice(session, case, officer, deadline, notice_link(case, deadline.due_at))
    letters.start_complainant_updates(session, case, served_at)
