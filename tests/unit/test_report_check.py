"""PSD's quality check of the report, against the case DB alone: a return reopens the report
step with the reviewer's text and PSD's comments, each round audited; the report is filed only
once PSD accepts; the force's policy (always, a reviewer's first N reports, never) decides
whether the check applies; the checklist says what is missing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import Report, ReportDraft
from models.choices import KEEP_DISCUSSION_SUMMARY
from models.enums import CaseState, DeadlineKind, DeadlineStatus
from tasks import decisions, report_check
from tasks.briefing import describe
from tasks.casework import wait_for
from tasks.people import PSD_BASIS, REVIEWER_BASIS
from tasks.records import lock_case
from tests.support.cases import PSD, report_answer
from tests.unit.test_steps import (
    NO_FF,
    at_fact_finding_decision,
    audit,
    deadlines,
    give,
    row,
    sent,
)

S = CaseState
ACCEPT = "Accept: file the report to the appropriate authority"
RETURN = "Return it to the reviewer with comments"
COMMENTS = "Say who owns the training action and what the force should learn."


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set RPRP_REPORT_QUALITY_CHECK (and its N) for one test; the suite's default is back after."""
    yield monkeypatch
    reset_settings()


def set_policy(monkeypatch: pytest.MonkeyPatch, value: str, first_n: int = 3) -> None:
    monkeypatch.setenv("RPRP_REPORT_QUALITY_CHECK", value)
    monkeypatch.setenv("RPRP_REPORT_QUALITY_CHECK_FIRST_N", str(first_n))
    reset_settings()


def at_report(reviewer: str) -> int:
    """A case of its own reviewer (so their count of filed reports is this test's), at the
    report step."""
    case_id = at_fact_finding_decision(
        reviewer={"name": "Sgt Test Reviewer", "email": reviewer, "basis": "line_manager"})
    give(case_id, by=reviewer, choice=NO_FF)
    give(case_id, by=reviewer, choice="Discussion held and the officer engaged",
         held_on=datetime.now(UTC).date().isoformat())
    assert row(case_id).state is S.DISCUSSION_HELD
    return case_id


def new_reviewer() -> str:
    return f"sgt.{uuid.uuid4().hex[:8]}@force.example"


def psd(case_id: int, **answer: str) -> CaseState:
    return give(case_id, by=PSD, basis=PSD_BASIS, now=datetime.now(UTC), **answer)


def refusal(case_id: int, by: str, **answer: str) -> list[str]:
    """What the gateway says when it refuses an answer (nothing is forwarded to Prefect)."""
    with session_scope() as session:
        case = lock_case(session, case_id)
        wait = wait_for(case, session)
        assert wait is not None
        form = decisions.form_class(session, case, wait.kind)
        basis = PSD_BASIS if by == PSD else REVIEWER_BASIS
        step = decisions.Step(case_id, "", wait, form)
        forwarded, errors, _ = decisions.take(session, case, step, answer, by, basis,
                                              datetime.now(UTC))
        session.rollback()
    assert forwarded is None
    return errors


def report_of(case_id: int) -> Report | None:
    with session_scope() as session:
        return session.exec(select(Report).where(Report.case_id == case_id)).first()


def rounds(case_id: int) -> list[ReportDraft]:
    with session_scope() as session:
        return report_check.rounds(session, case_id)


def briefing(case_id: int) -> str:
    with session_scope() as session:
        wait = wait_for(lock_case(session, case_id), session)
    assert wait is not None
    return describe(case_id, wait)


