"""The case as steps: what entering a state sends, what a waiting state asks for, and how a
person's answer is applied. Every function here reads the case record first and does only what
it says is not done, inside one transaction, so a replayed or resumed flow repeats nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, select

from models import Account, AuditEvent, Case, Decision, Officer, utc_now
from models.enums import (
    TERMINAL_STATES,
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    EmploymentStatus,
    MeetingOutcome,
)
from models.forms import (
    AuthorityChoice,
    FactFindingChoice,
    FactFindingOutcomeChoice,
    NonEngagementChoice,
)
from rprp.db import session_scope
from tasks import decisions, letters
from tasks.deadlines import account_deadline, date_text, policy, set_working_day_target
from tasks.discussion_invitation import (
    InvitationRejected,
    apply_discussion_answer,
    withdraw_if_leaving,
)
from tasks.notice import serve_notice
from tasks.people import NotAllowedToDecide, check_entitled
from tasks.records import audit, lock_case, officer_of, open_deadlines, transition
from tasks.report import ReportRejected, file_report

S = CaseState


@dataclass(frozen=True)
class Wait:
    """What a waiting case needs, and the stable key its suspension uses."""

    key: str
    kind: str
    title: str

    @property
    def step(self) -> str:
        """The key without its trailing count of refused answers: the same across re-asks, so a
        refusal is shown again only on the step it was given for."""
        return self.key.rsplit("-", 1)[0]


WAITS: dict[CaseState, tuple[str, str]] = {
    S.AWAITING_ACCOUNT: ("wake", "The officer's account"),
    S.FACT_FINDING_DECISION: ("fact_finding_decision", "Fact-finding decision"),
    S.FACT_FINDING: ("fact_finding_outcome", "Outcome of fact-finding"),
    S.REFERRED_BACK: ("authority_decision", "Appropriate authority decision after referral back"),
    S.DISCUSSION_SCHEDULING: ("discussion_outcome",
                              "Reflective practice discussion: invite the officer, then record "
                              "the outcome"),
    S.DISCUSSION_HELD: ("report", "Reflective Review Development Report"),
    S.NON_ENGAGEMENT_REVIEW: ("non_engagement", "Decision on non-engagement"),
    S.ACTIONS_MONITORING: ("wake", "The action-plan review"),
}

# Which waits a person answers, and who may: (reviewer may, PSD may).
DECIDERS: dict[str, tuple[bool, bool]] = {
    "fact_finding_decision": (True, True),
    "fact_finding_outcome": (True, True),
    "authority_decision": (False, True),
    "discussion_outcome": (True, True),
    "non_engagement": (True, True),
    "report": (True, True),
}

# Targets (force policy) for states a person must move on.
TARGETS: dict[CaseState, tuple[DeadlineKind, str]] = {
    S.FACT_FINDING_DECISION: (DeadlineKind.DECISION, "decision"),
    S.FACT_FINDING: (DeadlineKind.DECISION, "decision"),
    S.REFERRED_BACK: (DeadlineKind.DECISION, "decision"),
    S.NON_ENGAGEMENT_REVIEW: (DeadlineKind.DECISION, "decision"),
    S.DISCUSSION_SCHEDULING: (DeadlineKind.DISCUSSION, "discussion"),
    S.DISCUSSION_HELD: (DeadlineKind.REPORT, "report"),
}

def wait_for(case: Case) -> Wait | None:
    if case.state not in WAITS:
        return None
    kind, title = WAITS[case.state]
    key = f"{case.state.value.replace('_', '-')}-{case.transition_count}-{case.rejected_inputs}"
    if case.step_answers:
        key += f"-{case.step_answers}"
    return Wait(key, kind, title)


def enter(session: Session, case: Case, to_state: CaseState, *, actor: str, action: str,
          detail: str = "", now: datetime | None = None) -> None:
    """Transition, then queue what entering the new state owes people, in one transaction."""
    for deadline in open_deadlines(session, case):
        if deadline.kind in (DeadlineKind.DECISION, DeadlineKind.DISCUSSION, DeadlineKind.REPORT):
            deadline.status = DeadlineStatus.MET
            deadline.met_at = utc_now()
            session.add(deadline)
    withdraw_if_leaving(session, case, to_state, actor, now)
    transition(session, case, to_state, actor=actor, action=action, detail=detail)
    if to_state in TARGETS:
        kind, name = TARGETS[to_state]
        set_working_day_target(session, case, kind, policy()[name], now)
    letters.on_enter(session, case, officer_of(session, case))


def advance(case_id: int, now: datetime | None = None) -> tuple[CaseState, Wait | None]:
    """Do the automatic steps until the case must wait for someone, or is finished."""
    with _scope() as session:
        case = lock_case(session, case_id)
        while True:
            if case.state in TERMINAL_STATES:
                return case.state, None
            if case.state is S.REFERRAL_RECEIVED:
                serve_notice(session, case, officer_of(session, case), now)
            elif case.state in (S.ACCOUNT_RECEIVED, S.NO_ACCOUNT):
                enter(session, case, S.FACT_FINDING_DECISION, actor="system",
                      action="fact_finding_decision_pending", now=now)
            elif case.state is S.REPORT_SUBMITTED:
                enter(session, case, S.ACTIONS_MONITORING, actor="system",
                      action="actions_monitoring", now=now)
            else:
                return case.state, wait_for(case)


def apply_answer(case_id: int, wait_key: str, answer: Any,
                 now: datetime | None = None) -> CaseState:
    """Apply a person's answer to the step it was given for; a replayed answer is ignored.

    The flow verifies, not trusts: the answer must match a submission the gateway recorded
    (which names the decider), the decider must still be entitled, and the content must pass
    the form's rules. Otherwise the refusal is audited and the step is asked again: the case
    does not move.
    """
    with _scope() as session:
        case = lock_case(session, case_id)
        wait = wait_for(case)
        if wait is None or wait.key != wait_key or wait.kind == "wake":
            return case.state
        actor = "unverified"
        try:
            submission = decisions.verified_submission(session, case, wait.key, answer)
            actor = submission.decided_by
            reviewer_may, psd_may = DECIDERS[wait.kind]
            decider = check_entitled(case, submission.decided_by, submission.decided_as,
                                     reviewer_may=reviewer_may, psd_may=psd_may)
            errors = decisions.problems(session, case, wait.kind, answer, now)
            if errors:
                raise ReportRejected(decisions.refusal(errors))
            _record_decision(session, case, wait, answer, decider)
            _APPLY[wait.kind](session, case, answer, decider, now)
        except (NotAllowedToDecide, ReportRejected, InvitationRejected,
                decisions.DecisionNotVerified) as exc:
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
        case_id=case.id, step_key=wait.key, kind=wait.kind,
        choice=(choice.name if choice is not None else wait.kind),
        decided_by=decider, reasons=getattr(answer, "reasons", "") or "",
    ))


def _fact_finding_decision(session: Session, case: Case, answer: Any, decider: str,
                           now: datetime | None) -> None:
    target = {
        FactFindingChoice.NO_FACT_FINDING: S.DISCUSSION_SCHEDULING,
        FactFindingChoice.FACT_FINDING: S.FACT_FINDING,
        FactFindingChoice.REFER_BACK: S.REFERRED_BACK,
    }[answer.choice]
    enter(session, case, target, actor=decider, action=f"fact_finding_decision:{answer.choice.name}",
          now=now)


def _fact_finding_outcome(session: Session, case: Case, answer: Any, decider: str,
                          now: datetime | None) -> None:
    target = {
        FactFindingOutcomeChoice.COMPLETE: S.DISCUSSION_SCHEDULING,
        FactFindingOutcomeChoice.REFER_BACK: S.REFERRED_BACK,
    }[answer.choice]
    enter(session, case, target, actor=decider, action=f"fact_finding_outcome:{answer.choice.name}",
          now=now)


def _authority_decision(session: Session, case: Case, answer: Any, decider: str,
                        now: datetime | None) -> None:
    name = answer.choice.name
    target = {
        AuthorityChoice.CONTINUE_SAME_SCOPE.name: S.DISCUSSION_SCHEDULING,
        AuthorityChoice.CONTINUE_NEW_NOTICE.name: S.REFERRAL_RECEIVED,
        AuthorityChoice.MISCONDUCT.name: S.ESCALATED_MISCONDUCT,
        AuthorityChoice.UPP.name: S.ESCALATED_UPP,
        AuthorityChoice.VETTING.name: S.ESCALATED_VETTING,
        AuthorityChoice.NO_FURTHER_ACTION.name: S.CLOSED_NFA,
    }[name]
    if target is S.REFERRAL_RECEIVED:
        case.notice_round += 1
    enter(session, case, target, actor=decider, action=f"authority_decision:{name}", now=now)


def _discussion_outcome(session: Session, case: Case, answer: Any, decider: str,
                        now: datetime | None) -> None:
    """Invite, move or cancel (the step is asked again), or record the outcome and move on."""
    outcome = apply_discussion_answer(session, case, answer, decider, now)
    if outcome is None:
        return
    target = S.DISCUSSION_HELD if outcome is MeetingOutcome.HELD_ENGAGED else (
        S.NON_ENGAGEMENT_REVIEW)
    enter(session, case, target, actor=decider,
          action=f"discussion_outcome:{answer.choice.name}",
          detail=f"on {date_text(answer.held_on)}" if answer.held_on else "", now=now)


def _non_engagement(session: Session, case: Case, answer: Any, decider: str,
                    now: datetime | None) -> None:
    name = answer.choice.name
    target = {
        NonEngagementChoice.RE_INVITE.name: S.DISCUSSION_SCHEDULING,
        NonEngagementChoice.UPP.name: S.ESCALATED_UPP,
        NonEngagementChoice.FORMAL_PROCEEDINGS.name: S.ESCALATED_MISCONDUCT,
    }[name]
    enter(session, case, target, actor=decider, action=f"non_engagement:{name}", now=now)


def _report(session: Session, case: Case, answer: Any, decider: str,
            now: datetime | None) -> None:
    wait = wait_for(case)
    assert wait is not None
    summary = decisions.unseal(session, case, wait.key, answer.discussion_summary)
    file_report(session, case, answer, decider, summary)
    enter(session, case, S.REPORT_SUBMITTED, actor=decider, action="report_submitted", now=now)


_APPLY = {
    "fact_finding_decision": _fact_finding_decision,
    "fact_finding_outcome": _fact_finding_outcome,
    "authority_decision": _authority_decision,
    "discussion_outcome": _discussion_outcome,
    "non_engagement": _non_engagement,
    "report": _report,
}


class AccountNotAccepted(ValueError):
    """The case has moved past the account stage, or the link is for an earlier notice."""


def record_account(case_id: int, notice_round: int, text: str,
                   now: datetime | None = None, via: str = "") -> tuple[Account, bool]:
    """Store the officer's account in the case DB (never Prefect); returns (account, woke_needed).
    `via` says in the audit trail how it came in (the portal: link and one-time code).

    Accepted while the case awaits it, and late (flagged) until the reviewer has decided.
    """
    text = text.strip()
    if len(text) < 10:
        raise ValueError("Your account must be at least 10 characters")
    if len(text) > 20000:
        raise ValueError("Your account must be 20,000 characters or fewer")
    received = (now or datetime.now(UTC)).astimezone(UTC)
    with _scope() as session:
        case = lock_case(session, case_id)
        if notice_round != case.notice_round:
            raise AccountNotAccepted("This link is for an earlier notice. Use the link in the "
                                     "latest email you were sent.")
        if case.state not in (S.AWAITING_ACCOUNT, S.NO_ACCOUNT, S.FACT_FINDING_DECISION):
            raise AccountNotAccepted("This case has moved past the account stage, so an account "
                                     "can no longer be added here. Speak to your reviewer.")
        deadline = account_deadline(session, case)
        late = case.account_deadline_missed or (
            deadline is not None and received > deadline.due_at)
        previous = session.exec(
            select(Account).where(Account.case_id == case.id,
                                  Account.notice_round == notice_round)
        ).all()
        assert case.id is not None
        account = Account(case_id=case.id, notice_round=notice_round, text=text,
                          received_at=received, late=late, version=len(previous) + 1)
        session.add(account)
        if deadline is not None and deadline.status is DeadlineStatus.OPEN:
            deadline.status = DeadlineStatus.MET
            deadline.met_at = received
            session.add(deadline)
        detail = f"version {account.version}" + (" (late)" if late else "") + (
            f", {via}" if via else "")
        wake = case.state in (S.AWAITING_ACCOUNT, S.NO_ACCOUNT)
        if wake:
            transition(session, case, S.ACCOUNT_RECEIVED, actor="officer",
                       action="account_received", detail=detail)
        else:
            audit(session, case, actor="officer", action="account_received", detail=detail)
        if late:
            letters.late_account(session, case, officer_of(session, case))
        return account, wake


def decline_account(case_id: int, notice_round: int, now: datetime | None = None) -> bool:
    """The officer says they will not give an account (their right): the case moves on at once,
    as for a missed deadline. True if the flow must be woken; a repeat changes nothing."""
    declined_at = (now or datetime.now(UTC)).astimezone(UTC)
    with _scope() as session:
        case = lock_case(session, case_id)
        if notice_round != case.notice_round:
            raise AccountNotAccepted("This link is for an earlier notice. Use the link in the "
                                     "latest email you were sent.")
        if case.state is not S.AWAITING_ACCOUNT:
            if letters.declined_account(session, case):
                return False
            raise AccountNotAccepted("This case has moved past the account stage, so there is "
                                     "nothing to decline. Speak to your reviewer.")
        deadline = account_deadline(session, case)
        if deadline is not None and deadline.status is DeadlineStatus.OPEN:
            deadline.status = DeadlineStatus.CANCELLED
            session.add(deadline)
        transition(session, case, S.NO_ACCOUNT, actor="officer", action="account_declined",
                   detail=f"notice round {case.notice_round}")
        letters.account_declined(session, case, declined_at)
        return True


def mark_no_account(session: Session, case: Case, as_of: datetime) -> bool:
    """The account deadline passed with no account: not non-engagement, the case moves on."""
    if case.state is not S.AWAITING_ACCOUNT:
        return False
    deadline = account_deadline(session, case)
    if deadline is None or deadline.due_at >= as_of.astimezone(UTC):
        return False
    deadline.status = DeadlineStatus.MISSED
    session.add(deadline)
    case.account_deadline_missed = True
    transition(session, case, S.NO_ACCOUNT, actor="sweep", action="account_deadline_missed",
               detail=f"the deadline was {date_text(deadline.due_at)}")
    letters.missed_account_deadline(session, case, deadline)
    return True


def close_externally(case_id: int, to_state: CaseState, *, actor: str, reason: str,
                     left_on: date | None = None) -> CaseState:
    """Discontinue (officer left) or cancel from any open state; a closed case stays closed."""
    with _scope() as session:
        case = lock_case(session, case_id)
        if case.state in TERMINAL_STATES:
            return case.state
        if to_state is S.DISCONTINUED:
            officer = session.get(Officer, case.officer_id)
            assert officer is not None
            officer.employment_status = EmploymentStatus.LEFT
            officer.left_on = left_on or date.today()
            session.add(officer)
        case.closed_reason = reason[:500]
        enter(session, case, to_state, actor=actor, action=to_state.value, detail=reason)
        return case.state


def _scope() -> AbstractContextManager[Session]:
    return session_scope()
