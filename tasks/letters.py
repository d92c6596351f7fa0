"""Who is told what, and when: every email the process owes, queued in the outbox.

Each key names (case, kind, recipient, occurrence), so a replay queues nothing twice. Contexts
carry only what a letter may say: never the account, the discussion or monitoring data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from infra.settings import get_settings
from models import (
    Account,
    Action,
    ActionReview,
    AuditEvent,
    Case,
    Deadline,
    Officer,
    Outbox,
    Report,
    as_utc,
)
from models.enums import ActionType, CaseState, DeadlineKind, DeadlineStatus, ReviewBody
from tasks import steps
from tasks.calendar import england_and_wales
from tasks.deadlines import date_text, set_deadline, working_days_after
from tasks.links import case_link, flow_run_link
from tasks.outbox import enqueue

S = CaseState

STAGE_TEXT: dict[CaseState, str] = {
    S.AWAITING_ACCOUNT: "The officer has been given written notice of the process.",
    S.REFERRED_BACK: "The matter is being reconsidered by the appropriate authority.",
    S.DISCUSSION_SCHEDULING: "A reflective practice discussion is being arranged.",
    S.ACTIONS_MONITORING: "The discussion has taken place and agreed actions are being followed up.",
}


def _send(session: Session, case: Case, officer: Officer | None, kind: str, recipient: str,
          occurrence: str | int, **context: Any) -> bool:
    assert case.id is not None
    return enqueue(
        session, key=f"{case.id}:{kind}:{recipient}:{occurrence}", kind=kind,
        recipient=recipient, case_id=case.id,
        context={"case": case, "officer": officer, **context},
    )


def _psd() -> str:
    return get_settings().psd_email


def _due_text(session: Session, case: Case) -> str:
    deadline = session.exec(
        select(Deadline).where(Deadline.case_id == case.id, Deadline.round == case.transition_count,
                               Deadline.status == DeadlineStatus.OPEN,
                               Deadline.kind.in_([DeadlineKind.DECISION,  # type: ignore[attr-defined]
                                                  DeadlineKind.DISCUSSION, DeadlineKind.REPORT,
                                                  DeadlineKind.REPORT_CHECK]))
    ).first()
    return date_text(deadline.due_at) if deadline else ""


def officer_notice(session: Session, case: Case, officer: Officer, deadline: Deadline,
                   link: str) -> None:
    _send(session, case, officer, "officer_notice", officer.email, f"round{case.notice_round}",
          deadline_text=date_text(deadline.due_at), account_link=link,
          reviewer_name=case.reviewer_name)


def account_reminder(session: Session, case: Case, officer: Officer, deadline: Deadline,
                     working_days_left: int, link: str) -> bool:
    return _send(session, case, officer, "account_reminder", officer.email,
                 f"round{case.notice_round}-wd{working_days_left}",
                 deadline_text=date_text(deadline.due_at), account_link=link,
                 working_days_left=working_days_left)


def declined_account(session: Session, case: Case) -> bool:
    """Whether the officer said, for the current notice, that they decline to give an account."""
    return session.exec(select(AuditEvent.id).where(
        AuditEvent.case_id == case.id, AuditEvent.action == "account_declined",
        AuditEvent.detail == f"notice round {case.notice_round}")).first() is not None


def _account_note(session: Session, case: Case) -> str:
    account = session.exec(select(Account).where(Account.case_id == case.id,
                                                 Account.notice_round == case.notice_round)).first()
    if account is None and declined_account(session, case):
        return "The officer declined to give an account, as is their right: this is not " \
               "non-engagement."
    if account is None:
        return "No account was received by the deadline. The account is optional: this is " \
               "not non-engagement."
    if account.late:
        return "The officer's account was received late. Read it on the case page."
    return "The officer's account was received. Read it on the case page."


def on_enter(session: Session, case: Case, officer: Officer, now: datetime) -> None:
    """Queue what entering the case's current state owes people: the email that asks for its
    step (its title and who is told are the step's, tasks/steps.py), or the ending's letters."""
    state, occurrence = case.state, case.transition_count
    links = {"case_link": case_link(case.id or 0),
             "decision_link": flow_run_link(case.flow_run_id)}
    step = steps.step_in(state)
    if step is not None and step.email_title:
        note = _account_note(session, case) if state is S.FACT_FINDING_DECISION else ""
        if state is S.REFERRED_BACK:
            _send(session, case, officer, "referral_back", _psd(), occurrence,
                  referred_by=case.reviewer_name, **links)
            return
        recipients = [(case.reviewer_email, case.reviewer_name)] if step.reviewer_may else []
        if step.tell_psd or not step.reviewer_may:
            recipients.append((_psd(), "Professional Standards"))
        for email, name in recipients:
            _send(session, case, officer, "decision_needed", email, occurrence,
                  recipient_name=name, decision_title=step.email_title,
                  due_text=_due_text(session, case), note=note, **links)
    elif state.is_terminal:
        outcome = OUTCOME_LABELS[state]
        kind = "escalation" if state.name.startswith("ESCALATED") else "case_closed"
        extra = {"decided_by": _last_actor(session, case)} if kind == "escalation" else {}
        for email in (_psd(), case.reviewer_email):
            _send(session, case, officer, kind, email, occurrence, outcome_label=outcome,
                  case_link=links["case_link"], **extra)
        complainant_ending(session, case, state, now)


def _last_actor(session: Session, case: Case) -> str:
    event = session.exec(select(AuditEvent).where(AuditEvent.case_id == case.id)
                         .order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    return event.actor if event else ""


OUTCOME_LABELS: dict[CaseState, str] = {
    S.ESCALATED_MISCONDUCT: "Misconduct proceedings",
    S.ESCALATED_UPP: "Unsatisfactory performance procedures (UPP)",
    S.ESCALATED_VETTING: "Referred under the Vetting Regulations",
    S.CLOSED_NFA: "No further action",
    S.CLOSED_COMPLETE: "Completed: report filed and every action closed",
    S.DISCONTINUED: "Discontinued: the officer has left the force",
    S.CANCELLED: "Cancelled: the referral was withdrawn",
}


# What the complainant is told when the case ends, in words written for them.
ENDING_TEXT: dict[CaseState, str] = {
    S.CLOSED_COMPLETE: "The actions agreed in the reflective practice review have been "
                       "completed and reviewed, and the process is now finished.",
    S.CLOSED_NFA: "The appropriate authority has reconsidered the matter and decided that no "
                  "further action will be taken.",
    S.ESCALATED_MISCONDUCT: "The matter is now being dealt with under a different procedure, "
                            "so the reflective practice review process will not continue. We "
                            "will write to you about that procedure and its outcome.",
    S.ESCALATED_UPP: "The matter is now being dealt with under a different procedure, so the "
                     "reflective practice review process will not continue. We will write to "
                     "you about that procedure and its outcome.",
    S.ESCALATED_VETTING: "The matter is now being dealt with under a different procedure, so "
                         "the reflective practice review process will not continue. We will "
                         "write to you about that procedure and its outcome.",
    S.DISCONTINUED: "The officer has left the police service, so the reflective practice "
                    "review process cannot continue. We will write to you about what this "
                    "means for your complaint.",
    S.CANCELLED: "The reflective practice review process has been stopped. We will write to "
                 "you separately about how your complaint is being dealt with.",
}


def late_account(session: Session, case: Case, officer: Officer) -> None:
    if case.state is S.FACT_FINDING_DECISION:
        _send(session, case, officer, "decision_needed", case.reviewer_email,
              f"late-account-{case.transition_count}", recipient_name=case.reviewer_name,
              decision_title=steps.FACT_FINDING_DECISION.email_title, due_text="",
              note="The officer's account was received late. Read it on the case page.",
              case_link=case_link(case.id or 0), decision_link=flow_run_link(case.flow_run_id))


def account_declined(session: Session, case: Case, declined_at: datetime) -> None:
    """PSD and the reviewer are told, as for a missed deadline (a declined case never reaches
    the missed deadline: it has already moved on)."""
    for email in (_psd(), case.reviewer_email):
        _send(session, case, session.get(Officer, case.officer_id), "account_declined",
              email, f"round{case.notice_round}", declined_on_text=date_text(declined_at),
              case_link=case_link(case.id or 0))


def pdr_reminder(session: Session, case: Case, report: Report, deadline: Deadline) -> bool:
    """The line manager (the case's reviewer) is reminded of the reg 70(6) PDR discussion."""
    return _send(session, case, session.get(Officer, case.officer_id), "pdr_reminder",
                 case.reviewer_email, f"pdr{deadline.round}",
                 pdr_due_text=date_text(report.pdr_due_on),
                 agreed_on_text=date_text(report.agreed_on), case_link=case_link(case.id or 0))


def missed_account_deadline(session: Session, case: Case, deadline: Deadline) -> None:
    for email in (_psd(), case.reviewer_email):
        _send(session, case, session.get(Officer, case.officer_id), "missed_account_deadline",
              email, f"round{case.notice_round}", deadline_text=date_text(deadline.due_at),
              case_link=case_link(case.id or 0))


def report_filed(session: Session, case: Case, officer: Officer, report: Report,
                 actions: list[Action], review_on: Any, now: datetime) -> None:
    review_due, pdr_due = date_text(review_on), date_text(report.pdr_due_on)
    _send(session, case, officer, "report_filed", _psd(), "report",
          case_link=case_link(case.id or 0), review_due_text=review_due, pdr_due_text=pdr_due)
    _send(session, case, officer, "officer_report_copy", officer.email, "report",
          reviewer_name=case.reviewer_name, issue_summary=report.issue_summary,
          officer_lessons=report.officer_lessons, force_lessons=report.force_lessons,
          review_period_weeks=report.review_period_weeks,
          agreed_on_text=date_text(report.agreed_on), review_due_text=review_due,
          pdr_due_text=pdr_due,
          actions=[{"type_label": ActionType(a.type).label,
                    "description": a.description, "owner": a.owner,
                    "due_text": date_text(a.due_on)} for a in actions])
    complainant_outcome(
        session, case,
        "The officer has taken part in a reflective practice review discussion. A report has "
        "been agreed with actions and lessons, and the actions will be reviewed.",
        report.complainant_summary, now,
    )


def _complainant_address(case: Case) -> str:
    """Letters go by email where we have one; otherwise to PSD to post."""
    return case.complainant_email or _psd()


def _owes_complainant_letters(case: Case) -> bool:
    return case.origin.has_complainant_duties and bool(case.complainant_name)


def _review_context(case: Case, review_rights: bool) -> dict[str, Any]:
    """The review information of C&M Regs 2020 regs 33-34: the body PSD recorded for this
    complaint at referral (it depends on the complaint's facts), and the time limit."""
    settings = get_settings()
    body = ReviewBody(case.complainant_review_body or ReviewBody.LOCAL_POLICING_BODY)
    label = settings.iopc_name if body is ReviewBody.IOPC else settings.local_policing_body_name
    return {"review_rights": review_rights, "review_body_label": label,
            "review_days": settings.review_application_days}


def _outcome_letter_met(session: Session, case: Case, now: datetime) -> None:
    """Owed within 5 working days of the outcome (reg 34); queued now, so met now."""
    now = as_utc(now)
    due_at, version = working_days_after(now, get_settings().outcome_letter_working_days)
    rounds = session.exec(select(Deadline.id).where(
        Deadline.case_id == case.id, Deadline.kind == DeadlineKind.OUTCOME_LETTER)).all()
    letter = set_deadline(session, case, DeadlineKind.OUTCOME_LETTER, due_at, version,
                          len(rounds) + 1)
    letter.status, letter.met_at = DeadlineStatus.MET, now
    session.add(letter)


def complainant_outcome(session: Session, case: Case, outcome_text: str, learning: str,
                        now: datetime) -> None:
    """The outcome letter when the report is agreed: the RPRP's outcome, with the learning in
    the words the reviewer wrote for the complainant, and the review information."""
    if not _owes_complainant_letters(case):
        return
    review = S.CLOSED_COMPLETE.value in get_settings().endings_with_review_rights
    if _send(session, case, None, "complainant_outcome", _complainant_address(case), "outcome",
             complainant_name=case.complainant_name, outcome_text=outcome_text,
             learning_text=learning, **_review_context(case, review)):
        _outcome_letter_met(session, case, now)


def complainant_ending(session: Session, case: Case, ending: CaseState, now: datetime) -> None:
    """The last letter, whatever the ending: what happened, and the review information where
    the force's policy says this ending carries it and no earlier letter gave it."""
    if not _owes_complainant_letters(case):
        return
    endings = get_settings().endings_with_review_rights
    earlier = session.exec(select(Outbox).where(Outbox.case_id == case.id,
                                                Outbox.kind == "complainant_outcome")).first()
    earlier_review = earlier is not None and S.CLOSED_COMPLETE.value in endings
    earlier_text = ""
    if earlier is not None:
        earlier_text = (f"We wrote to you on {date_text(earlier.created_at)} with the outcome "
                        "of the process" + (" and your right to apply for a review of it."
                                            if earlier_review else "."))
    review = ending.value in endings and not earlier_review
    if _send(session, case, None, "complainant_ending", _complainant_address(case), "ending",
             complainant_name=case.complainant_name, ending_text=ENDING_TEXT[ending],
             earlier_letter_text=earlier_text, **_review_context(case, review)):
        _outcome_letter_met(session, case, now)


def start_complainant_updates(session: Session, case: Case, served_at: datetime) -> None:
    """A first letter when the process starts, then the 4-weekly clock (reg 34)."""
    if not case.origin.has_complainant_duties or not case.complainant_name:
        return
    complainant_progress(session, case, 0, served_at)


def complainant_progress(session: Session, case: Case, number: int, sent_at: datetime) -> bool:
    """Send progress letter `number` and set the next one due 4 weeks later."""
    next_due = as_utc(sent_at) + timedelta(days=get_settings().complainant_update_days)
    sent = _send(session, case, None, "complainant_progress", _complainant_address(case),
                 f"progress{number}", complainant_name=case.complainant_name,
                 stage_text=STAGE_TEXT.get(case.state, "The reflective practice review "
                                           "process is continuing."),
                 next_update_text=date_text(next_due))
    if sent:
        set_deadline(session, case, DeadlineKind.COMPLAINANT_UPDATE, next_due,
                     england_and_wales().version, number + 1)
    return sent


def overdue(session: Session, case: Case, deadline: Deadline, what: str) -> bool:
    sent = False
    for email in (case.reviewer_email, _psd()):
        sent |= _send(session, case, session.get(Officer, case.officer_id), "overdue_reminder",
                      email, f"deadline{deadline.id}", what=what,
                      due_text=date_text(deadline.due_at),
                      decision_link=flow_run_link(case.flow_run_id),
                      case_link=case_link(case.id or 0))
    return sent


def action_review_due(session: Session, case: Case, review: ActionReview,
                      flow_run_id: str) -> bool:
    return _send(session, case, session.get(Officer, case.officer_id), "action_review_due",
                 case.reviewer_email, f"review{review.number}", review_number=review.number,
                 due_text=date_text(review.due_on), decision_link=flow_run_link(flow_run_id),
                 case_link=case_link(case.id or 0))
