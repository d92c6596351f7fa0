"""PSD's quality check of a report before it is filed (seed 001: "PSD checks reflective logs
once they have been completed"), and the help the reviewer gets writing it.

The reviewer's submitted report is held as a draft round (models/report_check.py); PSD accepts
it (the report is filed, as without the check) or returns it with comments (the report step opens
again, prefilled with the round's text). Whether the check applies is force policy
(`RPRP_REPORT_QUALITY_CHECK`). No Prefect here: the rules take the caller's session and `now`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session, col, func, select

from infra.settings import get_settings
from models import Case, Report, ReportDraft, as_utc
from models.choices import KEEP_DISCUSSION_SUMMARY, ActionChoice, Agreement

ACCEPTED, RETURNED = "accepted", "returned"
TOKEN_WORDS = 3  # a reg 70(2) part of fewer words than this is a token phrase, not content
NONE_WORDS = {"none", "n/a", "na", "nil", "no"}

PSD_GUIDANCE = (
    "**This is your first report.** PSD's guidance: write so that someone who was not there "
    "understands what happened and what was agreed. Give the issue and its background, what the "
    "discussion covered (not word for word), each action with its owner, type and due date, the "
    "lessons for the officer, and for line management or the force (write *None* if there are "
    "none), and the review period. Professional Standards will check it with you before it is "
    "filed; ask them to go through it with you beforehand if you wish.")


def filed_reports_by(session: Session, reviewer_email: str) -> int:
    """How many reports this reviewer has filed, on any case."""
    count = session.exec(
        select(func.count()).select_from(Report).join(Case, col(Case.id) == col(Report.case_id))
        .where(func.lower(Case.reviewer_email) == reviewer_email.lower())).one()
    return int(count)


def check_applies(session: Session, case: Case) -> bool:
    """The force's policy: every report, a reviewer's first N reports, or none."""
    settings = get_settings()
    if settings.report_quality_check == "always":
        return True
    if settings.report_quality_check == "never":
        return False
    return filed_reports_by(session, case.reviewer_email) < settings.report_quality_check_first_n


def first_report(session: Session, case: Case) -> bool:
    """The reviewer has never filed a report: they get PSD's guidance with this one."""
    return filed_reports_by(session, case.reviewer_email) == 0


def rounds(session: Session, case_id: int) -> list[ReportDraft]:
    return list(session.exec(select(ReportDraft).where(ReportDraft.case_id == case_id)
                             .order_by(col(ReportDraft.round))))


def open_round(session: Session, case_id: int) -> ReportDraft | None:
    """The round PSD has not answered yet."""
    latest = rounds(session, case_id)
    return latest[-1] if latest and not latest[-1].outcome else None


def last_returned(session: Session, case_id: int) -> ReportDraft | None:
    """The round PSD returned last, while the reviewer has not submitted another."""
    latest = rounds(session, case_id)
    return latest[-1] if latest and latest[-1].outcome == RETURNED else None


def hold_for_check(session: Session, case: Case, answer: Any, discussion_summary: str,
                   decider: str, now: datetime) -> ReportDraft:
    """Keep the submitted report as a new round for PSD (the summary unsealed, in the DB)."""
    assert case.id is not None
    content = answer.model_dump(mode="json")
    content["discussion_summary"] = discussion_summary
    draft = ReportDraft(case_id=case.id, round=len(rounds(session, case.id)) + 1,
                        content=json.dumps(content), submitted_by=decider,
                        submitted_at=as_utc(now))
    session.add(draft)
    session.flush()
    return draft


def decide_round(session: Session, draft: ReportDraft, outcome: str, comments: str,
                 decider: str, now: datetime) -> None:
    draft.outcome, draft.psd_comments = outcome, comments.strip()
    draft.decided_by, draft.decided_at = decider, as_utc(now)
    session.add(draft)


def draft_answer(draft: ReportDraft) -> SimpleNamespace:
    """The round as the answer `file_report` takes (the form's enums restored)."""
    data = json.loads(draft.content)
    actions = [SimpleNamespace(type=ActionChoice(a["type"]), description=a["description"],
                               owner=a["owner"], due_on=date.fromisoformat(a["due_on"]))
               for a in data.get("actions", [])]
    return SimpleNamespace(**{
        **data, "actions": actions, "agreed_on": date.fromisoformat(data["agreed_on"]),
        "agreement": Agreement(data["agreement"])})


def returned_text(draft: ReportDraft) -> dict[str, Any]:
    """What the report form is prefilled with when PSD returned a round (Prefect may hold these
    fields; the discussion summary stays sealed: the form says to keep it)."""
    data = json.loads(draft.content)
    keep = ("issue_summary", "officer_lessons", "force_lessons", "review_period_weeks",
            "complainant_summary")
    values = {k: data[k] for k in keep if data.get(k)}
    values["discussion_summary"] = KEEP_DISCUSSION_SUMMARY
    return values


def initial_report(case: Case) -> dict[str, Any]:
    """The report's first prefill, from what the referral says (seed 001: auto-populate)."""
    return {"issue_summary": f"{case.public_summary.strip()}\n\nReferred to RPRP because: "
                             f"{case.rprp_reason.strip()}"}


# -- the checklist ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    item: str
    ok: bool
    missing: str = ""


PARTS = (
    ("issue_summary", "Summary of the issue and its background (reg 70(2)(a))"),
    ("discussion_summary", "Summary of the discussion (reg 70(2)(b))"),
    ("officer_lessons", "Lessons for the officer (reg 70(2)(d))"),
    ("force_lessons", "Lessons for line management or the force (reg 70(2)(e))"),
)


def _words(text: str) -> int:
    return len(str(text or "").split())


def checklist(content: dict[str, Any]) -> list[Check]:
    """What makes the record useful to a third party (seed 001): each reg 70(2) part present
    and more than a token phrase, each action with an owner, a type and a due date, the review
    period set. Pure: the content is the round's answer as stored."""
    checks: list[Check] = []
    for field, item in PARTS:
        text = str(content.get(field) or "").strip()
        if field == "force_lessons" and text.lower().rstrip(".") in NONE_WORDS:
            checks.append(Check(item + ": none stated", True))
            continue
        ok = _words(text) >= TOKEN_WORDS
        checks.append(Check(item, ok, "" if ok else
                            ("missing" if not text else "only a token phrase")))
    actions = content.get("actions") or []
    if not actions:
        checks.append(Check("Key actions (reg 70(2)(c))", False, "no action"))
    for n, action in enumerate(actions, 1):
        gaps = [name for name, key in (("owner", "owner"), ("type", "type"),
                                       ("due date", "due_on")) if not action.get(key)]
        if _words(action.get("description", "")) < TOKEN_WORDS:
            gaps.append("what will be done")
        checks.append(Check(f"Action {n}: owner, type and due date", not gaps,
                            ", ".join(f"no {g}" for g in gaps)))
    period = content.get("review_period_weeks")
    checks.append(Check("Review period set", bool(period),
                        "" if period else "no review period"))
    return checks
