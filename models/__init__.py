"""The case record (SQLModel tables), its vocabularies, state machine and the people's forms."""

from models.case import (
    Account,
    Action,
    ActionReview,
    ActionReviewNote,
    AuditEvent,
    Case,
    Deadline,
    Decision,
    DecisionSubmission,
    DiscussionInvitation,
    MonitoringRecord,
    Officer,
    Outbox,
    Report,
    SealedText,
    as_utc,
    to_db,
    utc_now,
)
from models.central_record import ImportedCase, WorkforceHeadcount
from models.learning import LearningBoardPack, LearningItem, LearningItemEvent
from models.meetings import (
    CrcSubmission,
    CrcSummary,
    LearningLog,
    Meeting,
    MeetingAction,
    MeetingEvent,
    MeetingInvitee,
    TimelineEntry,
)
from models.report_check import ReportDraft
from models.user import AccountCode, PortalSession, PortalUser, SignInFailure

__all__ = [
    "Account", "AccountCode", "Action", "ActionReview", "ActionReviewNote", "AuditEvent", "Case",
    "Deadline", "Decision", "DecisionSubmission", "DiscussionInvitation", "ImportedCase",
    "LearningBoardPack", "LearningItem", "LearningItemEvent", "MonitoringRecord", "Officer", "Outbox",
    "PortalSession", "PortalUser", "Report", "ReportDraft", "SealedText", "SignInFailure",
    "WorkforceHeadcount",
    "as_utc", "to_db", "utc_now",
    # The reflective practice meeting (seed 003)
    "CrcSubmission", "CrcSummary", "LearningLog", "Meeting", "MeetingAction", "MeetingEvent",
    "MeetingInvitee", "TimelineEntry",
]
