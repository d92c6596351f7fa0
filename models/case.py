"""SQLModel tables of the case record: the system of record, not Prefect.

Instants are aware UTC (`utc_now()`), dates are calendar dates in Europe/London.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import Enum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import AutoString, Field, SQLModel

from models.enums import (
    ActionStatus,
    ActionType,
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    EmploymentStatus,
    InvitationStatus,
    MeetingFormat,
    MeetingOutcome,
    Origin,
    OutboxStatus,
    Rank,
    ReviewBody,
    ReviewerBasis,
    Route,
)


def enum_type(enum: type[Enum]) -> SAEnum:
    """Store enum values as plain strings, so analysts read them and migrations stay simple."""
    return SAEnum(enum, native_enum=False, length=40, values_callable=lambda e: [m.value for m in e])


def utc_now() -> datetime:
    """Aware UTC: the one form instants take in the case record."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC from any datetime; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


to_db = as_utc


class Officer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    collar_number: str = Field(index=True, unique=True, max_length=20)
    name: str = Field(max_length=200)
    email: str = Field(max_length=254)
    rank: Rank = Field(sa_type=enum_type(Rank))
    probationer: bool = False
    special_constable: bool = False
    unit: str = Field(default="", max_length=200)
    employment_status: EmploymentStatus = Field(
        default=EmploymentStatus.SERVING, sa_type=enum_type(EmploymentStatus)
    )
    left_on: date | None = None

    @property
    def upp_available(self) -> bool:
        """The Performance Regulations exclude probationer constables and ranks above Ch Supt."""
        return not (self.probationer and self.rank is Rank.CONSTABLE) and not (
            self.rank.above_chief_superintendent
        )


class Case(SQLModel, table=True):
    __tablename__ = "rprp_case"

    id: int | None = Field(default=None, primary_key=True)
    state: CaseState = Field(
        default=CaseState.REFERRAL_RECEIVED, index=True, sa_type=enum_type(CaseState)
    )
    idempotency_key: str | None = Field(default=None, unique=True, max_length=100)

    route: Route = Field(sa_type=enum_type(Route))
    origin: Origin = Field(sa_type=enum_type(Origin))
    concern_reported_on: date
    referred_on: date
    incident_on: date
    allegation_category: str = Field(max_length=200)
    rprp_reason: str = Field(max_length=500)
    behaviour_summary: str = Field(sa_column=Column(Text, nullable=False))
    public_summary: str = Field(sa_column=Column(Text, nullable=False))
    sexual_conduct: bool = False
    aa_decision_maker: str = Field(max_length=200)
    aa_decision_maker_role: str = Field(default="", max_length=200)

    officer_id: int = Field(foreign_key="officer.id", index=True)

    reviewer_name: str = Field(max_length=200)
    reviewer_email: str = Field(max_length=254)
    reviewer_rank_or_grade: str = Field(default="", max_length=100)
    reviewer_basis: ReviewerBasis = Field(sa_type=enum_type(ReviewerBasis))
    reviewer_aa_opinion: str = Field(default="", max_length=1000)

    complainant_name: str | None = Field(default=None, max_length=200)
    complainant_email: str | None = Field(default=None, max_length=254)
    complainant_address: str | None = Field(default=None, max_length=500)
    complainant_review_body: ReviewBody | None = Field(
        default=None, sa_type=enum_type(ReviewBody)
    )

    flow_run_id: str | None = Field(default=None, max_length=36)
    notice_round: int = 1
    transition_count: int = 0
    rejected_inputs: int = 0
    # Answers that kept the case in its state (an invitation sent or moved): part of the wait
    # key, so the step is asked again with a fresh form. Reset on every transition.
    step_answers: int = 0
    account_deadline_missed: bool = False
    wake_requested: bool = Field(default=False, index=True)
    closed_reason: str = Field(default="", max_length=500)

    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    closed_at: datetime | None = None

    @property
    def reference(self) -> str:
        return f"RPRP-{self.id:06d}"


class MonitoringRecord(SQLModel, table=True):
    """Protected characteristics as at referral: for disproportionality monitoring only.

    Never passed to Prefect, never in an email.
    """

    case_id: int = Field(foreign_key="rprp_case.id", primary_key=True)
    ethnicity: str = Field(default="not_stated", max_length=60)
    sex: str = Field(default="not_stated", max_length=30)
    age_band: str = Field(default="not_stated", max_length=30)
    disability: str = Field(default="not_stated", max_length=30)
    religion: str = Field(default="not_stated", max_length=60)
    sexual_orientation: str = Field(default="not_stated", max_length=60)


class Account(SQLModel, table=True):
    """The officer's account: confidential, inadmissible in later proceedings; DB only."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    notice_round: int = 1
    text: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utc_now)
    late: bool = False
    version: int = 1


class Decision(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("case_id", "step_key"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    step_key: str = Field(max_length=100)
    kind: str = Field(max_length=60)
    choice: str = Field(max_length=60)
    decided_by: str = Field(max_length=254)
    reasons: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    decided_at: datetime = Field(default_factory=utc_now)


class Report(SQLModel, table=True):
    """The Reflective Review Development Report with the reg 70(2) content."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", unique=True)
    issue_summary: str = Field(sa_column=Column(Text, nullable=False))
    discussion_summary: str = Field(sa_column=Column(Text, nullable=False))
    officer_lessons: str = Field(sa_column=Column(Text, nullable=False))
    force_lessons: str = Field(sa_column=Column(Text, nullable=False))
    review_period_weeks: int
    agreed_on: date
    officer_agrees: bool = True
    officer_comments: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    submitted_by: str = Field(max_length=254)
    submitted_at: datetime = Field(default_factory=utc_now)
    sent_to_aa_at: datetime | None = None
    pdr_due_on: date
    # What the complainant's outcome letter says about the learning: written for them.
    complainant_summary: str = Field(default="", sa_column=Column(Text, nullable=False,
                                                                  default=""))
    # Reg 70(6): when the report was discussed at the officer's PDR, and who recorded it.
    pdr_discussed_on: date | None = None
    pdr_recorded_by: str = Field(default="", max_length=254)


