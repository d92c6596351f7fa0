"""The steps of a case against the case DB alone (no Prefect server): the step table is whole,
who may decide each step, what each transition does (deadlines, outbox rows, audit events), and
when UPP may be chosen. The rules take a session and `now`, so time is given, never read."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from infra.db import session_scope
from infra.settings import get_settings
from models import ActionReview, AuditEvent, Case, Deadline, Decision, Officer, Outbox
from models.enums import TERMINAL_STATES, CaseState, DeadlineKind, DeadlineStatus
from models.forms import FORMS
from tasks import decisions, steps
from tasks.calendar import LONDON, england_and_wales
from tasks.casework import (
    Wait,
    advance,
    advance_case,
    close_from_outside,
    mark_no_account,
    record_account,
    take_answer,
    wait_for,
)
from tasks.intake import create_case
from tasks.people import PSD_BASIS, REVIEWER_BASIS
from tasks.records import lock_case
from tasks.steps import StepKind
from tests.support.cases import PSD, REVIEWER, report_answer, sample_referral

S = CaseState
NOW = datetime.now(UTC).replace(microsecond=0)
ACCOUNT = "My account of the stop, in enough words."


# -- the table --------------------------------------------------------------------------------

def test_every_open_state_has_exactly_one_step_and_every_decision_is_complete() -> None:
    automatic = {steps.SERVE_NOTICE.state, steps.SCHEDULE_ACTION_REVIEW.state,
                 S.ACCOUNT_RECEIVED, S.NO_ACCOUNT}
    open_states = set(CaseState) - set(TERMINAL_STATES)
    assert open_states == automatic | set(steps.WAITING)
    for step in steps.STEPS:
        if step.decision:
            assert step.form in FORMS, step.name
            assert step.title and step.guidance, step.name
            assert (step.apply is None) == (step.kind is StepKind.ACTION_REVIEW), step.name
    names = [s.name for s in steps.STEPS]
    assert names.count("action-review") == 2  # between reviews, and a review
    assert len(set(names)) == len(names) - 1


def test_the_flow_runs_each_step_as_a_task_named_as_the_table_names_it() -> None:
    from flows import case_lifecycle as flow

    tasks = {flow.serve_notice: steps.SERVE_NOTICE, flow.await_account: steps.AWAIT_ACCOUNT,
             flow.fact_finding_decision: steps.FACT_FINDING_DECISION,
             flow.fact_finding_outcome: steps.FACT_FINDING_OUTCOME,
             flow.refer_back_to_psd: steps.REFER_BACK_TO_PSD,
             flow.discussion_outcome: steps.DISCUSSION_OUTCOME,
             flow.non_engagement_decision: steps.NON_ENGAGEMENT_DECISION,
             flow.file_report: steps.FILE_REPORT,
             flow.report_quality_check: steps.REPORT_QUALITY_CHECK,
             flow.schedule_action_review: steps.SCHEDULE_ACTION_REVIEW,
             flow.action_review: steps.ACTION_REVIEW, flow.close_case: steps.CLOSE_CASE}
    assert {t.name: s.name for t, s in tasks.items()} == {s.name: s.name for s in tasks.values()}
    assert flow.send_mail.retries == 0  # the outbox owns retries, not Prefect
    here = flow.Here(1, "RPRP-000001", 2, S.FACT_FINDING_DECISION, None)
    assert flow.run_name(steps.FACT_FINDING_DECISION, here) == (
        "fact-finding-decision RPRP-000001 r2")


def test_stored_kinds_keep_the_values_existing_records_hold() -> None:
    assert [k.value for k in StepKind] == [
        "wake", "fact_finding_decision", "fact_finding_outcome", "authority_decision",
        "discussion_outcome", "non_engagement", "report", "action_review",
        "report_quality_check"]


# -- driving a case with the rules, as the flow's tasks do ------------------------------------

def new_case(**referral: Any) -> int:
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(**referral), actor=PSD)
        assert case.id is not None
        return case.id


def at_fact_finding_decision(**referral: Any) -> int:
    case_id = new_case(**referral)
    advance(case_id, NOW)
    record_account(case_id, 1, ACCOUNT, now=NOW + timedelta(hours=1))
    advance(case_id, NOW + timedelta(hours=1))
    assert row(case_id).state is S.FACT_FINDING_DECISION
    return case_id


def row(case_id: int) -> Case:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def give(case_id: int, by: str = REVIEWER, basis: str = REVIEWER_BASIS,
         now: datetime = NOW, **values: Any) -> CaseState:
    """An answer through the gateway's record (the decider and basis as it stamps them), then
    applied by the rule, as the flow's step task does."""
    with session_scope() as session:
        case = lock_case(session, case_id)
        wait = wait_for(case, session)
        assert wait is not None and wait.declared is not None
        form = decisions.form_class(session, case, wait.kind)
        step = decisions.Step(case_id, "", wait, form)
        forwarded, errors, _ = decisions.take(session, case, step, values, by, basis, now)
        assert forwarded is not None, errors
    with session_scope() as session:
        return take_answer(session, case_id, wait.key, forwarded, now)


