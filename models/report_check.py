"""A report held for PSD's quality check: one row per round the reviewer submits it.

The content is the reviewer's answer as JSON with the discussion summary unsealed (it is the
case DB's, never Prefect's); accepting a round files the report from it (tasks/report.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.case import utc_now


class ReportDraft(SQLModel, table=True):
    __tablename__ = "report_draft"
    __table_args__ = (UniqueConstraint("case_id", "round"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    round: int
    content: str = Field(sa_column=Column(Text, nullable=False))
    submitted_by: str = Field(max_length=254)
    submitted_at: datetime = Field(default_factory=utc_now)
    # PSD's answer to this round: "accepted" or "returned" (empty while it waits).
    outcome: str = Field(default="", max_length=20)
    psd_comments: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    decided_by: str = Field(default="", max_length=254)
    decided_at: datetime | None = None
