"""Referrals and answers the bench sends (adapted from tests/support/cases.py)."""

from __future__ import annotations

import itertools
import os
from datetime import date, timedelta
from typing import Any

REVIEWER = "sgt.reviewer@force.example"
PSD = "psd@force.example"
_numbers = itertools.count(1)
_RUN = os.getpid() % 10000


def referral_data(**overrides: Any) -> dict[str, Any]:
    """A valid referral body for POST /api/referrals; every call names a new officer."""
    n = next(_numbers)
    today = date.today()
    data: dict[str, Any] = {
        "route": "severity_assessment",
        "origin": "conduct_matter",
        "concern_reported_on": (today - timedelta(days=20)).isoformat(),
        "referred_on": (today - timedelta(days=1)).isoformat(),
        "incident_on": (today - timedelta(days=30)).isoformat(),
        "allegation_category": "Discreditable conduct",
        "rprp_reason": "Rude manner towards a member of the public during a stop",
        "behaviour_summary": f"Full internal summary of the behaviour, bench case {n}.",
        "public_summary": "An officer spoke discourteously to a member of the public.",
        "aa_decision_maker": "DI Appropriate Authority",
        "officer": {"collar_number": f"B{_RUN:04d}-{n:06d}", "name": f"Alex Officer {n}",
                    "email": f"officer{n}@force.example", "rank": "constable"},
        "reviewer": {"name": "Sgt Sam Reviewer", "email": REVIEWER, "basis": "line_manager"},
    }
    data.update(overrides)
    return data


def sample_referral(**overrides: Any):  # type: ignore[no-untyped-def]
    from tasks.intake import ReferralIn

    return ReferralIn.model_validate(referral_data(**overrides))


def report_answer() -> dict[str, Any]:
    today = date.today()
    return {
        "issue_summary": "Discourteous manner during a stop on the high street.",
        "discussion_summary": "We discussed the stop, the officer's workload and welfare.",
        "actions": [{"type": "Training, a learning plan or a PDR entry",
                     "description": "Complete the communication skills module",
                     "owner": "PC Officer", "due_on": (today + timedelta(days=30)).isoformat()}],
        "officer_lessons": "Explain the reason for a stop at the start.",
        "force_lessons": "None",
        "review_period_weeks": 12,
        "agreed_on": today.isoformat(),
        "agreement": "The officer agrees the report",
    }


def fact_finding_answer() -> dict[str, Any]:
    return {"choice": "No fact-finding needed: go to the discussion"}


def discussion_answer() -> dict[str, Any]:
    return {"choice": "Discussion held and the officer engaged",
            "held_on": date.today().isoformat()}


def open_case_in_db() -> int:
    """What the portal does first on a valid referral: store the case (no flow run yet)."""
    from rprp.db import session_scope
    from tasks.intake import create_case

    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        assert case.id is not None
        return case.id
