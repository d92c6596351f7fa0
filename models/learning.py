"""The organisational learning register (reg 70(2)(e), 70(4)): one item per lesson for line
management or the force in a filed report, kept apart from the officer's case.

An item holds no officer name, collar number or complainant detail; its link to the case is for
PSD only. Items tagged multi-agency come from a reflective practice meeting (seed 003) and hold
no child's, family member's or professional's name. Its history is an append-only list of
events (`LearningItemEvent`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.case import utc_now

RPRP_ORIGIN = "rprp"  # a lesson of a reflective review's report
MULTI_AGENCY = "multi-agency"  # a learning point of a multi-agency reflective practice meeting


class LearningItem(SQLModel, table=True):
    __tablename__ = "learning_item"
    # One item per lesson of a report's field (or a meeting's): replays find it there.
    __table_args__ = (UniqueConstraint("case_id", "source", "part"),
                      UniqueConstraint("meeting_id", "source", "part"))

    id: int | None = Field(default=None, primary_key=True)
    # An RPRP case's item has its case; a reflective practice meeting's has its meeting instead.
    case_id: int | None = Field(default=None, foreign_key="rprp_case.id", index=True)
    meeting_id: int | None = Field(default=None, foreign_key="rpm_meeting.id", index=True)
    origin: str = Field(default=RPRP_ORIGIN, max_length=20, index=True)
    source: str = Field(default="force_lessons", max_length=40)  # the report's field
    part: int = 1  # the lesson's place in that field
    theme: str = Field(default="", max_length=80)  # empty until PSD assigns one
    text: str = Field(sa_column=Column(Text, nullable=False))
    unit: str = Field(default="", max_length=200)
    owner: str = Field(default="", max_length=254)  # the owner's email
    target_on: date | None = None
    status: str = Field(default="open", max_length=20, index=True)
    status_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    closing_note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class LearningItemEvent(SQLModel, table=True):
    __tablename__ = "learning_item_event"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="learning_item.id", index=True)
    at: datetime = Field(default_factory=utc_now)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=60)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class LearningBoardPack(SQLModel, table=True):
    """The monthly learning board's pack, built once per month and kept, so the page the board
    reads shows the figures the email gave. `figures` is the pack as JSON (counts, item
    references and their non-identifying text; never a case, officer or complainant)."""

    __tablename__ = "learning_board_pack"

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, unique=True)  # YYYY-MM, the month the pack covers
    as_of: date  # the run date: items overdue are those overdue on this day
    figures: str = Field(sa_column=Column(Text, nullable=False))
    built_at: datetime = Field(default_factory=utc_now)