def outbox(case_id: int) -> list[Outbox]:
    with session_scope() as session:
        return list(session.exec(select(Outbox).where(Outbox.case_id == case_id)
                                 .order_by(Outbox.id)))  # type: ignore[arg-type]


def sent(case_id: int, kind: str) -> list[str]:
    return [r.recipient for r in outbox(case_id) if r.kind == kind]


def audit(case_id: int) -> list[AuditEvent]:
    with session_scope() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)
                                 .order_by(AuditEvent.id)))  # type: ignore[arg-type]


def deadlines(case_id: int, kind: DeadlineKind) -> list[Deadline]:
    with session_scope() as session:
        return list(session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == kind)
            .order_by(Deadline.id)))  # type: ignore[arg-type]


NO_FF = "No fact-finding needed: go to the discussion"
FF = "Fact-finding needed"
REFER = "Substantial new evidence: refer back to PSD"


# -- who may decide ---------------------------------------------------------------------------

@pytest.mark.parametrize("basis, by, moves", [
    (REVIEWER_BASIS, REVIEWER, True),
    (PSD_BASIS, PSD, True),
    (REVIEWER_BASIS, "sgt.other@force.example", False),  # not this case's reviewer
])
def test_the_fact_finding_decision_is_the_reviewers_or_psds(basis: str, by: str,
                                                            moves: bool) -> None:
    case_id = at_fact_finding_decision()
    step = wait_for(row(case_id))
    assert step is not None
    state = give(case_id, by, basis, choice=NO_FF)
    assert (state is S.DISCUSSION_SCHEDULING) is moves
    if not moves:
        assert row(case_id).rejected_inputs == 1
        assert audit(case_id)[-1].action == f"decision_rejected:{step.step}"


@pytest.mark.parametrize("basis, by, moves", [
    (REVIEWER_BASIS, REVIEWER, False),  # the authority's decision, never the reviewer's
    (PSD_BASIS, PSD, True),
])
def test_the_decision_after_a_referral_back_is_psds_alone(basis: str, by: str,
                                                          moves: bool) -> None:
    case_id = at_fact_finding_decision()
    assert give(case_id, choice=REFER) is S.REFERRED_BACK
    state = give(case_id, by, basis, choice="No further action", reasons="Dealt with already")
    assert (state is S.CLOSED_NFA) is moves
    with session_scope() as session:
        recorded = session.exec(select(Decision).where(Decision.case_id == case_id)
                                .order_by(Decision.id)).all()  # type: ignore[arg-type]
    assert [d.kind for d in recorded] == (["fact_finding_decision", "authority_decision"] if moves
                                          else ["fact_finding_decision"])


def test_every_decision_step_says_who_may_decide_it() -> None:
    table = {s.name: (s.reviewer_may, s.psd_may) for s in steps.STEPS if s.decision}
    assert table == {
        "fact-finding-decision": (True, True), "fact-finding-outcome": (True, True),
        "refer-back-to-psd": (False, True), "discussion-outcome": (True, True),
        "non-engagement-decision": (True, True), "file-report": (True, True),
        "report-quality-check": (False, True), "action-review": (True, True)}


