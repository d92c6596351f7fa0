"""The steps of a case, each declared once: the one place to add or change a step.

A step is where a case stands (its state), the name the process gives it (the task's name in the
Prefect run graph, e.g. `fact-finding-decision`), what it waits for, who may decide it, what
applying the answer does, the force-policy target it runs against, the guidance above its form
and the title of the email that asks for it. The flow (flows/case_lifecycle.py) runs them in the
process's order; casework (tasks/casework.py), the gateway (tasks/decisions.py), the briefing
(tasks/briefing.py) and the letters (tasks/letters.py) read them from here.

No Prefect here: a step names its form (a builder in models/forms.py `FORMS`), and applying an
answer only says where the case goes (`Move`); casework makes the move, with its deadlines,
letters and audit event, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from models import Case
from models.choices import (
    AuthorityChoice,
    FactFindingChoice,
    FactFindingOutcomeChoice,
    NonEngagementChoice,
    QualityCheckChoice,
)
from models.enums import CaseState, DeadlineKind, MeetingOutcome

S = CaseState


class StepKind(StrEnum):
    """What a waiting case asks for. The values are stored (Decision.kind, the gateway's API,
    refused answers' audit actions), so they never change; WAKE is a wait with no form (the
    officer's account, the action-plan review's due date), woken by the portal or the sweep."""

    WAKE = "wake"
    FACT_FINDING_DECISION = "fact_finding_decision"
    FACT_FINDING_OUTCOME = "fact_finding_outcome"
    AUTHORITY_DECISION = "authority_decision"
    DISCUSSION_OUTCOME = "discussion_outcome"
    NON_ENGAGEMENT = "non_engagement"
    REPORT = "report"
    ACTION_REVIEW = "action_review"
    REPORT_QUALITY_CHECK = "report_quality_check"


class Policy(StrEnum):
    """The force-policy targets (working days, in settings) a step runs against."""

    DECISION = "decision"
    DISCUSSION = "discussion"
    REPORT = "report"
    REPORT_CHECK = "report_check"


@dataclass(frozen=True)
class Move:
    """Where an answer sends the case, and how the audit trail words it."""

    to: CaseState
    action: str
    detail: str = ""


# (session, case, answer, decider, now) -> the move, or None when the step is asked again.
Apply = Callable[[Session, Case, Any, str, datetime], Move | None]


@dataclass(frozen=True)
class Step:
    """One step of the process. A step with a `kind` other than WAKE is a person's decision."""

    name: str                     # the process's word: the task in the Prefect run graph
    state: CaseState | None       # where the case stands while the step is open (None: the ends)
    kind: StepKind | None = None  # what it waits for; None: an automatic step
    title: str = ""               # the Resume form's heading and the case page's "waiting for"
    form: str = ""                # its form: a key of models.forms.FORMS
    reviewer_may: bool = True     # who may decide: the case's reviewer ...
    psd_may: bool = True          # ... and a PSD decision-maker (acting for the authority)
    apply: Apply | None = None    # what the answer does
    target: tuple[DeadlineKind, Policy] | None = None  # the force's target while it is open
    guidance: str = ""            # above the form: what to decide
    email_title: str = ""         # the "decision needed" email's title ("" sends none)
    tell_psd: bool = False        # that email also goes to PSD
    sealed: tuple[str, ...] = ()  # fields never given to Prefect (the gateway seals them)

    @property
    def decision(self) -> bool:
        return self.kind is not None and self.kind is not StepKind.WAKE


# -- what each answer does ---------------------------------------------------------------------

def _fact_finding_decision(session: Session, case: Case, answer: Any, decider: str,
                           now: datetime) -> Move:
    to = {
        FactFindingChoice.NO_FACT_FINDING: S.DISCUSSION_SCHEDULING,
        FactFindingChoice.FACT_FINDING: S.FACT_FINDING,
        FactFindingChoice.REFER_BACK: S.REFERRED_BACK,
    }[answer.choice]
    return Move(to, f"fact_finding_decision:{answer.choice.name}")


def _fact_finding_outcome(session: Session, case: Case, answer: Any, decider: str,
                          now: datetime) -> Move:
    to = {
        FactFindingOutcomeChoice.COMPLETE: S.DISCUSSION_SCHEDULING,
        FactFindingOutcomeChoice.REFER_BACK: S.REFERRED_BACK,
    }[answer.choice]
    return Move(to, f"fact_finding_outcome:{answer.choice.name}")


