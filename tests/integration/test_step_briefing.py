"""What a Resume form's description says, read from the case record (no Prefect needed): a
refusal only on the step it was given for, free text that cannot become a link, words not codes.
"""

from __future__ import annotations

from datetime import date

import pytest

from infra.db import session_scope
from models.enums import CaseState
from models.forms import FactFindingChoice, FactFindingDecision, ReportForm
from tasks.action_reviews import review_wait
from tasks.briefing import describe
from tasks.casework import advance, apply_answer, record_account, wait_for
from tasks.intake import create_case
from tests.support.cases import PSD, case_row, report_answer, sample_referral, through_gateway

S = CaseState
pytestmark = [pytest.mark.integration]
INJECTED = ("[Session expired: sign in again](http://evil.example) and "
            '<a href="http://evil.example">sign in</a>')


def _new_case(**overrides: object) -> int:
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(**overrides), actor=PSD)
        case_id = case.id
    assert case_id is not None
    advance(case_id)
    record_account(case_id, 1, "The officer's account, which stays in the case DB.")
    advance(case_id)
    return case_id


def _answer(case_id: int, values: dict[str, object]) -> CaseState:
    """The case's reviewer answers the step it waits on, through the gateway's checks."""
    wait = wait_for(case_row(case_id))
    assert wait is not None
    apply_answer(case_id, wait.key, through_gateway(case_id, wait, values))
    return case_row(case_id).state


def _forged(case_id: int, form: type, **values: object) -> CaseState:
    """An answer sent to Prefect without the gateway: the flow refuses it on this step."""
    wait = wait_for(case_row(case_id))
    assert wait is not None
    apply_answer(case_id, wait.key, form(**values))
    return case_row(case_id).state


def _description(case_id: int) -> str:
    wait = wait_for(case_row(case_id))
    assert wait is not None
    return describe(case_id, wait)


def test_a_refusal_is_shown_on_its_own_step_and_no_other() -> None:
    case_id = _new_case()
    assert case_row(case_id).state is S.FACT_FINDING_DECISION
    assert _forged(case_id, FactFindingDecision,
                   choice=FactFindingChoice.NO_FACT_FINDING) is S.FACT_FINDING_DECISION
    refused = _description(case_id)
    assert "not accepted" in refused and "gateway" in refused

    assert _answer(case_id, {"choice": "No fact-finding needed: go to the discussion"}
                   ) is S.DISCUSSION_SCHEDULING
    assert "not accepted" not in _description(case_id)
    assert _answer(case_id, {"choice": "Discussion held and the officer engaged",
                             "held_on": date.today().isoformat()}) is S.DISCUSSION_HELD

    assert _forged(case_id, ReportForm, **report_answer()) is S.DISCUSSION_HELD
    assert "not accepted" in _description(case_id)
    assert _answer(case_id, report_answer()) is S.REPORT_SUBMITTED
    advance(case_id)
    step = review_wait(case_id, 1, None)
    assert step is not None
    review = describe(case_id, step[0])
    assert "not accepted" not in review and "gateway" not in review


def test_typed_text_cannot_become_a_link_in_the_description() -> None:
    case_id = _new_case(rprp_reason=INJECTED, public_summary=INJECTED,
                        allegation_category="Discreditable conduct <b>bold</b>")
    text = _description(case_id)
    assert "](http://evil" not in text and "<a" not in text and "<b>" not in text
    assert "http://evil" not in text and text.count("](") == 1, "only the case page link"
    assert "Session expired" in text, "the words themselves are still shown"


def test_the_description_names_the_route_and_dates_in_words() -> None:
    case_id = _new_case(route="sch3_para_24_6", origin="public_complaint",
                        complainant={"name": "Jo Public", "email": "jo@example.org"})
    text = _description(case_id)
    assert "Schedule 3 paragraph 24(6)" in text and "sch3" not in text
    assert "Public complaint" in text
    due = [line for line in text.splitlines() if line.startswith("- **Due")]
    assert due and all(any(day in line for day in ("Monday", "Tuesday", "Wednesday", "Thursday",
                                                   "Friday", "Saturday", "Sunday"))
                       for line in due)