# -- what each transition does ----------------------------------------------------------------

def test_serving_the_notice_sets_the_account_deadline_in_working_days_and_queues_it() -> None:
    case_id = new_case()
    with session_scope() as session:
        state, wait = advance_case(session, lock_case(session, case_id), NOW)
    assert state is S.AWAITING_ACCOUNT and wait is not None and wait.kind is StepKind.WAKE
    [deadline] = deadlines(case_id, DeadlineKind.ACCOUNT)
    due = england_and_wales().add_working_days(NOW.astimezone(LONDON).date(), 5)
    assert deadline.due_at.replace(tzinfo=UTC).astimezone(LONDON).date() == due
    assert len(sent(case_id, "officer_notice")) == 1
    assert [e.action for e in audit(case_id)][-1] == "notice_served"


def test_no_fact_finding_meets_the_decision_target_and_starts_the_discussion_one() -> None:
    case_id = at_fact_finding_decision()
    [decision] = deadlines(case_id, DeadlineKind.DECISION)
    assert decision.status is DeadlineStatus.OPEN
    later = NOW + timedelta(days=1)
    assert give(case_id, now=later, choice=NO_FF) is S.DISCUSSION_SCHEDULING
    [decision] = deadlines(case_id, DeadlineKind.DECISION)
    assert decision.status is DeadlineStatus.MET
    assert decision.met_at is not None and decision.met_at.replace(tzinfo=UTC) == later
    [discussion] = deadlines(case_id, DeadlineKind.DISCUSSION)
    days = get_settings().discussion_target_working_days
    assert discussion.due_at.replace(tzinfo=UTC).astimezone(LONDON).date() == (
        england_and_wales().add_working_days(later.astimezone(LONDON).date(), days))
    event = audit(case_id)[-1]
    assert (event.action, event.from_state, event.to_state, event.actor) == (
        "fact_finding_decision:NO_FACT_FINDING", "fact_finding_decision",
        "discussion_scheduling", REVIEWER)
    assert sent(case_id, "decision_needed").count(REVIEWER) == 2  # the decision, the discussion


def test_fact_finding_then_its_outcome_each_ask_the_reviewer() -> None:
    case_id = at_fact_finding_decision()
    assert give(case_id, choice=FF) is S.FACT_FINDING
    assert give(case_id, choice="Fact-finding complete: go to the discussion") is (
        S.DISCUSSION_SCHEDULING)
    assert sent(case_id, "decision_needed") == [REVIEWER] * 3


def test_a_referral_back_tells_psd_and_a_new_notice_serves_round_two() -> None:
    case_id = at_fact_finding_decision()
    assert give(case_id, choice=REFER) is S.REFERRED_BACK
    assert sent(case_id, "referral_back") == [PSD]
    assert give(case_id, PSD, PSD_BASIS, choice="Continue RPRP with a new notice and a new "
                "account window", reasons="New allegation joined") is S.REFERRAL_RECEIVED
    assert advance(case_id, NOW)[0] is S.AWAITING_ACCOUNT
    case = row(case_id)
    assert case.notice_round == 2
    assert [d.round for d in deadlines(case_id, DeadlineKind.ACCOUNT)] == [1, 2]
    assert len(sent(case_id, "officer_notice")) == 2


def test_an_escalation_closes_the_targets_and_tells_psd_and_the_reviewer() -> None:
    case_id = at_fact_finding_decision()
    give(case_id, choice=REFER)
    assert give(case_id, PSD, PSD_BASIS, choice="Misconduct proceedings",
                reasons="More serious than thought") is S.ESCALATED_MISCONDUCT
    assert sorted(sent(case_id, "escalation")) == sorted([PSD, REVIEWER])
    assert all(d.status is not DeadlineStatus.OPEN
               for d in deadlines(case_id, DeadlineKind.DECISION))
    assert row(case_id).closed_at is not None