def _authority_decision(session: Session, case: Case, answer: Any, decider: str,
                        now: datetime) -> Move:
    """The per-case form's enum has the same member names (UPP may be absent)."""
    name = answer.choice.name
    to = {
        AuthorityChoice.CONTINUE_SAME_SCOPE.name: S.DISCUSSION_SCHEDULING,
        AuthorityChoice.CONTINUE_NEW_NOTICE.name: S.REFERRAL_RECEIVED,
        AuthorityChoice.MISCONDUCT.name: S.ESCALATED_MISCONDUCT,
        AuthorityChoice.UPP.name: S.ESCALATED_UPP,
        AuthorityChoice.VETTING.name: S.ESCALATED_VETTING,
        AuthorityChoice.NO_FURTHER_ACTION.name: S.CLOSED_NFA,
    }[name]
    if to is S.REFERRAL_RECEIVED:
        case.notice_round += 1
    return Move(to, f"authority_decision:{name}")


def _discussion_outcome(session: Session, case: Case, answer: Any, decider: str,
                        now: datetime) -> Move | None:
    """Invite, move or cancel (the step is asked again), or record the outcome and move on."""
    from tasks.deadlines import date_text
    from tasks.discussion_invitation import apply_discussion_answer

    outcome = apply_discussion_answer(session, case, answer, decider, now)
    if outcome is None:
        return None
    to = S.DISCUSSION_HELD if outcome is MeetingOutcome.HELD_ENGAGED else S.NON_ENGAGEMENT_REVIEW
    return Move(to, f"discussion_outcome:{answer.choice.name}",
                f"on {date_text(answer.held_on)}" if answer.held_on else "")


def _non_engagement(session: Session, case: Case, answer: Any, decider: str,
                    now: datetime) -> Move:
    name = answer.choice.name
    to = {
        NonEngagementChoice.RE_INVITE.name: S.DISCUSSION_SCHEDULING,
        NonEngagementChoice.UPP.name: S.ESCALATED_UPP,
        NonEngagementChoice.FORMAL_PROCEEDINGS.name: S.ESCALATED_MISCONDUCT,
    }[name]
    return Move(to, f"non_engagement:{name}")


def _file_report(session: Session, case: Case, answer: Any, decider: str,
                 now: datetime) -> Move:
    """The discussion summary comes from the case DB, where the gateway sealed it. Where the
    force's policy says PSD checks it, the report is held for that check, not filed yet."""
    from models.choices import KEEP_DISCUSSION_SUMMARY
    from tasks import report_check
    from tasks.answers import unseal
    from tasks.casework import wait_for
    from tasks.report import ReportRejected, file_report

    wait = wait_for(case, session)
    assert wait is not None and case.id is not None
    summary = unseal(session, case, wait.key, answer.discussion_summary)
    if summary.strip() == KEEP_DISCUSSION_SUMMARY:
        returned = report_check.last_returned(session, case.id)
        if returned is None:
            raise ReportRejected("Write the summary of the reflective practice discussion")
        summary = report_check.draft_answer(returned).discussion_summary
    if report_check.check_applies(session, case):
        draft = report_check.hold_for_check(session, case, answer, summary, decider, now)
        return Move(S.REPORT_QUALITY_CHECK, "report_sent_for_quality_check",
                    f"round {draft.round}")
    file_report(session, case, answer, decider, summary, now)
    return Move(S.REPORT_SUBMITTED, "report_submitted")


def _report_quality_check(session: Session, case: Case, answer: Any, decider: str,
                          now: datetime) -> Move:
    """Accept: the round is filed as the reviewer wrote it. Return: the report step opens again
    with the round's text and PSD's comments."""
    from tasks import report_check
    from tasks.report import ReportRejected, file_report

    assert case.id is not None
    draft = report_check.open_round(session, case.id)
    if draft is None:
        raise ReportRejected("There is no submitted report waiting for the quality check")
    if answer.choice is QualityCheckChoice.RETURN:
        report_check.decide_round(session, draft, report_check.RETURNED, answer.comments,
                                  decider, now)
        return Move(S.DISCUSSION_HELD, "report_quality_check:RETURN",
                    f"round {draft.round} returned to the reviewer with comments")
    report_check.decide_round(session, draft, report_check.ACCEPTED, answer.comments, decider,
                              now)
    filed = report_check.draft_answer(draft)
    file_report(session, case, filed, draft.submitted_by, filed.discussion_summary, now)
    return Move(S.REPORT_SUBMITTED, "report_quality_check:ACCEPT", f"round {draft.round}")


