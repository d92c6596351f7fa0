"""Controlled vocabularies of the case record; values are stable strings stored in the DB.

What people read is each member's `label`, never its value: forms and pages show labels, the DB
keeps the codes, so a change of wording never changes a record.
"""

from __future__ import annotations

from enum import StrEnum


class CaseState(StrEnum):
    REFERRAL_RECEIVED = "referral_received"
    AWAITING_ACCOUNT = "awaiting_account"
    ACCOUNT_RECEIVED = "account_received"
    NO_ACCOUNT = "no_account"
    FACT_FINDING_DECISION = "fact_finding_decision"
    FACT_FINDING = "fact_finding"
    REFERRED_BACK = "referred_back_to_aa"
    DISCUSSION_SCHEDULING = "discussion_scheduling"
    DISCUSSION_HELD = "discussion_held"
    NON_ENGAGEMENT_REVIEW = "non_engagement_review"
    REPORT_SUBMITTED = "report_submitted"
    REPORT_QUALITY_CHECK = "report_quality_check"  # added with the PSD check: values only added
    ACTIONS_MONITORING = "actions_monitoring"
    CLOSED_COMPLETE = "closed_complete"
    CLOSED_NFA = "closed_nfa"
    ESCALATED_UPP = "escalated_upp"
    ESCALATED_MISCONDUCT = "escalated_misconduct"
    ESCALATED_VETTING = "escalated_vetting"
    DISCONTINUED = "discontinued"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def label(self) -> str:
        return STATE_LABELS.get(self) or _words(self.value)


STATE_LABELS = {
    CaseState.REFERRED_BACK: "Referred back to the appropriate authority",
    CaseState.REPORT_QUALITY_CHECK: "Report with PSD for its quality check",
    CaseState.CLOSED_COMPLETE: "Closed: complete",
    CaseState.CLOSED_NFA: "Closed: no further action",
    CaseState.ESCALATED_UPP: "Escalated: unsatisfactory performance procedures (UPP)",
    CaseState.ESCALATED_MISCONDUCT: "Escalated: misconduct proceedings",
    CaseState.ESCALATED_VETTING: "Escalated: Vetting Regulations",
}

TERMINAL_STATES = frozenset(
    {
        CaseState.CLOSED_COMPLETE,
        CaseState.CLOSED_NFA,
        CaseState.ESCALATED_UPP,
        CaseState.ESCALATED_MISCONDUCT,
        CaseState.ESCALATED_VETTING,
        CaseState.DISCONTINUED,
        CaseState.CANCELLED,
    }
)


class Route(StrEnum):
    """The statutory route by which the appropriate authority referred the matter."""

    SEVERITY_ASSESSMENT = "severity_assessment"
    DURING_INVESTIGATION = "during_investigation"
    REG_23_5_A_NO_CASE_TO_ANSWER = "reg_23_5_a_no_case_to_answer"
    SCH3_PARA_24_6 = "sch3_para_24_6"
    REG_42_1_B_PANEL_DIRECTION = "reg_42_1_b_panel_direction"
    LINE_MANAGEMENT_CONCERN = "line_management_concern"

    @property
    def label(self) -> str:
        return ROUTE_LABELS[self]


ROUTE_LABELS = {
    Route.SEVERITY_ASSESSMENT: "Severity assessment: neither misconduct nor gross misconduct "
                               "(Regulation 14)",
    Route.DURING_INVESTIGATION: "During an investigation: severity assessment revised "
                                "(Regulation 21(4))",
    Route.REG_23_5_A_NO_CASE_TO_ANSWER: "End of investigation: practice requiring improvement "
                                        "(Regulation 23(5)(a))",
    Route.SCH3_PARA_24_6: "Complaint or recordable conduct matter investigated under "
                          "Schedule 3 paragraph 24(6)",
    Route.REG_42_1_B_PANEL_DIRECTION: "Direction by misconduct proceedings "
                                      "(Regulation 42(1)(b))",
    Route.LINE_MANAGEMENT_CONCERN: "Concern raised by a line manager",
}


class Origin(StrEnum):
    CONDUCT_MATTER = "conduct_matter"
    PUBLIC_COMPLAINT = "public_complaint"
    RECORDABLE_CONDUCT_MATTER = "recordable_conduct_matter"
    INTERNAL = "internal"

    @property
    def label(self) -> str:
        return "Internal (line management)" if self is Origin.INTERNAL else _words(self.value)

    @property
    def has_complainant_duties(self) -> bool:
        """Progress and outcome letters are owed only where a complaint is behind the case."""
        return self is Origin.PUBLIC_COMPLAINT


