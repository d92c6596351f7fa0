"""Tables of the central record that are not live casework: cases imported from the force's
previous system, and the workforce headcounts that disproportionality rates are measured against.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.case import utc_now


class ImportedCase(SQLModel, table=True):
    """A past case loaded by `rprp import cases`: a record, never a live case.

    Its row in `rprp_case` carries what every case has; this row marks it as imported (so no flow
    run is started or woken for it) and keeps what only history has: the other system's
    reference and the outcome, dates and flags as that system recorded them.
    """

    __tablename__ = "imported_case"

    case_id: int = Field(foreign_key="rprp_case.id", primary_key=True)
    reference: str = Field(unique=True, max_length=100)
    outcome: str = Field(max_length=40)
    closed_on: date | None = None
    non_engagement: bool | None = None
    referred_back: bool | None = None
    report_filed_on: date | None = None
    # Working days (England and Wales, RPRP_EXTRA_HOLIDAYS as then) from referral to the
    # report, counted at import: the trends' time-to-report figure reads it, so a decade of
    # history is not recounted on every page.
    report_working_days: int | None = None
    imported_at: datetime = Field(default_factory=utc_now)


class WorkforceHeadcount(SQLModel, table=True):
    """How many officers of a group the force had on a day (an HR snapshot): the denominator of
    referral rates per 1,000."""

    __tablename__ = "workforce_headcount"
    __table_args__ = (UniqueConstraint("as_of", "characteristic", "group"),)

    id: int | None = Field(default=None, primary_key=True)
    as_of: date = Field(index=True)
    characteristic: str = Field(max_length=40)
    group: str = Field(max_length=100)
    headcount: int
