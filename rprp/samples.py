"""Sample referrals and report answers: the one builder `rprp demo`, the tests and the bench use.

A referral is built as the JSON body of POST /api/referrals (validate it with
`tasks.intake.ReferralIn` for a record), so this module needs neither the domain nor Prefect.
Each one names a new officer, with a collar number unique to this process and call: a
referral's content is its idempotency key, so two samples never merge into one case, and
samples from two runs against the same case DB (the demo run twice, the bench's driver) never
share an officer. Overrides merge into the sample: a dict into the part it names
(`officer={"probationer": True}`), anything else replaces the field.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import date, timedelta
from typing import Any

REVIEWER = "sgt.reviewer@force.example"
PSD = "psd@force.example"
_numbers = itertools.count(1)
_RUN = secrets.token_hex(3).upper()  # this process's part of each collar number


def referral_data(*, label: str = "sample", today: date | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """A valid referral of a discourteous stop, referred yesterday; `label` names what made it
    in its behaviour summary (the demo's cases say "demo case 3")."""
    n = next(_numbers)
    today = today or date.today()
    data: dict[str, Any] = {
        "route": "severity_assessment",
        "origin": "conduct_matter",
        "concern_reported_on": (today - timedelta(days=20)).isoformat(),
        "referred_on": (today - timedelta(days=1)).isoformat(),
        "incident_on": (today - timedelta(days=30)).isoformat(),
        "allegation_category": "Discreditable conduct",
        "rprp_reason": "Rude manner towards a member of the public during a stop",
        "behaviour_summary": f"Full internal summary of the behaviour, {label} case {n}.",
        "public_summary": "An officer spoke discourteously to a member of the public.",
        "aa_decision_maker": "DI Appropriate Authority",
        "officer": {"collar_number": f"PC{_RUN}-{n:06d}", "name": f"Alex Officer {n}",
                    "email": f"officer{n}@force.example", "rank": "constable"},
        "reviewer": {"name": "Sgt Sam Reviewer", "email": REVIEWER, "basis": "line_manager"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def report_answer(*, today: date | None = None, **overrides: Any) -> dict[str, Any]:
    """The report form as a reviewer fills it in: agreed today, one action due in 30 days, a
    review in 12 weeks."""
    today = today or date.today()
    answer: dict[str, Any] = {
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
    answer.update(overrides)
    return answer
