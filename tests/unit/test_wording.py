"""What people read: codes as words, free text as text, and errors that say whose field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from models import Deadline
from models.enums import ActionType, DeadlineKind, Route
from models.forms import ActionChoice, FactFindingDecision, ReportForm
from models.labels import audit_action_label, deadline_label, label
from portal.referral_form import NOUNS
from portal.validation import field_errors
from tasks.briefing import plain
from tasks.casework import Wait
from tests.support.cases import sample_referral


def test_every_route_reads_as_the_regulation_in_words() -> None:
    assert Route.SCH3_PARA_24_6.label.endswith("Schedule 3 paragraph 24(6)")
    assert "Regulation 23(5)(a)" in Route.REG_23_5_A_NO_CASE_TO_ANSWER.label
    assert all("_" not in route.label for route in Route)


def test_the_report_form_offers_action_types_as_words_and_stores_the_codes() -> None:
    schema = ReportForm.model_json_schema()
    offered = schema["$defs"]["ActionChoice"]["enum"]
    assert "Management meeting or mediation" in offered
    assert all("_" not in value for value in offered)
    assert {c.action_type for c in ActionChoice} == set(ActionType)
    assert ActionChoice("Training, a learning plan or a PDR entry").action_type is (
        ActionType.TRAINING)


def test_no_title_says_optional_itself() -> None:
    """The Prefect UI adds "(Optional)" to a field that is not required."""
    titles = [p["title"] for p in FactFindingDecision.model_json_schema()["properties"].values()]
    assert "Reasons" in titles
    assert not any("optional" in t.lower() for t in titles)


def test_audit_actions_read_as_words() -> None:
    assert audit_action_label("fact_finding_decision:NO_FACT_FINDING") == (
        "Fact-finding decision — No fact-finding needed: go to the discussion")
    assert audit_action_label("decision_rejected:report-7") == "Answer not accepted"
    assert audit_action_label("notice_served") == "Notice served on the officer"


def _deadline(kind: DeadlineKind, round: int) -> Deadline:
    return Deadline(case_id=1, kind=kind, round=round, due_at=datetime.now(UTC),
                    calendar_version="ew-test")


def test_a_deadline_shows_a_round_only_where_a_reader_has_one() -> None:
    assert deadline_label(_deadline(DeadlineKind.DECISION, 3)) == "Decision"
    assert deadline_label(_deadline(DeadlineKind.PDR, 1)) == (
        "Report discussed at the officer's PDR")
    assert deadline_label(_deadline(DeadlineKind.ACCOUNT, 1)) == "The officer's account"
    assert deadline_label(_deadline(DeadlineKind.ACCOUNT, 2)) == (
        "The officer's account (notice 2)")
    assert deadline_label(_deadline(DeadlineKind.ACTION_REVIEW, 2)) == "Action-plan review 2"
    assert label(None) == "" and label("on_leave") == "On leave"


@pytest.mark.parametrize("typed", [
    "[Session expired: sign in again](http://evil.example)",
    '<a href="http://evil.example">Sign in</a>',
    "see www.evil.example or mail x@evil.example",
    "# Heading\n- a list item\n> a quote ![img](http://evil.example/x.png)",
])
def test_free_text_is_escaped_for_markdown(typed: str) -> None:
    escaped = plain(typed)
    assert "<" not in escaped and ">" not in escaped and "\n" not in escaped
    assert "](" not in escaped and "://" not in escaped and "www." not in escaped
    assert escaped.count("@") == escaped.count("\\@")  # no bare email autolink


def test_a_step_is_its_key_without_the_refusal_count() -> None:
    assert Wait("report-7-0", "report", "Report").step == Wait("report-7-2", "report", "R").step
    assert Wait("report-7-0", "report", "R").step != Wait("report-9-0", "report", "R").step


def test_a_malformed_email_error_says_whose_address() -> None:
    data = sample_referral().model_dump(mode="json")
    data["officer"]["email"] = "officer.force.example"
    data["reviewer"]["email"] = "reviewer@"
    data.update(origin="public_complaint",
                complainant={"name": "Jo Public", "email": "jo.public", "address": ""})
    from tasks.intake import ReferralIn

    with pytest.raises(ValidationError) as raised:
        ReferralIn.model_validate(data)
    messages = {e.field: e.message for e in field_errors(raised.value.errors(), NOUNS)}
    assert messages["officer.email"].startswith(
        "Enter the officer's email address in the correct format")
    assert messages["reviewer.email"].startswith(
        "Enter the reviewer's email address in the correct format")
    assert messages["complainant.email"].startswith(
        "Enter the complainant's email address in the correct format")
