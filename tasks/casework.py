"""The rules of a case: what entering a state owes people, what a waiting state asks for, how a
person's answer, the officer's account or an ending from outside is applied.

Each rule takes the caller's `Session` (one unit of work) and `now`; none opens a session, reads
the wall clock or knows Prefect. Each reads the case record first and does only what it says is
not done, so a replayed or resumed flow repeats nothing. The steps themselves (title, who may
decide, what an answer does, targets) are declared once, in tasks/steps.py.

The functions at the bottom with the old names (`advance(case_id)`, `apply_answer`,
`record_account`, `decline_account`, `close_externally`) are the thin I/O wrappers the flow, the
portal and the tests call: they open the session, take the time, and call the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import object_session
from sqlmodel import Session, select

from infra.db import session_scope
from models import Account, ActionReview, AuditEvent, Case, Decision, Officer, as_utc
from models.enums import (
    TERMINAL_STATES,
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    EmploymentStatus,
)
from tasks import answers, letters, steps
from tasks.calendar import LONDON
from tasks.deadlines import account_deadline, date_text, policy, set_working_day_target
from tasks.discussion_invitation import InvitationRejected, withdraw_if_leaving
from tasks.notice import serve_notice
from tasks.people import NotAllowedToDecide, check_entitled
from tasks.records import audit, close_deadlines, lock_case, officer_of, transition
from tasks.report import ReportRejected
from tasks.steps import Step, StepKind

S = CaseState


@dataclass(frozen=True)
class Wait:
    """What a waiting case needs, and the stable key its suspension uses."""

    key: str
    kind: StepKind | str
    title: str

    @property
    def step(self) -> str:
        """The key without its trailing count of refused answers: the same across re-asks, so a
        refusal is shown again only on the step it was given for."""
        return self.key.rsplit("-", 1)[0]

    @property
    def declared(self) -> Step | None:
        """The step of tasks/steps.py this wait is for (None for a wait with no form)."""
        return steps.BY_KIND.get(StepKind(self.kind)) if self.kind in steps.BY_KIND else None


def opened_review(session: Session, case: Case) -> ActionReview | None:
    """The action-plan review the sweep opened in this case's own run and nobody has recorded
    yet (reviews run as separate flow runs before that keep their own run)."""
    if case.state is not S.ACTIONS_MONITORING or not case.flow_run_id:
        return None
    return session.exec(select(ActionReview).where(
        ActionReview.case_id == case.id, ActionReview.flow_run_id == case.flow_run_id,
        ActionReview.completed_at.is_(None))  # type: ignore[union-attr]
        .order_by(ActionReview.number)).first()  # type: ignore[arg-type]


def action_review_wait(case: Case, number: int) -> Wait:
    """Review `number`'s wait: its key counts refused answers, as every step's does."""
    step = steps.ACTION_REVIEW
    return Wait(f"action-review-{number}-{case.rejected_inputs}", StepKind.ACTION_REVIEW,
                f"{step.title} {number}")


def wait_for(case: Case, session: Session | None = None) -> Wait | None:
    """What the case waits for now, if anything. With a session (by default the one the case
    was read in), a review the sweep opened in the case's run is that review's form."""
    step = steps.WAITING.get(case.state)
    if step is None or step.kind is None:
        return None
    session = session or object_session(case)  # type: ignore[assignment]
    if step is steps.AWAIT_ACTION_REVIEW and isinstance(session, Session):
        review = opened_review(session, case)
        if review is not None:
            return action_review_wait(case, review.number)
    key = f"{case.state.value.replace('_', '-')}-{case.transition_count}-{case.rejected_inputs}"
    if case.step_answers:
        key += f"-{case.step_answers}"
    return Wait(key, step.kind, step.title)


def enter(session: Session, case: Case, to_state: CaseState, *, actor: str, action: str,
          detail: str = "", now: datetime | None = None) -> None:
    """Transition, then queue what entering the new state owes people, in one transaction."""
    now = as_utc(now or datetime.now(UTC))
    for kind in steps.TARGET_KINDS:
        close_deadlines(session, case, kind, now=now)
    withdraw_if_leaving(session, case, to_state, actor, now)
    transition(session, case, to_state, actor=actor, action=action, detail=detail)
    if to_state in steps.TARGETS:
        kind, name = steps.TARGETS[to_state]
        set_working_day_target(session, case, kind, policy()[name.value], now)
    letters.on_enter(session, case, officer_of(session, case), now)


def take_automatic_step(session: Session, case: Case, now: datetime) -> Step | None:
    """Do the automatic step the case stands at (serve the notice, open the fact-finding
    decision once the account wait is over, schedule the action-plan review); the step done,
    or None if the case waits for someone or is finished."""
    if case.state is S.REFERRAL_RECEIVED:
        serve_notice(session, case, officer_of(session, case), now)
        return steps.SERVE_NOTICE
    if case.state in (S.ACCOUNT_RECEIVED, S.NO_ACCOUNT):
        enter(session, case, S.FACT_FINDING_DECISION, actor="system",
              action="fact_finding_decision_pending", now=now)
        return steps.AWAIT_ACCOUNT
    if case.state is S.REPORT_SUBMITTED:
        enter(session, case, S.ACTIONS_MONITORING, actor="system", action="actions_monitoring",
              now=now)
        return steps.SCHEDULE_ACTION_REVIEW
    if move_off_retired_step(session, case, now):
        return steps.MOVE_OFF_RETIRED_STEP
    return None


def move_off_retired_step(session: Session, case: Case, now: datetime) -> bool:
    """A case standing in a state whose step the code no longer has moves on by its rule
    (tasks/steps.py `RETIRED`), audited with the rule's reason; False if it stands elsewhere."""
    rule = steps.RETIRED.get(case.state)
    if rule is None:
        return False
    enter(session, case, rule.to, actor="system", action=f"step_retired:{case.state.value}",
          detail=rule.reason, now=now)
    return True