def test_psd_returns_the_report_once_then_accepts_it_and_only_then_it_is_filed(
        policy: pytest.MonkeyPatch) -> None:
    set_policy(policy, "always")
    reviewer = new_reviewer()
    case_id = at_report(reviewer)
    assert "This is your first report" in briefing(case_id)

    assert give(case_id, by=reviewer, now=datetime.now(UTC),
                **report_answer(force_lessons="Tbc")) is S.REPORT_QUALITY_CHECK
    assert report_of(case_id) is None
    [check] = deadlines(case_id, DeadlineKind.REPORT_CHECK)
    assert check.status is DeadlineStatus.OPEN
    assert PSD in sent(case_id, "decision_needed")
    shown = briefing(case_id)
    assert "✗ Lessons for line management or the force (reg 70(2)(e)): only a token phrase" \
        in shown
    assert "workload and welfare" not in shown  # the sealed discussion summary is not shown

    assert refusal(case_id, PSD, choice=RETURN) == [
        "Write your comments for the reviewer when you return the report"]
    # PSD's step: the reviewer's answer is refused when applied, and nothing is filed.
    assert give(case_id, by=reviewer, choice=ACCEPT) is S.REPORT_QUALITY_CHECK
    assert report_of(case_id) is None
    assert audit(case_id)[-1].action.startswith("decision_rejected:")
    assert psd(case_id, choice=RETURN, comments=COMMENTS) is S.DISCUSSION_HELD
    assert report_of(case_id) is None
    reopened = briefing(case_id)
    assert "PSD returned round 1 of the report with comments" in reopened
    assert "Say who owns the training action" in reopened
    with session_scope() as session:
        case = lock_case(session, case_id)
        form = decisions.form_class(session, case, "report")
    defaults = {name: f.default for name, f in form.model_fields.items()}
    assert defaults["force_lessons"] == "Tbc"
    assert defaults["discussion_summary"] == KEEP_DISCUSSION_SUMMARY

    assert give(case_id, by=reviewer, now=datetime.now(UTC), **report_answer(
        force_lessons="Supervisors to brief teams on explaining the reason for a stop",
        discussion_summary=KEEP_DISCUSSION_SUMMARY)) is S.REPORT_QUALITY_CHECK
    from portal.actions import case_file

    page = case_file(case_id)
    assert page is not None
    assert [r.round for r in page.report_rounds] == [1, 2]
    assert all("discussion_summary" not in r.content for r in page.report_rounds)
    assert page.report_rounds[0].psd_comments == COMMENTS
    assert psd(case_id, choice=ACCEPT) is S.REPORT_SUBMITTED

    report = report_of(case_id)
    assert report is not None and report.submitted_by == reviewer
    assert report.force_lessons.startswith("Supervisors to brief")
    assert "workload and welfare" in report.discussion_summary  # round 1's, kept
    assert [(r.round, r.outcome) for r in rounds(case_id)] == [(1, "returned"), (2, "accepted")]
    assert rounds(case_id)[0].psd_comments == COMMENTS
    actions = [e.action for e in audit(case_id)]
    assert actions.count("report_sent_for_quality_check") == 2
    assert "report_quality_check:RETURN" in actions
    assert actions.index("report_quality_check:RETURN") < actions.index("report_filed")
    assert actions[-2:] == ["report_filed", "report_quality_check:ACCEPT"]
    assert deadlines(case_id, DeadlineKind.REPORT_CHECK)[-1].status is not DeadlineStatus.OPEN


def test_first_n_checks_a_reviewers_first_reports_and_files_the_later_ones_directly(
        policy: pytest.MonkeyPatch) -> None:
    set_policy(policy, "first_n", first_n=1)
    reviewer = new_reviewer()
    first = at_report(reviewer)
    assert give(first, by=reviewer, now=datetime.now(UTC), **report_answer()) \
        is S.REPORT_QUALITY_CHECK
    assert psd(first, choice=ACCEPT) is S.REPORT_SUBMITTED

    second = at_report(reviewer)
    assert "This is your first report" not in briefing(second)
    assert give(second, by=reviewer, now=datetime.now(UTC), **report_answer()) \
        is S.REPORT_SUBMITTED
    assert rounds(second) == []


def test_never_files_the_report_as_before(policy: pytest.MonkeyPatch) -> None:
    set_policy(policy, "never")
    reviewer = new_reviewer()
    case_id = at_report(reviewer)
    assert give(case_id, by=reviewer, now=datetime.now(UTC), **report_answer()) \
        is S.REPORT_SUBMITTED
    assert rounds(case_id) == [] and report_of(case_id) is not None


def test_the_report_form_is_prefilled_from_the_referral(policy: pytest.MonkeyPatch) -> None:
    set_policy(policy, "never")
    case_id = at_report(new_reviewer())
    with session_scope() as session:
        case = lock_case(session, case_id)
        form = decisions.form_class(session, case, "report")
        summary, reason = case.public_summary, case.rprp_reason
    issue = form.model_fields["issue_summary"].default
    assert summary.strip() in issue and reason.strip() in issue
    assert "issue_summary" in form.model_json_schema()["required"]


def test_the_checklist_names_each_missing_part() -> None:
    content = json.loads(json.dumps(report_answer()))
    assert all(c.ok for c in report_check.checklist(content))
    content.update(officer_lessons="ok", issue_summary="",
                   actions=[{"type": "Restorative action", "description": "Apologise",
                             "owner": "", "due_on": ""}], review_period_weeks=None)
    missing = {c.item: c.missing for c in report_check.checklist(content) if not c.ok}
    assert missing == {
        "Summary of the issue and its background (reg 70(2)(a))": "missing",
        "Lessons for the officer (reg 70(2)(d))": "only a token phrase",
        "Action 1: owner, type and due date": "no owner, no due date, no what will be done",
        "Review period set": "no review period",
    }


def test_the_sweep_reminds_psd_once_the_checks_target_has_passed(
        policy: pytest.MonkeyPatch) -> None:
    from tasks.deadline_sweep import SweepReport, overdue_steps

    set_policy(policy, "always")
    reviewer = new_reviewer()
    case_id = at_report(reviewer)
    give(case_id, by=reviewer, now=datetime.now(UTC), **report_answer())
    [check] = deadlines(case_id, DeadlineKind.REPORT_CHECK)
    overdue_steps(check.due_at.replace(tzinfo=UTC) - timedelta(hours=1), SweepReport(as_of="before"))
    assert sent(case_id, "overdue_reminder") == []
    later = check.due_at.replace(tzinfo=UTC) + timedelta(hours=1)
    overdue_steps(later, SweepReport(as_of="after"))
    overdue_steps(later + timedelta(days=1), SweepReport(as_of="next day"))
    assert sorted(sent(case_id, "overdue_reminder")) == sorted([reviewer, PSD])  # once each