class Rank(StrEnum):
    CONSTABLE = "constable"
    SERGEANT = "sergeant"
    INSPECTOR = "inspector"
    CHIEF_INSPECTOR = "chief_inspector"
    SUPERINTENDENT = "superintendent"
    CHIEF_SUPERINTENDENT = "chief_superintendent"
    ASSISTANT_CHIEF_CONSTABLE = "assistant_chief_constable"
    DEPUTY_CHIEF_CONSTABLE = "deputy_chief_constable"
    CHIEF_CONSTABLE = "chief_constable"

    @property
    def label(self) -> str:
        return _words(self.value)

    @property
    def above_chief_superintendent(self) -> bool:
        return RANK_ORDER.index(self) > RANK_ORDER.index(Rank.CHIEF_SUPERINTENDENT)


RANK_ORDER = list(Rank)


class EmploymentStatus(StrEnum):
    SERVING = "serving"
    LEFT = "left"


class ReviewerBasis(StrEnum):
    """Reviewer eligibility: line manager, a senior officer, or more senior staff (AA opinion)."""

    LINE_MANAGER = "line_manager"
    SENIOR_OFFICER = "senior_officer"
    SENIOR_STAFF = "senior_staff"


class ReviewBody(StrEnum):
    LOCAL_POLICING_BODY = "local_policing_body"
    IOPC = "iopc"

    @property
    def label(self) -> str:
        return ("Independent Office for Police Conduct (IOPC)" if self is ReviewBody.IOPC
                else "Local policing body")


class ActionType(StrEnum):
    MANAGEMENT_MEETING = "management_meeting_or_mediation"
    SHADOWING_MENTORING = "shadowing_or_mentoring"
    RESTORATIVE = "restorative_action"
    TRAINING = "training_learning_plan_or_pdr_entry"
    NO_FURTHER_ACTION = "no_further_action"

    @property
    def label(self) -> str:
        return ACTION_TYPE_LABELS[self]


ACTION_TYPE_LABELS = {
    ActionType.MANAGEMENT_MEETING: "Management meeting or mediation",
    ActionType.SHADOWING_MENTORING: "Shadowing or mentoring",
    ActionType.RESTORATIVE: "Restorative action",
    ActionType.TRAINING: "Training, a learning plan or a PDR entry",
    ActionType.NO_FURTHER_ACTION: "No further action",
}


class ActionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DeadlineKind(StrEnum):
    ACCOUNT = "account"
    DECISION = "decision"
    DISCUSSION = "discussion"
    REPORT = "report"
    ACTION_REVIEW = "action_review"
    COMPLAINANT_UPDATE = "complainant_update"
    OUTCOME_LETTER = "outcome_letter"
    PDR = "pdr"
    REPORT_CHECK = "report_check"

    @property
    def label(self) -> str:
        return DEADLINE_LABELS[self]


DEADLINE_LABELS = {
    DeadlineKind.ACCOUNT: "The officer's account",
    DeadlineKind.DECISION: "Decision",
    DeadlineKind.DISCUSSION: "Reflective practice discussion",
    DeadlineKind.REPORT: "Report",
    DeadlineKind.ACTION_REVIEW: "Action-plan review",
    DeadlineKind.COMPLAINANT_UPDATE: "Progress update to the complainant",
    DeadlineKind.OUTCOME_LETTER: "Outcome letter to the complainant",
    DeadlineKind.PDR: "Report discussed at the officer's PDR",
    DeadlineKind.REPORT_CHECK: "PSD's quality check of the report",
}


class DeadlineStatus(StrEnum):
    OPEN = "open"
    MET = "met"
    MISSED = "missed"
    CANCELLED = "cancelled"


class OutboxStatus(StrEnum):
    """An email's delivery: waiting (or backing off), claimed by a sender, delivered, or given
    up after its last attempt (tasks/outbox.py)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class MeetingFormat(StrEnum):
    """How the reflective practice discussion is held; the value is what people read."""

    IN_PERSON = "In person"
    PHONE = "Phone call"
    VIDEO = "Video call"


class InvitationStatus(StrEnum):
    """One version of the officer's invitation: the one in force, replaced by a move, or a
    cancellation."""

    SENT = "sent"
    REPLACED = "replaced"
    CANCELLED = "cancelled"


class MeetingOutcome(StrEnum):
    HELD_ENGAGED = "held_engaged"
    DID_NOT_ATTEND = "did_not_attend"
    DID_NOT_ENGAGE = "did_not_engage"


def _words(code: str) -> str:
    """'closed_nfa' -> 'Closed nfa': the fallback reading of a code without a label of its own."""
    return code.replace("_", " ").capitalize()