def advance_case(session: Session, case: Case, now: datetime) -> tuple[CaseState, Wait | None]:
    """Do the automatic steps until the case must wait for someone, or is finished."""
    while case.state not in TERMINAL_STATES:
        if take_automatic_step(session, case, now) is None:
            return case.state, wait_for(case, session)
    return case.state, None


def take_answer(session: Session, case_id: int, wait_key: str, answer: Any,
                now: datetime) -> CaseState:
    """Apply a person's answer to the step it was given for; a replayed answer is ignored.

    The flow verifies, not trusts: the answer must match a submission the gateway recorded
    (which names the decider), the decider must still be entitled, and the content must pass
    the form's rules. Otherwise the session is rolled back, the refusal is audited and the step
    is asked again: the case does not move.
    """
    case = lock_case(session, case_id)
    wait = wait_for(case, session)
    if wait is None or wait.key != wait_key or wait.declared is None:
        return case.state
    step = wait.declared
    if step.apply is None:
        return case.state
    actor = "unverified"
    try:
        submission = answers.verified_submission(session, case, wait.key, answer)
        actor = submission.decided_by
        decider = check_entitled(case, submission.decided_by, submission.decided_as,
                                 reviewer_may=step.reviewer_may, psd_may=step.psd_may)
        errors = answers.problems(session, case, wait.kind, answer, now)
        if errors:
            raise ReportRejected(answers.refusal(errors))
        _record_decision(session, case, wait, answer, decider)
        move = step.apply(session, case, answer, decider, now)
        if move is not None:
            enter(session, case, move.to, actor=decider, action=move.action,
                  detail=move.detail, now=now)
    except (NotAllowedToDecide, ReportRejected, InvitationRejected,
            answers.DecisionNotVerified) as exc:
        session.rollback()
        case = lock_case(session, case_id)
        case.rejected_inputs += 1
        session.add(case)
        record_rejection(session, case, wait, actor, str(exc))
    return case.state


REJECTED = "decision_rejected"


def record_rejection(session: Session, case: Case, wait: Wait, actor: str, reason: str) -> None:
    """The audit event of a refused answer names its step, so only that step shows it."""
    audit(session, case, actor=actor[:254], action=f"{REJECTED}:{wait.step}", detail=reason)


