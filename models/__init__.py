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

__all__ = [
    "Account", "Action", "ActionReview", "ActionReviewNote", "AuditEvent", "Case", "Deadline",
    "Decision", "DecisionSubmission", "DiscussionInvitation", "MonitoringRecord", "Officer",
    "Outbox", "Report", "SealedText", "as_utc", "to_db", "utc_now",
]
