"""The multi-agency reflective practice meeting (seed 003): its own record, apart from RPRP cases.

The child's and family's details live here and nowhere else: Prefect sees the meeting's id, the
emails say only "a meeting you are invited to" with a link to the meeting's page.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.case import enum_type, utc_now


class MeetingState(StrEnum):
    """The seed's flowchart (Appendix 1), with its two side exits."""

    REQUESTED = "requested"                        # an agency identified the case
    INVITATIONS_SENT = "invitations_sent"          # purpose documented, invitations circulated
    MEETING_HELD = "meeting_held"
    RECORD_COMPLETED = "record_completed"          # Appendix 2 log signed by the chair
    RECORD_DISTRIBUTED = "record_distributed"      # to attendees, their managers, professionals
    SENT_TO_BUSINESS_UNIT = "sent_to_business_unit"  # with the Appendix 3 summary for the CRC
    CRC_CONSIDERED = "crc_considered"
    LEARNING_DISSEMINATED = "learning_disseminated"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"                        # meets the criteria for a formal CSPR


MEETING_ENDINGS = frozenset({MeetingState.CLOSED, MeetingState.CANCELLED, MeetingState.ESCALATED})


class AttendanceStatus(StrEnum):
    INVITED = "invited"
    CONFIRMED = "confirmed"      # for the whole meeting (ground rule 2)
    DECLINED = "declined"        # with a named colleague invited in their place


class CrcChoice(StrEnum):
    """What the Case Review Committee decides about the organisational learning points."""

    PLAN_ACTION = "Plan action on the learning and tell frontline practitioners"
    SHARE_ONLY = "Share the learning with frontline practitioners; no further action"
    ESCALATE = "The case meets the criteria for a child safeguarding practice review"


class MeetingActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class Meeting(SQLModel, table=True):
    __tablename__ = "rpm_meeting"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(default="", max_length=20, index=True)
    state: MeetingState = Field(default=MeetingState.REQUESTED, index=True,
                                sa_type=enum_type(MeetingState))
    # The child's record: confidential, never in Prefect or an email.
    child_name: str = Field(max_length=200)
    child_date_of_birth: date
    family_names: str = Field(default="", max_length=1000)  # one per line or comma-separated
    requested_by_name: str = Field(max_length=200)
    requested_by_agency: str = Field(max_length=200)
    requested_by_email: str = Field(max_length=254)
    facilitator_name: str = Field(max_length=200)
    facilitator_email: str = Field(max_length=254)
    purpose: str = Field(sa_column=Column(Text, nullable=False))
    meeting_on: date | None = None
    place: str = Field(default="", max_length=300)
    flow_run_id: str | None = Field(default=None, max_length=36)
    held_on: date | None = None
    ending_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    crc_choice: str = Field(default="", max_length=40)
    crc_plan: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    crc_decided_by: str = Field(default="", max_length=254)
    crc_decided_on: date | None = None
    dissemination: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    closed_at: datetime | None = None


class MeetingInvitee(SQLModel, table=True):
    __tablename__ = "rpm_invitee"
    __table_args__ = (UniqueConstraint("meeting_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", index=True)
    name: str = Field(max_length=200)
    email: str = Field(max_length=254)
    agency: str = Field(max_length=200)
    role: str = Field(max_length=200)
    manager_email: str = Field(default="", max_length=254)
    status: AttendanceStatus = Field(default=AttendanceStatus.INVITED,
                                     sa_type=enum_type(AttendanceStatus))
    in_place_of_id: int | None = Field(default=None, foreign_key="rpm_invitee.id")
    replied_at: datetime | None = None
    contribution: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class LearningLog(SQLModel, table=True):
    """Appendix 2: the record of discussion, one per meeting."""

    __tablename__ = "rpm_learning_log"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", unique=True)
    case_name: str = Field(default="", max_length=200)
    issues_and_timescales: str = Field(default="", sa_column=Column(Text, nullable=False))
    learning_points: str = Field(default="", sa_column=Column(Text, nullable=False))
    cross_agency_learning: str = Field(default="", sa_column=Column(Text, nullable=False))
    single_agency_learning: str = Field(default="", sa_column=Column(Text, nullable=False))
    conclusions: str = Field(default="", sa_column=Column(Text, nullable=False))
    signed_by_chair: str = Field(default="", max_length=200)
    signed_on: date | None = None


class TimelineEntry(SQLModel, table=True):
    """A dated point of the child's journey, with what was learnt there."""

    __tablename__ = "rpm_timeline_entry"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", index=True)
    on: date
    what_happened: str = Field(sa_column=Column(Text, nullable=False))
    learning_point: str = Field(default="", sa_column=Column(Text, nullable=False))


class MeetingAction(SQLModel, table=True):
    __tablename__ = "rpm_action"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", index=True)
    description: str = Field(sa_column=Column(Text, nullable=False))
    owner: str = Field(max_length=200)
    owner_email: str = Field(default="", max_length=254)
    due_on: date
    status: MeetingActionStatus = Field(default=MeetingActionStatus.OPEN,
                                        sa_type=enum_type(MeetingActionStatus))
    done_on: date | None = None


class CrcSummary(SQLModel, table=True):
    """Appendix 3: what the Case Review Committee sees. Holds no name: the age, never the child."""

    __tablename__ = "rpm_crc_summary"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", unique=True)
    child_age: int
    meeting_on: date
    chair: str = Field(max_length=200)  # the chair's role and agency, not their name
    learning_to_share: str = Field(sa_column=Column(Text, nullable=False))
    saved_at: datetime = Field(default_factory=utc_now)


class MeetingEvent(SQLModel, table=True):
    """The meeting's append-only audit trail."""

    __tablename__ = "rpm_event"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", index=True)
    at: datetime = Field(default_factory=utc_now)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=100)
    from_state: str | None = Field(default=None, max_length=40)
    to_state: str | None = Field(default=None, max_length=40)
    detail: str = Field(default="", max_length=1000)


class CrcSubmission(SQLModel, table=True):
    """A Case Review Committee decision that came through the gateway: who took it (the signed-in
    person), for which pause of the meeting's run, the plan sealed here (Prefect's input holds
    only `sealed:<token>`) and a hash of exactly what was forwarded, so the flow applies only a
    decision the gateway checked and takes the decider from here, never from the input."""

    __tablename__ = "rpm_crc_submission"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="rpm_meeting.id", index=True)
    step_key: str = Field(max_length=100)
    flow_run_id: str = Field(max_length=36)
    decided_by: str = Field(max_length=254)
    token: str = Field(unique=True, max_length=64)
    plan: str = Field(sa_column=Column(Text, nullable=False))
    input_hash: str = Field(max_length=64)
    submitted_at: datetime = Field(default_factory=utc_now)