# -- the step table, in the process's order ----------------------------------------------------

SERVE_NOTICE = Step("serve-notice", S.REFERRAL_RECEIVED)
AWAIT_ACCOUNT = Step(
    "await-account", S.AWAITING_ACCOUNT, StepKind.WAKE, "The officer's account")
FACT_FINDING_DECISION = Step(
    "fact-finding-decision", S.FACT_FINDING_DECISION, StepKind.FACT_FINDING_DECISION,
    "Fact-finding decision", "FactFindingDecision",
    apply=_fact_finding_decision, target=(DeadlineKind.DECISION, Policy.DECISION),
    guidance="Decide whether fact-finding would help before the discussion. Refer back to PSD "
    "only if there is substantial new evidence that the matter is more serious than thought.",
    email_title="Decide whether fact-finding is needed")
FACT_FINDING_OUTCOME = Step(
    "fact-finding-outcome", S.FACT_FINDING, StepKind.FACT_FINDING_OUTCOME,
    "Outcome of fact-finding", "FactFindingOutcome",
    apply=_fact_finding_outcome, target=(DeadlineKind.DECISION, Policy.DECISION),
    guidance="Record whether fact-finding is complete, or whether it found substantial new "
    "evidence that needs the appropriate authority.",
    email_title="Record the outcome of fact-finding")
REFER_BACK_TO_PSD = Step(
    "refer-back-to-psd", S.REFERRED_BACK, StepKind.AUTHORITY_DECISION,
    "Appropriate authority decision after referral back", "AuthorityDecision",
    reviewer_may=False, apply=_authority_decision,
    target=(DeadlineKind.DECISION, Policy.DECISION),
    guidance="The matter was referred back. Take the appropriate authority's decision. Reasons "
    "are recorded in the audit log.",
    email_title="Appropriate authority decision after a referral back")
DISCUSSION_OUTCOME = Step(
    "discussion-outcome", S.DISCUSSION_SCHEDULING, StepKind.DISCUSSION_OUTCOME,
    "Reflective practice discussion: invite the officer, then record the outcome",
    "DiscussionOutcome", apply=_discussion_outcome,
    target=(DeadlineKind.DISCUSSION, Policy.DISCUSSION),
    guidance="First invite the officer: choose *Invite the officer* and give the date, start "
    "time (UK time) and place, or the phone number or video link of a call. The officer is "
    "emailed the invitation with a calendar file and reminded the working day before. To "
    "change it choose *Move the meeting* (a new invitation replaces the old one in the "
    "officer's calendar). After the meeting, record whether it was held and the officer "
    "engaged; *Officer did not attend* is recorded against the invitation. Non-engagement goes "
    "to a decision; it is never automatic.",
    email_title="Invite the officer to the reflective practice discussion, then record its "
    "outcome")
NON_ENGAGEMENT_DECISION = Step(
    "non-engagement-decision", S.NON_ENGAGEMENT_REVIEW, StepKind.NON_ENGAGEMENT,
    "Decision on non-engagement", "NonEngagementDecision",
    apply=_non_engagement, target=(DeadlineKind.DECISION, Policy.DECISION),
    guidance="The officer did not attend or did not engage. Decide what follows.",
    email_title="Decide what follows the officer's non-engagement", tell_psd=True)
FILE_REPORT = Step(
    "file-report", S.DISCUSSION_HELD, StepKind.REPORT,
    "Reflective Review Development Report", "ReportForm",
    apply=_file_report, target=(DeadlineKind.REPORT, Policy.REPORT),
    guidance="File the Reflective Review Development Report (reg 70(2)): issue, discussion, "
    "actions with time limits, lessons for the officer and the force, review period.",
    email_title="Write and file the Reflective Review Development Report",
    sealed=("discussion_summary",))  # what is said in the discussion (domain doc 4.6)
REPORT_QUALITY_CHECK = Step(
    "report-quality-check", S.REPORT_QUALITY_CHECK, StepKind.REPORT_QUALITY_CHECK,
    "PSD quality check of the report", "ReportQualityCheck",
    reviewer_may=False, apply=_report_quality_check,
    target=(DeadlineKind.REPORT_CHECK, Policy.REPORT_CHECK),
    guidance="Check the report before it is filed: could someone who was not there understand "
    "the issue, what was discussed and what was agreed? The checklist below shows what is "
    "missing. Accept it to file it, or return it to the reviewer with comments.",
    email_title="Check a Reflective Review Development Report before it is filed")