def at_non_engagement(**referral: Any) -> int:
    case_id = at_fact_finding_decision(**referral)
    give(case_id, choice=NO_FF)
    day = england_and_wales().add_working_days(datetime.now(LONDON).date(), 2)
    give(case_id, choice="Invite the officer: send the date, time and place below",
         meeting_date=day.isoformat(), meeting_time="10:00", place="Interview room 2")
    assert give(case_id, choice="Officer did not attend") is S.NON_ENGAGEMENT_REVIEW
    return case_id


def test_non_engagement_asks_the_reviewer_and_psd_and_re_invite_goes_back() -> None:
    case_id = at_non_engagement()
    occurrence = row(case_id).transition_count
    asked = [r.recipient for r in outbox(case_id)
             if r.kind == "decision_needed" and r.key.endswith(f":{occurrence}")]
    assert sorted(asked) == sorted([REVIEWER, PSD])
    assert give(case_id, choice="Re-invite the officer to a discussion",
                reasons="Was on leave") is S.DISCUSSION_SCHEDULING


def test_filing_the_report_schedules_the_review_and_the_pdr_and_sends_the_copies() -> None:
    case_id = at_fact_finding_decision()
    give(case_id, choice=NO_FF)
    give(case_id, choice="Discussion held and the officer engaged",
         held_on=datetime.now(UTC).date().isoformat())
    assert give(case_id, now=datetime.now(UTC), **report_answer()) is S.REPORT_SUBMITTED
    assert advance(case_id)[0] is S.ACTIONS_MONITORING
    [review] = deadlines(case_id, DeadlineKind.ACTION_REVIEW)
    [pdr] = deadlines(case_id, DeadlineKind.PDR)
    assert review.status is DeadlineStatus.OPEN and pdr.status is DeadlineStatus.OPEN
    assert sent(case_id, "report_filed") == [PSD] and len(sent(case_id, "officer_report_copy")) == 1
    assert [e.action for e in audit(case_id)][-3:] == ["report_filed", "report_submitted",
                                                        "actions_monitoring"]
    with session_scope() as session:
        case = lock_case(session, case_id)
        assert wait_for(case, session).kind is StepKind.WAKE  # type: ignore[union-attr]
        # Once the sweep opens review 1 in the case's run, the run asks it.
        case.flow_run_id = "00000000-0000-0000-0000-000000000001"
        review_row = session.exec(select(ActionReview).where(
            ActionReview.case_id == case_id)).one()
        review_row.flow_run_id = case.flow_run_id
        session.add_all([case, review_row])
        session.flush()
        wait = wait_for(case, session)
    assert wait == Wait("action-review-1-0", StepKind.ACTION_REVIEW, "Action-plan review 1")


def test_no_account_by_the_deadline_moves_on_as_of_the_sweeps_instant() -> None:
    case_id = new_case()
    advance(case_id, NOW)
    [deadline] = deadlines(case_id, DeadlineKind.ACCOUNT)
    with session_scope() as session:
        assert not mark_no_account(session, lock_case(session, case_id),
                                   deadline.due_at.replace(tzinfo=UTC))
    with session_scope() as session:
        assert mark_no_account(session, lock_case(session, case_id),
                               deadline.due_at.replace(tzinfo=UTC) + timedelta(seconds=1))
    assert row(case_id).state is S.NO_ACCOUNT
    assert sorted(sent(case_id, "missed_account_deadline")) == sorted([PSD, REVIEWER])
    assert deadlines(case_id, DeadlineKind.ACCOUNT)[0].status is DeadlineStatus.MISSED


def test_an_officer_who_left_is_recorded_as_leaving_on_londons_date_of_now() -> None:
    case_id = at_fact_finding_decision()
    late_evening = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 1 July in London
    with session_scope() as session:
        state = close_from_outside(session, lock_case(session, case_id), S.DISCONTINUED,
                                   actor=PSD, reason="Resigned", now=late_evening)
    assert state is S.DISCONTINUED
    with session_scope() as session:
        officer = session.get(Officer, row(case_id).officer_id)
        assert officer is not None and officer.left_on == date(2026, 7, 1)
    assert sorted(sent(case_id, "case_closed")) == sorted([PSD, REVIEWER])


# -- UPP eligibility --------------------------------------------------------------------------

PROBATIONER = {"officer": {"rank": "constable", "probationer": True}}