def last_rejection(session: Session, case: Case, wait: Wait) -> str:
    """Why the last answer to this very step was refused, if nothing has been recorded since
    (an accepted invitation at the same step, or a move to another step, makes it old news)."""
    event = session.exec(
        select(AuditEvent).where(AuditEvent.case_id == case.id,
                                 AuditEvent.action != "account_viewed")
        .order_by(AuditEvent.id.desc())  # type: ignore[union-attr]
    ).first()
    if event is None or event.action != f"{REJECTED}:{wait.step}":
        return ""
    return event.detail


def _record_decision(session: Session, case: Case, wait: Wait, answer: Any,
                     decider: str) -> None:
    assert case.id is not None
    choice = getattr(answer, "choice", None)
    session.add(Decision(
        case_id=case.id, step_key=wait.key, kind=str(wait.kind),
        choice=(choice.name if choice is not None else str(wait.kind)),
        decided_by=decider, reasons=getattr(answer, "reasons", "") or "",
    ))


class AccountNotAccepted(ValueError):
    """The case has moved past the account stage, or the link is for an earlier notice."""


EARLIER_NOTICE = ("This link is for an earlier notice. Use the link in the latest email you "
                  "were sent.")


def take_account(session: Session, case_id: int, notice_round: int, text: str, now: datetime,
                 via: str = "") -> tuple[Account, bool]:
    """Store the officer's account in the case DB (never Prefect); returns (account, wake):
    whether the case's run must be woken. `via` says in the audit trail how it came in.

    Accepted while the case awaits it, and late (flagged) until the reviewer has decided.
    """
    text = text.strip()
    if len(text) < 10:
        raise ValueError("Your account must be at least 10 characters")
    if len(text) > 20000:
        raise ValueError("Your account must be 20,000 characters or fewer")
    received = as_utc(now)
    case = lock_case(session, case_id)
    if notice_round != case.notice_round:
        raise AccountNotAccepted(EARLIER_NOTICE)
    if case.state not in (S.AWAITING_ACCOUNT, S.NO_ACCOUNT, S.FACT_FINDING_DECISION):
        raise AccountNotAccepted("This case has moved past the account stage, so an account "
                                 "can no longer be added here. Speak to your reviewer.")
    deadline = account_deadline(session, case)
    late = case.account_deadline_missed or (
        deadline is not None and received > as_utc(deadline.due_at))
    previous = session.exec(
        select(Account).where(Account.case_id == case.id, Account.notice_round == notice_round)
    ).all()
    assert case.id is not None
    account = Account(case_id=case.id, notice_round=notice_round, text=text,
                      received_at=received, late=late, version=len(previous) + 1)
    session.add(account)
    close_deadlines(session, case, DeadlineKind.ACCOUNT, round=notice_round, now=received)
    detail = f"version {account.version}" + (" (late)" if late else "") + (
        f", {via}" if via else "")
    wake = case.state in (S.AWAITING_ACCOUNT, S.NO_ACCOUNT)
    if wake:
        flag_for_wake(case)
        transition(session, case, S.ACCOUNT_RECEIVED, actor="officer",
                   action="account_received", detail=detail)
    else:
        audit(session, case, actor="officer", action="account_received", detail=detail)
    if late:
        letters.late_account(session, case, officer_of(session, case))
    return account, wake


def flag_for_wake(case: Case) -> None:
    """Flag the case for a wake in the transaction that makes one needed. Whoever wakes the run
    (the portal at once, or else the sweep) clears the flag; so a wake that never happens (the
    portal's process ends, or Prefect and the case DB both go down, between this commit and
    the wake) is still retried by the sweep."""
    case.wake_requested = True


