"""Changing the flow while cases wait: the code's version is recorded on each audit event, a
case standing in a retired step moves on by its rule, and an answer given to a form that has
since gained a field with a default is still verified (docs/changing-the-flow.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.input import RunInput
from pydantic import Field
from sqlmodel import select

from infra.db import session_scope
from models import AuditEvent, DecisionSubmission
from models.choices import FactFindingChoice
from models.enums import CaseState
from tasks import steps
from tasks.answers import input_hash, legacy_input_hash, verified_submission
from tasks.casework import advance, enter, record_account, take_step
from tasks.code_version import RunVersions, current, running_under, source_version
from tasks.intake import create_case
from tasks.records import lock_case
from tests.support.cases import sample_referral

S = CaseState


def _tree(root: Path, text: str) -> Path:
    for top in ("flows", "tasks", "models", "infra"):
        (root / top).mkdir(parents=True)
        (root / top / "a.py").write_text(f"# {top}\n", encoding="utf-8")
    (root / "templates" / "email").mkdir(parents=True)
    (root / "templates" / "email" / "notice.txt").write_text(text, encoding="utf-8")
    return root


def test_the_source_version_is_the_same_for_the_same_code_and_changes_with_it(
        tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", "Dear officer")
    two = _tree(tmp_path / "two", "Dear officer")
    (two / "README.md").write_text("not code", encoding="utf-8")
    (two / "tasks" / "__pycache__").mkdir()
    (two / "tasks" / "__pycache__" / "a.cpython-311.py").write_text("x", encoding="utf-8")
    assert source_version(one) == source_version(two)
    assert len(source_version(one)) == 12
    three = _tree(tmp_path / "three", "Dear officer,")
    assert source_version(three) != source_version(one)
    four = _tree(tmp_path / "four", "Dear officer")
    (four / "tasks" / "steps.py").write_text("STEPS = ()\n", encoding="utf-8")
    assert source_version(four) != source_version(one)


def _case_awaiting_account() -> int:
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor="psd@force.example")
        case_id = case.id
    assert case_id is not None
    assert advance(case_id)[0] is S.AWAITING_ACCOUNT
    return case_id


def _events(case_id: int) -> list[AuditEvent]:
    with session_scope() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)
                                 .order_by(AuditEvent.id)))  # type: ignore[arg-type]


def test_audit_events_record_the_versions_of_the_run_that_wrote_them() -> None:
    case_id = _case_awaiting_account()  # intake and notice outside any run: no versions
    before = len(_events(case_id))
    assert {(e.flow_version, e.deployment_version) for e in _events(case_id)} == {(None, None)}
    with running_under(RunVersions("0123456789ab", "8d52822")):
        assert current() == RunVersions("0123456789ab", "8d52822")
        record_account(case_id, 1, "My account of what happened at the stop.")
        take_step(case_id)
    assert current() is None
    written = _events(case_id)[before:]
    assert [e.action for e in written] == ["account_received", "fact_finding_decision_pending"]
    assert {(e.flow_version, e.deployment_version) for e in written} == {
        ("0123456789ab", "8d52822")}


def test_the_retirement_rules_move_each_retired_state_to_a_live_step_by_a_legal_move() -> None:
    assert steps.retirement_problems() == []
    good = {S.FACT_FINDING: steps.Retired(S.DISCUSSION_SCHEDULING, "recorded at the discussion")}
    assert steps.retirement_problems(good) == [
        "fact_finding is retired but a step still stands in it"]  # here it still has its step


def test_the_retirement_check_names_each_kind_of_wrong_rule() -> None:
    bad = {
        S.FACT_FINDING: steps.Retired(S.REPORT_SUBMITTED, ""),
        S.REFERRED_BACK: steps.Retired(S.FACT_FINDING, "x"),
    }
    problems = steps.retirement_problems(bad)
    assert "fact_finding cannot move to report_submitted (models/state.py)" in problems
    assert "fact_finding's rule gives no reason for the audit trail" in problems
    assert "referred_back_to_aa moves to fact_finding, which is retired too" in problems


@pytest.fixture
def fact_finding_retired(monkeypatch: pytest.MonkeyPatch) -> steps.Retired:
    """The code as a change that drops the fact-finding outcome step would leave it."""
    rule = steps.Retired(S.DISCUSSION_SCHEDULING, "fact-finding is now recorded at the discussion")
    monkeypatch.setattr(steps, "RETIRED", {S.FACT_FINDING: rule})
    monkeypatch.setattr(steps, "STEPS", tuple(s for s in steps.STEPS
                                              if s is not steps.FACT_FINDING_OUTCOME))
    monkeypatch.delitem(steps.WAITING, S.FACT_FINDING)
    assert steps.retirement_problems() == []
    return rule


def test_a_case_standing_in_a_retired_step_moves_on_by_its_rule_once(
        fact_finding_retired: steps.Retired) -> None:
    case_id = _case_awaiting_account()
    record_account(case_id, 1, "My account of what happened at the stop.")
    take_step(case_id)
    with session_scope() as session:  # where the old code left it: waiting for the outcome
        enter(session, lock_case(session, case_id), S.FACT_FINDING, actor="reviewer",
              action="fact_finding_decision:FACT_FINDING")

    done, state = take_step(case_id)
    assert done is steps.MOVE_OFF_RETIRED_STEP
    assert state is S.DISCUSSION_SCHEDULING
    last = _events(case_id)[-1]
    assert (last.action, last.from_state, last.to_state, last.detail) == (
        "step_retired:fact_finding", "fact_finding", "discussion_scheduling",
        fact_finding_retired.reason)
    assert take_step(case_id) == (None, S.DISCUSSION_SCHEDULING)  # now it waits for a person
    assert [e.action for e in _events(case_id)].count("step_retired:fact_finding") == 1


class Decision(RunInput):
    choice: FactFindingChoice = Field(title="Fact-finding decision")
    reasons: str = Field(default="", max_length=2000, title="Reasons")


class DecisionWithANewField(Decision):
    urgent: str = Field(default="no", title="Urgent?")


def test_an_answer_to_the_old_form_hashes_the_same_when_read_by_the_form_with_a_new_field(
        ) -> None:
    old = Decision(choice=FactFindingChoice.FACT_FINDING, reasons="CCTV to view")
    new = DecisionWithANewField.model_validate(old.model_dump(mode="json"))
    assert input_hash(new) == input_hash(old)
    assert input_hash(DecisionWithANewField.model_validate(
        {**old.model_dump(mode="json"), "urgent": "yes"})) != input_hash(old)


def test_a_submission_recorded_with_thelegacy_input_hash_before_the_change_is_still_verified() -> None:
    case_id = _case_awaiting_account()
    answer = Decision(choice=FactFindingChoice.NO_FACT_FINDING)
    with session_scope() as session:
        session.add(DecisionSubmission(case_id=case_id, step_key="k-1", flow_run_id="r",
                                       decided_by="sgt@force.example", decided_as="reviewer",
                                       input_hash=legacy_input_hash(answer)))
    with session_scope() as session:
        case = lock_case(session, case_id)
        assert verified_submission(session, case, "k-1", answer).decided_by == "sgt@force.example"


def test_an_answer_is_fitted_to_the_form_the_waiting_run_asked() -> None:
    """The portal on the new code, a run paused on the old form: a new field at its default is
    left out (Prefect would refuse a field the stored schema lacks); one filled in is named."""
    from tasks.decisions import fit_to_asked

    asked = set(Decision.model_fields)
    answer = DecisionWithANewField(choice=FactFindingChoice.FACT_FINDING).model_dump(mode="json")
    fitted, unasked = fit_to_asked(DecisionWithANewField, answer, asked)
    assert (fitted, unasked) == ({"choice": "Fact-finding needed", "reasons": ""}, [])
    assert input_hash(Decision.model_validate(fitted)) == input_hash(
        DecisionWithANewField.model_validate(answer))
    answer["urgent"] = "yes"
    assert fit_to_asked(DecisionWithANewField, answer, asked)[1] == ["Urgent?"]
    assert fit_to_asked(DecisionWithANewField, answer, asked | {"urgent"}) == (answer, [])


# The states an automatic step leaves at once (tasks/casework.py take_automatic_step) without a
# step of their own in the table.
PASSED_THROUGH = {S.ACCOUNT_RECEIVED, S.NO_ACCOUNT}


def orphan_states() -> list[CaseState]:
    """Open states with no step and no retirement rule: the flow's match would send a case
    standing in one to close-case."""
    from models.enums import TERMINAL_STATES

    handled = {s.state for s in steps.STEPS if s.state is not None} | PASSED_THROUGH
    return [s for s in S if s not in TERMINAL_STATES and s not in handled
            and s not in steps.RETIRED]


def test_every_open_state_has_a_step_or_a_retirement_rule() -> None:
    """A change that drops a step without its rule is caught here, not by a case that ends
    wrongly."""
    assert orphan_states() == []


def test_the_open_state_check_sees_a_step_dropped_without_its_rule(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "STEPS", tuple(s for s in steps.STEPS
                                              if s is not steps.FACT_FINDING_OUTCOME))
    assert orphan_states() == [S.FACT_FINDING]
    monkeypatch.setattr(steps, "RETIRED", {S.FACT_FINDING: steps.Retired(
        S.DISCUSSION_SCHEDULING, "recorded at the discussion")})
    assert orphan_states() == []