def test_upp_is_offered_where_the_performance_regulations_apply() -> None:
    case_id = at_non_engagement()
    assert give(case_id, choice="Unsatisfactory performance procedures (UPP)",
                reasons="A pattern of non-engagement") is S.ESCALATED_UPP


def test_upp_is_neither_offered_nor_accepted_for_a_probationer_constable() -> None:
    case_id = at_non_engagement(**PROBATIONER)
    with session_scope() as session:
        case = lock_case(session, case_id)
        form = decisions.form_class(session, case, StepKind.NON_ENGAGEMENT)
        choices = [c.name for c in form.model_fields["choice"].annotation]  # type: ignore[union-attr]
        answer = type("Answer", (), {"choice": type("C", (), {"name": "UPP"})()})()
        found = decisions.problems(session, case, StepKind.NON_ENGAGEMENT, answer)
    assert "UPP" not in choices
    assert found and "UPP does not apply" in found[0]


def test_a_review_keeping_an_action_open_sets_the_next_one_from_now_not_the_wall_clock() -> None:
    from tasks.action_reviews import take_review

    case_id = at_fact_finding_decision()
    give(case_id, choice=NO_FF)
    give(case_id, choice="Discussion held and the officer engaged",
         held_on=datetime.now(UTC).date().isoformat())
    give(case_id, now=datetime.now(UTC), **report_answer())
    advance(case_id)
    run_id = "00000000-0000-0000-0000-000000000002"
    with session_scope() as session:
        case = lock_case(session, case_id)
        case.flow_run_id = run_id
        review = session.exec(select(ActionReview).where(ActionReview.case_id == case_id)).one()
        review.flow_run_id = run_id
        session.add_all([case, review])
    later = datetime.now(UTC) + timedelta(days=100)
    with session_scope() as session:
        case = lock_case(session, case_id)
        wait = wait_for(case, session)
        assert wait is not None and wait.kind is StepKind.ACTION_REVIEW
        form = decisions.form_class(session, case, wait.kind)
        [field] = [n for n in form.model_fields if n.endswith("_outcome")]
        values = {field: "Not yet complete: keep open",
                  field.replace("_outcome", "_note"): "Half done."}
        step = decisions.Step(case_id, run_id, wait, form, 1)
        forwarded, errors, _ = decisions.take(session, case, step, values, REVIEWER,
                                              REVIEWER_BASIS, later)
        assert forwarded is not None, errors
    with session_scope() as session:
        assert not take_review(session, case_id, 1, wait.key, forwarded, later)
    with session_scope() as session:
        reviews = session.exec(select(ActionReview).where(ActionReview.case_id == case_id)
                               .order_by(ActionReview.number)).all()  # type: ignore[arg-type]
    assert [r.number for r in reviews] == [1, 2]
    assert reviews[0].completed_at is not None
    assert reviews[0].completed_at.replace(tzinfo=UTC) == later
    assert reviews[1].due_on == later.astimezone(LONDON).date() + timedelta(weeks=12)
    assert [d.status for d in deadlines(case_id, DeadlineKind.ACTION_REVIEW)] == [
        DeadlineStatus.MET, DeadlineStatus.OPEN]
    assert row(case_id).state is S.ACTIONS_MONITORING


def test_the_rules_import_neither_prefect_nor_fastapi() -> None:
    """The domain runs against the case DB alone: nothing it imports, directly or through the
    project's own modules (read from their source, so this costs no import), is Prefect's or
    FastAPI's."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    seen: set[str] = set()
    outside: set[str] = set()
    todo = ["tasks.casework", "tasks.steps", "tasks.answers", "tasks.action_reviews",
            "models.choices"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = root / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = root / name.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for imported in names:
                top = imported.split(".")[0]
                if top in ("models", "tasks", "rprp"):
                    if (root / (imported.replace(".", "/") + ".py")).exists() or (
                            root / imported.replace(".", "/") / "__init__.py").exists():
                        todo.append(imported)
                else:
                    outside.add(top)
    assert "tasks.casework" in seen and "models.case" in seen
    assert not outside & {"prefect", "fastapi", "starlette"}, sorted(outside)