def take_decline(session: Session, case_id: int, notice_round: int, now: datetime) -> bool:
    """The officer says they will not give an account (their right): the case moves on at once,
    as for a missed deadline. True if the flow must be woken; a repeat changes nothing."""
    case = lock_case(session, case_id)
    if notice_round != case.notice_round:
        raise AccountNotAccepted(EARLIER_NOTICE)
    if case.state is not S.AWAITING_ACCOUNT:
        if letters.declined_account(session, case):
            return False
        raise AccountNotAccepted("This case has moved past the account stage, so there is "
                                 "nothing to decline. Speak to your reviewer.")
    close_deadlines(session, case, DeadlineKind.ACCOUNT, DeadlineStatus.CANCELLED,
                    round=case.notice_round)
    flag_for_wake(case)
    transition(session, case, S.NO_ACCOUNT, actor="officer", action="account_declined",
               detail=f"notice round {case.notice_round}")
    letters.account_declined(session, case, as_utc(now))
    return True


def mark_no_account(session: Session, case: Case, as_of: datetime) -> bool:
    """The account deadline passed with no account: not non-engagement, the case moves on."""
    if case.state is not S.AWAITING_ACCOUNT:
        return False
    deadline = account_deadline(session, case)
    if deadline is None or as_utc(deadline.due_at) >= as_of.astimezone(UTC):
        return False
    deadline.status = DeadlineStatus.MISSED
    session.add(deadline)
    case.account_deadline_missed = True
    transition(session, case, S.NO_ACCOUNT, actor="sweep", action="account_deadline_missed",
               detail=f"the deadline was {date_text(deadline.due_at)}")
    letters.missed_account_deadline(session, case, deadline)
    return True


def close_from_outside(session: Session, case: Case, to_state: CaseState, *, actor: str,
                       reason: str, now: datetime, left_on: date | None = None) -> CaseState:
    """Discontinue (officer left; by default today in London) or cancel from any open state;
    a closed case stays closed."""
    if case.state in TERMINAL_STATES:
        return case.state
    if to_state is S.DISCONTINUED:
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        officer.employment_status = EmploymentStatus.LEFT
        officer.left_on = left_on or now.astimezone(LONDON).date()
        session.add(officer)
    case.closed_reason = reason[:500]
    enter(session, case, to_state, actor=actor, action=to_state.value, detail=reason, now=now)
    return case.state


# -- the I/O wrappers: a session of their own, and the time now unless told ---------------------

def _now(now: datetime | None) -> datetime:
    return as_utc(now) if now is not None else datetime.now(UTC)


def advance(case_id: int, now: datetime | None = None) -> tuple[CaseState, Wait | None]:
    """Do the automatic steps until the case must wait for someone, or is finished."""
    with session_scope() as session:
        return advance_case(session, lock_case(session, case_id), _now(now))


def take_step(case_id: int, now: datetime | None = None) -> tuple[Step | None, CaseState]:
    """One automatic step (the flow runs each as its own task), if the case still stands at it."""
    with session_scope() as session:
        case = lock_case(session, case_id)
        done = take_automatic_step(session, case, _now(now))
        return done, case.state


def apply_answer(case_id: int, wait_key: str, answer: Any,
                 now: datetime | None = None) -> CaseState:
    """`take_answer` in a session of its own."""
    with session_scope() as session:
        return take_answer(session, case_id, wait_key, answer, _now(now))


def record_account(case_id: int, notice_round: int, text: str,
                   now: datetime | None = None, via: str = "") -> tuple[Account, bool]:
    """`take_account` in a session of its own (the portal's account page)."""
    with session_scope() as session:
        return take_account(session, case_id, notice_round, text, _now(now), via)


def decline_account(case_id: int, notice_round: int, now: datetime | None = None) -> bool:
    """`take_decline` in a session of its own (the portal's decline page)."""
    with session_scope() as session:
        return take_decline(session, case_id, notice_round, _now(now))


def close_externally(case_id: int, to_state: CaseState, *, actor: str, reason: str,
                     left_on: date | None = None, now: datetime | None = None) -> CaseState:
    """`close_from_outside` in a session of its own (PSD on the case page)."""
    with session_scope() as session:
        return close_from_outside(session, lock_case(session, case_id), to_state, actor=actor,
                                  reason=reason, now=_now(now), left_on=left_on)
