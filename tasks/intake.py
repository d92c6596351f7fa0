"""A PSD referral becomes a case: validated in full, stored at once, never twice."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import Session, select

from models import Case, MonitoringRecord, Officer
from models.enums import (
    EmploymentStatus,
    Origin,
    Rank,
    ReviewBody,
    ReviewerBasis,
    Route,
)
from tasks.records import audit

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COLLAR = re.compile(r"^[A-Za-z0-9-]{1,20}$")
PART6_START = date(2020, 2, 1)


def _email(value: str) -> str:
    value = value.strip()
    if not EMAIL.match(value):
        raise ValueError("Enter an email address in the correct format, like name@force.police.uk")
    return value.lower()


class OfficerIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    collar_number: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=2, max_length=200)
    email: str = Field(max_length=254)
    rank: Rank
    probationer: bool = False
    special_constable: bool = False
    unit: str = Field(default="", max_length=200)

    _check_email = field_validator("email")(_email)

    @field_validator("collar_number")
    @classmethod
    def _collar(cls, value: str) -> str:
        if not COLLAR.match(value):
            raise ValueError("Collar number may contain only letters, digits and hyphens")
        return value.upper()


class MonitoringIn(BaseModel):
    """Protected characteristics as at referral, for disproportionality monitoring only."""

    model_config = ConfigDict(str_strip_whitespace=True)

    ethnicity: str = Field(default="not_stated", max_length=60)
    sex: str = Field(default="not_stated", max_length=30)
    age_band: str = Field(default="not_stated", max_length=30)
    disability: str = Field(default="not_stated", max_length=30)
    religion: str = Field(default="not_stated", max_length=60)
    sexual_orientation: str = Field(default="not_stated", max_length=60)


class ReviewerIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=200)
    email: str = Field(max_length=254)
    rank_or_grade: str = Field(default="", max_length=100)
    basis: ReviewerBasis
    aa_opinion: str = Field(default="", max_length=1000)

    _check_email = field_validator("email")(_email)

    @model_validator(mode="after")
    def _staff_needs_opinion(self) -> ReviewerIn:
        if self.basis is ReviewerBasis.SENIOR_STAFF and not self.aa_opinion:
            raise ValueError(
                "A staff reviewer needs the appropriate authority's opinion that they are more "
                "senior than the officer (aa_opinion)"
            )
        return self


class ComplainantIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=500)
    review_body: ReviewBody = ReviewBody.LOCAL_POLICING_BODY

    @field_validator("email")
    @classmethod
    def _optional_email(cls, value: str | None) -> str | None:
        return _email(value) if value else None

    @model_validator(mode="after")
    def _reachable(self) -> ComplainantIn:
        if not self.email and not self.address:
            raise ValueError("Give the complainant's email address or postal address")
        return self


class ReferralIn(BaseModel):
    """Everything PSD records when referring a matter into RPRP."""

    model_config = ConfigDict(str_strip_whitespace=True)

    route: Route
    origin: Origin
    concern_reported_on: date
    referred_on: date
    incident_on: date
    allegation_category: str = Field(min_length=2, max_length=200)
    rprp_reason: str = Field(min_length=5, max_length=500)
    behaviour_summary: str = Field(min_length=10, max_length=10000)
    public_summary: str = Field(min_length=10, max_length=2000)
    sexual_conduct: bool = False
    aa_decision_maker: str = Field(min_length=2, max_length=200)
    aa_decision_maker_role: str = Field(default="", max_length=200)
    officer: OfficerIn
    reviewer: ReviewerIn
    complainant: ComplainantIn | None = None
    monitoring: MonitoringIn = Field(default_factory=MonitoringIn)

    @model_validator(mode="after")
    def _consistent(self) -> ReferralIn:
        today = date.today()
        if self.referred_on > today:
            raise ValueError("The referral date cannot be in the future")
        if self.incident_on > self.concern_reported_on:
            raise ValueError("The incident date must be on or before the date it was reported")
        if self.concern_reported_on > self.referred_on:
            raise ValueError("The concern must be reported on or before the referral date")
        if self.concern_reported_on < PART6_START:
            raise ValueError(
                "Matters reported before 1 February 2020 fall under the 2012 Regulations: "
                "RPRP is not available"
            )
        if self.origin.has_complainant_duties and self.complainant is None:
            raise ValueError("A public complaint needs the complainant's details")
        if self.reviewer.email == self.officer.email:
            raise ValueError("The reviewer cannot be the participating officer")
        return self

    def fingerprint(self) -> str:
        """Same referral content, same key: a double submit finds the first case."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:40]


def create_case(session: Session, referral: ReferralIn, *, actor: str,
                idempotency_key: str | None = None) -> tuple[Case, bool]:
    """Store the referral; returns (case, created). An earlier case with the same key wins."""
    key = idempotency_key or referral.fingerprint()
    existing = session.exec(select(Case).where(Case.idempotency_key == key)).first()
    if existing is not None:
        return existing, False

    officer = session.exec(
        select(Officer).where(Officer.collar_number == referral.officer.collar_number)
    ).first()
    if officer is None:
        officer = Officer(**referral.officer.model_dump())
    else:
        for field, value in referral.officer.model_dump().items():
            setattr(officer, field, value)
    officer.employment_status = EmploymentStatus.SERVING
    session.add(officer)
    session.flush()

    complainant = referral.complainant
    assert officer.id is not None  # flushed above
    case = Case(
        idempotency_key=key,
        route=referral.route,
        origin=referral.origin,
        concern_reported_on=referral.concern_reported_on,
        referred_on=referral.referred_on,
        incident_on=referral.incident_on,
        allegation_category=referral.allegation_category,
        rprp_reason=referral.rprp_reason,
        behaviour_summary=referral.behaviour_summary,
        public_summary=referral.public_summary,
        sexual_conduct=referral.sexual_conduct,
        aa_decision_maker=referral.aa_decision_maker,
        aa_decision_maker_role=referral.aa_decision_maker_role,
        officer_id=officer.id,
        reviewer_name=referral.reviewer.name,
        reviewer_email=referral.reviewer.email,
        reviewer_rank_or_grade=referral.reviewer.rank_or_grade,
        reviewer_basis=referral.reviewer.basis,
        reviewer_aa_opinion=referral.reviewer.aa_opinion,
        complainant_name=complainant.name if complainant else None,
        complainant_email=complainant.email if complainant else None,
        complainant_address=complainant.address if complainant else None,
        complainant_review_body=complainant.review_body if complainant else None,
    )
    session.add(case)
    session.flush()
    assert case.id is not None
    session.add(MonitoringRecord(case_id=case.id, **referral.monitoring.model_dump()))
    audit(session, case, actor=actor, action="referral_received",
          detail=f"{case.route.label}; {case.origin.label.lower()}")
    return case, True