class Action(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    type: ActionType = Field(sa_type=enum_type(ActionType))
    description: str = Field(max_length=1000)
    owner: str = Field(max_length=200)
    due_on: date
    status: ActionStatus = Field(default=ActionStatus.OPEN, sa_type=enum_type(ActionStatus))
    closed_at: datetime | None = None


class ActionReview(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("case_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    number: int
    due_on: date
    flow_run_id: str | None = Field(default=None, max_length=36)
    reviewed_by: str | None = Field(default=None, max_length=254)
    completed_at: datetime | None = None


class ActionReviewNote(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="actionreview.id", index=True)
    action_id: int = Field(foreign_key="action.id", index=True)
    note: str = Field(sa_column=Column(Text, nullable=False))
    closed: bool


class Deadline(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("case_id", "kind", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    kind: DeadlineKind = Field(sa_type=enum_type(DeadlineKind))
    round: int = 1
    due_at: datetime = Field(index=True)
    calendar_version: str = Field(max_length=120)
    status: DeadlineStatus = Field(
        default=DeadlineStatus.OPEN, index=True, sa_type=enum_type(DeadlineStatus)
    )
    met_at: datetime | None = None


class Outbox(SQLModel, table=True):
    """One email to send; written in the same transaction as the change that causes it."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    case_id: int | None = Field(default=None, foreign_key="rprp_case.id", index=True)
    kind: str = Field(max_length=60)
    recipient: str = Field(max_length=254)
    subject: str = Field(max_length=300)
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    body_html: str = Field(sa_column=Column(Text, nullable=False))
    # Plain strings (the enum's values), as stored since the first migration.
    status: OutboxStatus = Field(default=OutboxStatus.PENDING, index=True,
                                 sa_type=AutoString(length=20))
    attempts: int = 0
    # When the next attempt is due; for a failed email, when it was given up.
    next_attempt_at: datetime = Field(default_factory=utc_now, index=True)
    last_error: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utc_now)
    sent_at: datetime | None = None
    # At most one attachment (the discussion invitation's .ics), rendered with the row.
    attachment_filename: str = Field(default="", max_length=200)
    attachment_type: str = Field(default="", max_length=100)
    attachment_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class DiscussionInvitation(SQLModel, table=True):
    """One version of the officer's invitation to the reflective practice discussion.

    A move or a cancellation adds the next version (iCalendar SEQUENCE) of the same meeting
    (same UID) and marks the previous one replaced; a re-invitation after a missed or cancelled
    meeting is a new meeting with its own UID. The outcome is recorded on the version the
    officer was last sent, so non-attendance points at the invitation that was missed.
    """

    __table_args__ = (UniqueConstraint("case_id", "meeting", "sequence"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    meeting: int = 1
    sequence: int = 0
    uid: str = Field(max_length=200)
    starts_at: datetime
    duration_minutes: int = 60
    meeting_format: MeetingFormat = Field(sa_type=enum_type(MeetingFormat))
    place: str = Field(max_length=500)
    status: InvitationStatus = Field(default=InvitationStatus.SENT,
                                     sa_type=enum_type(InvitationStatus))
    beyond_target: bool = False
    target_due_at: datetime | None = None
    invited_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utc_now)
    outcome: MeetingOutcome | None = Field(default=None, sa_type=enum_type(MeetingOutcome))
    outcome_recorded_by: str | None = Field(default=None, max_length=254)
    outcome_recorded_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    at: datetime = Field(default_factory=utc_now)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=100)
    from_state: str | None = Field(default=None, max_length=40)
    to_state: str | None = Field(default=None, max_length=40)
    detail: str = Field(default="", max_length=1000)
    # The code the step ran under (tasks/code_version.py); None outside a flow run.
    flow_version: str | None = Field(default=None, max_length=40)
    deployment_version: str | None = Field(default=None, max_length=80)


class DecisionSubmission(SQLModel, table=True):
    """A decision that came through the gateway: who sent it, for which step, and a hash of the
    exact input forwarded to Prefect. The flow applies an answer only if such a row matches it,
    and takes the decider from here, never from the input."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    step_key: str = Field(max_length=100)
    flow_run_id: str = Field(max_length=36)
    decided_by: str = Field(max_length=254)
    decided_as: str = Field(max_length=40)
    input_hash: str = Field(max_length=64)
    submitted_at: datetime = Field(default_factory=utc_now)


class SealedText(SQLModel, table=True):
    """Confidential text taken out of a decision before Prefect saw it; Prefect's input holds
    only `sealed:<token>`."""

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, max_length=64)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    step_key: str = Field(max_length=100)
    field_name: str = Field(max_length=100)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utc_now)