SCHEDULE_ACTION_REVIEW = Step("schedule-action-review", S.REPORT_SUBMITTED)
AWAIT_ACTION_REVIEW = Step(
    "action-review", S.ACTIONS_MONITORING, StepKind.WAKE, "The action-plan review")
ACTION_REVIEW = Step(
    "action-review", S.ACTIONS_MONITORING, StepKind.ACTION_REVIEW, "Action-plan review",
    "ActionReviewForm",
    guidance="Review each action in the plan: record a note and whether it is complete.")
CLOSE_CASE = Step("close-case", None)
# Not a step of the process: a case in a retired state (RETIRED below) moves on by its rule.
MOVE_OFF_RETIRED_STEP = Step("move-off-retired-step", None)

STEPS: tuple[Step, ...] = (
    SERVE_NOTICE, AWAIT_ACCOUNT, FACT_FINDING_DECISION, FACT_FINDING_OUTCOME, REFER_BACK_TO_PSD,
    DISCUSSION_OUTCOME, NON_ENGAGEMENT_DECISION, FILE_REPORT, REPORT_QUALITY_CHECK,
    SCHEDULE_ACTION_REVIEW,
    AWAIT_ACTION_REVIEW, ACTION_REVIEW, CLOSE_CASE,
)

# The states in which the case waits, and the step it waits on (a review, once due, is
# ACTION_REVIEW instead of its wake: tasks/casework.py:wait_for).
WAITING: dict[CaseState, Step] = {
    s.state: s for s in STEPS
    if s.kind is not None and s.state is not None and s.kind is not StepKind.ACTION_REVIEW
}
BY_KIND: dict[StepKind, Step] = {s.kind: s for s in STEPS if s.decision and s.kind is not None}
# The states a person must move on, and the target that runs while they are open.
TARGETS: dict[CaseState, tuple[DeadlineKind, Policy]] = {
    s.state: s.target for s in STEPS if s.target is not None and s.state is not None
}
TARGET_KINDS = frozenset(kind for kind, _ in TARGETS.values())



@dataclass(frozen=True)
class Retired:
    """A waiting state whose step the code no longer has, and where its cases go instead.

    States are stored, so a retired state stays in CaseState (a case may stand in it for
    weeks); this table says how such a case moves on when its run next resumes (the sweep's
    `resume-cases` wakes it), by a transition the state machine allows, audited as
    `step_retired`. See docs/changing-the-flow.md.
    """

    to: CaseState
    reason: str


# Retired waiting states, each with its successor (none retired yet). For example, to retire
# the fact-finding outcome step:
#     S.FACT_FINDING: Retired(S.DISCUSSION_SCHEDULING, "fact-finding is recorded at the discussion")
RETIRED: dict[CaseState, Retired] = {}


def retirement_problems(retired: dict[CaseState, Retired] | None = None) -> list[str]:
    """What is wrong with the retirement rules (empty: nothing): a retired state must have no
    step left, and its successor must be a state the code has a step for (or an ending),
    reached by a transition the state machine allows. tests/unit/test_flow_changes.py holds
    the table to this."""
    from models.enums import TERMINAL_STATES
    from models.state import allowed_next

    rules = RETIRED if retired is None else retired
    live = {s.state for s in STEPS if s.state is not None}
    found: list[str] = []
    for state, rule in rules.items():
        if state in live:
            found.append(f"{state.value} is retired but a step still stands in it")
        if rule.to in rules:
            found.append(f"{state.value} moves to {rule.to.value}, which is retired too")
        elif rule.to not in live and rule.to not in TERMINAL_STATES:
            found.append(f"{state.value} moves to {rule.to.value}, which has no step")
        if rule.to not in allowed_next(state):
            found.append(f"{state.value} cannot move to {rule.to.value} (models/state.py)")
        if not rule.reason.strip():
            found.append(f"{state.value}'s rule gives no reason for the audit trail")
    return found


def step_of(kind: StepKind | str) -> Step:
    """The decision step a wait's kind names (KeyError for WAKE or an unknown kind)."""
    return BY_KIND[StepKind(kind)]


def step_in(state: CaseState) -> Step | None:
    """The decision step open while the case is in `state`, if a person decides there."""
    step = WAITING.get(state)
    return step if step is not None and step.decision else None
