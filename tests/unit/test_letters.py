"""What people are told, against the real case DB: the complainant's words about the learning,
a letter for every ending of a public complaint, the PDR clock after closure, and the officer
declining to give an account. No Prefect: the case is driven by the steps its flow calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from flows.case_lifecycle import form_for
from infra.db import session_scope
from infra.settings import reset_settings
from models import AuditEvent, Deadline, Officer, Outbox, Report
from models.enums import CaseState, DeadlineKind, DeadlineStatus
from models.forms import (
    COMPLAINANT_SUMMARY_DEFAULT,
    ComplaintReportForm,
    DiscussionOutcome,
    FactFindingDecision,
    ReportForm,
    authority_decision_form,
)
from tasks.action_reviews import record_review, review_wait
from tasks.calendar import LONDON, england_and_wales
from tasks.casework import (
    AccountNotAccepted,
    advance,
    apply_answer,
    close_externally,
    decline_account,
    mark_no_account,
    record_account,
)
from tasks.deadline_sweep import SweepReport, pdr_reminders, reminder_day
from tasks.intake import create_case
from tasks.report import PdrNotRecorded, add_months, names_the_officer, record_pdr_discussion
from tests.support.cases import (
    AS_PSD,
    AS_REVIEWER,
    PSD,
    REVIEWER,
    case_row,
    outbox,
    report_answer,
    sample_referral,
    through_gateway,
)

S = CaseState
COMPLAINANT = "jo.public@example.org"


@pytest.fixture(autouse=True)
def mail_left_unsent() -> Iterator[None]:
    """These tests read the outbox, never send it: afterwards their rows are set aside, so the
    session's later SMTP tests are not handed hundreds of emails to fictional people first."""
    with session_scope() as session:
        before = session.exec(select(func.max(Outbox.id))).one() or 0
    yield
    with session_scope() as session:
        session.exec(update(Outbox).where(col(Outbox.id) > before, col(Outbox.status) == "pending")
                     .values(status="sent").execution_options(synchronize_session=False))


def new_case(complaint: bool = True, review_body: str = "local_policing_body",
             officer: dict[str, str] | None = None) -> int:
    overrides: dict[str, Any] = {}
    if complaint:
        overrides = {"origin": "public_complaint", "complainant": {
            "name": "Jo Public", "email": COMPLAINANT, "review_body": review_body}}
    if officer:
        overrides["officer"] = officer
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(**overrides), actor=PSD)
        case_id = case.id
    assert case_id is not None
    assert advance(case_id)[0] is S.AWAITING_ACCOUNT
    return case_id


def answer(case_id: int, form: type, **values: Any) -> CaseState:
    wait = advance(case_id)[1]
    assert wait is not None
    by = AS_PSD if values.pop("by_psd", False) else AS_REVIEWER
    return apply_answer(case_id, wait.key, through_gateway(case_id, wait, values, by=by))


def to_report(case_id: int) -> None:
    record_account(case_id, 1, "My account of what happened at the stop.")
    assert answer(case_id, FactFindingDecision, 
                  choice="No fact-finding needed: go to the discussion") is S.DISCUSSION_SCHEDULING
    assert answer(case_id, DiscussionOutcome, 
                  choice="Discussion held and the officer engaged",
                  held_on=date.today()) is S.DISCUSSION_HELD


def file_report(case_id: int, **overrides: Any) -> CaseState:
    form = ComplaintReportForm if "complainant_summary" in overrides else ReportForm
    return answer(case_id, form, **report_answer(**overrides))


def close_complete(case_id: int) -> None:
    to_report(case_id)
    assert file_report(case_id, complainant_summary=COMPLAINANT_SUMMARY_DEFAULT) is (
        S.REPORT_SUBMITTED)
    assert advance(case_id)[0] is S.ACTIONS_MONITORING
    step = review_wait(case_id, 1, None)
    assert step is not None
    wait, action_ids = step
    closing: dict[str, Any] = {f"action_{a}_note": "Module completed." for a in action_ids}
    closing |= {f"action_{a}_outcome": "Completed: close this action" for a in action_ids}
    assert record_review(case_id, 1, wait.key, through_gateway(
        case_id, wait, closing, action_ids=action_ids))
    assert case_row(case_id).state is S.CLOSED_COMPLETE


def letters_to(case_id: int, kind: str) -> list[Any]:
    return [row for row in outbox(case_id) if row.kind == kind]


def officer_of_case(case_id: int) -> Officer:
    with session_scope() as session:
        officer = session.get(Officer, case_row(case_id).officer_id)
        assert officer is not None
        return officer


# 1. What the complainant is told is written for them ---------------------------------------

def test_the_complaint_report_form_asks_for_the_complainants_words_prefilled() -> None:
    case_id = new_case()
    to_report(case_id)
    wait = advance(case_id)[1]
    assert wait is not None and wait.kind == "report"
    form = form_for(case_id, wait)
    assert issubclass(form, ComplaintReportForm)
    field = form.model_fields["complainant_summary"]
    assert field.default == COMPLAINANT_SUMMARY_DEFAULT
    assert "the complainant will read" in (field.title or "")
    schema = form.model_json_schema()
    assert "complainant_summary" in schema["required"]  # prefilled, yet not "(Optional)"
    assert schema["properties"]["complainant_summary"]["minLength"] == 10
    assert not names_the_officer(COMPLAINANT_SUMMARY_DEFAULT, officer_of_case(case_id))

    internal = new_case(complaint=False)
    to_report(internal)
    internal_wait = advance(internal)[1]
    assert internal_wait is not None
    assert "complainant_summary" not in form_for(internal, internal_wait).model_fields


@pytest.mark.parametrize("summary", [
    "We spoke to DANIEL about how to explain a stop.",
    "Lessons for pc o'brien-kaye were agreed.",
    "Officer Daniel O'Brien-Kaye has reflected.",
    "The officer with collar number 4711 has reflected.",
    "Kaye has agreed to diarise updates.",
], ids=["first-name-upper", "surname-lower", "full-name", "collar-number", "second-surname"])
def test_a_complainant_summary_naming_the_officer_is_refused_and_changes_nothing(
        summary: str) -> None:
    case_id = new_case(officer={"name": "Daniel O'Brien-Kaye", "collar_number": "4711"})
    to_report(case_id)
    before = case_row(case_id)
    emails = len(outbox(case_id))

    assert file_report(case_id, complainant_summary=summary) is S.DISCUSSION_HELD
    after = case_row(case_id)
    assert after.transition_count == before.transition_count
    assert after.rejected_inputs == before.rejected_inputs + 1
    with session_scope() as session:
        assert session.exec(select(Report).where(Report.case_id == case_id)).first() is None
        refusal = session.exec(select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action.startswith("decision_rejected:"))).one()  # type: ignore[attr-defined]
    assert "names the officer" in refusal.detail
    assert len(outbox(case_id)) == emails
    # The step is asked again (a new key) and a clean text is then accepted.
    assert advance(case_id)[1].key.endswith("-1")  # type: ignore[union-attr]
    assert file_report(case_id, complainant_summary="Learning about explaining a stop was "
                                                    "agreed.") is S.REPORT_SUBMITTED


def test_names_are_matched_as_whole_words_only() -> None:
    officer = Officer(name="Alex Stone", collar_number="123", email="a@x", rank="constable")
    assert not names_the_officer("Alexander Stonehouse gave 1234 reasons", officer)
    assert names_the_officer("alex agreed", officer)
    assert names_the_officer("(Stone)", officer)
    assert names_the_officer("number 123.", officer)


def test_the_outcome_letter_uses_the_complainants_words_not_the_force_lessons() -> None:
    case_id = new_case()
    to_report(case_id)
    words = "Stops will now be explained at the start, and this is being checked."
    assert file_report(case_id, complainant_summary=words,
                       force_lessons="Sergeant rota gaps on nights; supervision of PC X.") is (
        S.REPORT_SUBMITTED)
    [letter] = letters_to(case_id, "complainant_outcome")
    assert letter.recipient == COMPLAINANT
    assert words in letter.body_text and words in letter.body_html
    assert "rota gaps" not in letter.body_text + letter.body_html
    with session_scope() as session:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
    assert report.complainant_summary == words


def test_a_complaint_report_without_the_complainants_words_is_refused() -> None:
    from tasks.casework import advance
    from tasks.decisions import form_class, parse_answer

    case_id = new_case()
    to_report(case_id)
    wait = advance(case_id)[1]
    assert wait is not None and wait.kind == "report"
    with session_scope() as session:
        form = form_class(session, case_row(case_id), wait.kind)
    # The complaint form, as the gateway checks it: the complainant's words cleared is refused.
    parsed, errors = parse_answer(form, report_answer(complainant_summary=""))
    assert parsed is None and any("complainant" in e for e in errors)
    assert case_row(case_id).state is S.DISCUSSION_HELD


def test_a_report_without_a_complaint_needs_no_complainant_words() -> None:
    case_id = new_case(complaint=False)
    to_report(case_id)
    assert file_report(case_id) is S.REPORT_SUBMITTED
    assert letters_to(case_id, "complainant_outcome") == []


# 2. Every ending of a public complaint tells the complainant --------------------------------

def refer_back(case_id: int, choice: str) -> None:
    record_account(case_id, 1, "My account of what happened at the stop.")
    assert answer(case_id, FactFindingDecision, 
                  choice="Substantial new evidence: refer back to PSD") is S.REFERRED_BACK
    answer(case_id, authority_decision_form(True), by_psd=True, choice=choice,
           reasons="Reconsidered on the new evidence.")


ENDINGS = {
    S.CLOSED_NFA: lambda c: refer_back(c, "No further action"),
    S.ESCALATED_MISCONDUCT: lambda c: refer_back(c, "Misconduct proceedings"),
    S.ESCALATED_UPP: lambda c: refer_back(c, "Unsatisfactory performance procedures (UPP)"),
    S.ESCALATED_VETTING: lambda c: refer_back(c, "Vetting Regulations"),
    S.DISCONTINUED: lambda c: close_externally(c, S.DISCONTINUED, actor=PSD, reason="Retired"),
    S.CANCELLED: lambda c: close_externally(c, S.CANCELLED, actor=PSD, reason="Made in error"),
    S.CLOSED_COMPLETE: close_complete,
}
REVIEW_BY_DEFAULT = {S.CLOSED_NFA}  # closed complete: given in the outcome letter at the report


@pytest.mark.parametrize("ending", list(ENDINGS), ids=[s.value for s in ENDINGS])
def test_every_ending_sends_the_complainant_one_letter(ending: CaseState) -> None:
    case_id = new_case(review_body="iopc")
    ENDINGS[ending](case_id)
    assert case_row(case_id).state is ending
    advance(case_id)  # a replay of the flow after the ending sends nothing more
    [letter] = letters_to(case_id, "complainant_ending")
    assert letter.recipient == COMPLAINANT
    assert "Dear Jo Public" in letter.body_text and "has ended" in letter.subject
    assert officer_of_case(case_id).name not in letter.body_text + letter.body_html
    review = "YOUR RIGHT TO APPLY FOR A REVIEW" in letter.body_text
    assert review is (ending in REVIEW_BY_DEFAULT)
    if review:
        assert "the Independent Office for Police Conduct (IOPC)" in letter.body_text
        assert "28 days" in letter.body_text
    if ending is S.CLOSED_COMPLETE:
        assert "your right to apply for a review of it" in letter.body_text
        [outcome] = letters_to(case_id, "complainant_outcome")
        assert "the Independent Office for Police Conduct (IOPC)" in outcome.body_text
    # The progress promise ("we will write again by ..., or sooner if the process ends") is
    # kept by this letter: no further progress letter is owed.
    with session_scope() as session:
        updates = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.COMPLAINANT_UPDATE,
            Deadline.status == DeadlineStatus.OPEN)).all()
        letters = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.OUTCOME_LETTER)).all()
    assert updates == []
    assert letters and all(d.status is DeadlineStatus.MET for d in letters)


def test_the_review_endings_and_the_body_names_are_force_policy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_REVIEW_RIGHTS_ENDINGS", "discontinued")
    monkeypatch.setenv("RPRP_LOCAL_POLICING_BODY_NAME", "the Northshire Police and Crime "
                                                        "Commissioner")
    reset_settings()
    try:
        case_id = new_case(review_body="local_policing_body")
        close_externally(case_id, S.DISCONTINUED, actor=PSD, reason="Retired")
        [letter] = letters_to(case_id, "complainant_ending")
        assert "YOUR RIGHT TO APPLY FOR A REVIEW" in letter.body_text
        assert "the Northshire Police and Crime Commissioner" in letter.body_text
    finally:
        monkeypatch.delenv("RPRP_REVIEW_RIGHTS_ENDINGS")
        monkeypatch.delenv("RPRP_LOCAL_POLICING_BODY_NAME")
        reset_settings()


def test_an_unknown_ending_in_the_review_policy_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from infra.settings import Settings

    monkeypatch.setenv("RPRP_REVIEW_RIGHTS_ENDINGS", "closed_nfa,closed")
    with pytest.raises(ValidationError, match="unknown endings"):
        Settings()


def test_a_case_without_a_complaint_sends_no_complainant_letter() -> None:
    case_id = new_case(complaint=False)
    close_externally(case_id, S.CANCELLED, actor=PSD, reason="Made in error")
    assert [r for r in outbox(case_id) if r.kind.startswith("complainant_")] == []


# 3. The PDR clock survives closure ----------------------------------------------------------

def pdr_deadline(case_id: int) -> Deadline:
    with session_scope() as session:
        return session.exec(select(Deadline).where(Deadline.case_id == case_id,
                                                   Deadline.kind == DeadlineKind.PDR)).one()


def at_seven(day: date) -> datetime:
    return datetime.combine(day, time(7), tzinfo=LONDON)


def sweep_pdr(day: date) -> int:
    report = SweepReport(as_of=day.isoformat())
    pdr_reminders(at_seven(day), report)
    return report.pdr_reminders


def test_closing_complete_keeps_the_pdr_deadline_and_the_reviewer_is_reminded_once() -> None:
    case_id = new_case()
    close_complete(case_id)
    deadline = pdr_deadline(case_id)
    assert deadline.status is DeadlineStatus.OPEN
    with session_scope() as session:
        due_on = session.exec(select(Report).where(Report.case_id == case_id)).one().pdr_due_on
    assert due_on == add_months(date.today(), 12)
    remind_on = reminder_day(england_and_wales(), due_on, 20)  # the default lead
    sweep_pdr(remind_on - timedelta(days=1))
    assert letters_to(case_id, "pdr_reminder") == []
    sweep_pdr(remind_on)
    sweep_pdr(remind_on)
    sweep_pdr(remind_on + timedelta(days=3))
    [reminder] = letters_to(case_id, "pdr_reminder")
    assert reminder.recipient == REVIEWER and "70(6)" in reminder.body_text


def test_the_pdr_reminder_lead_is_force_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = new_case()
    close_complete(case_id)
    with session_scope() as session:
        due_on = session.exec(select(Report).where(Report.case_id == case_id)).one().pdr_due_on
    monkeypatch.setenv("RPRP_PDR_REMINDER_WORKING_DAYS", "5")
    reset_settings()
    try:
        sweep_pdr(reminder_day(england_and_wales(), due_on, 6))
        assert letters_to(case_id, "pdr_reminder") == []
        sweep_pdr(reminder_day(england_and_wales(), due_on, 5))
        assert len(letters_to(case_id, "pdr_reminder")) == 1
    finally:
        monkeypatch.delenv("RPRP_PDR_REMINDER_WORKING_DAYS")
        reset_settings()


def test_recording_the_pdr_discussion_meets_the_deadline_and_is_audited() -> None:
    case_id = new_case()
    close_complete(case_id)
    today = date.today()
    with pytest.raises(PdrNotRecorded, match="today or in the past"):
        record_pdr_discussion(case_id, today + timedelta(days=1), actor=REVIEWER)
    with pytest.raises(PdrNotRecorded, match="before the report"):
        record_pdr_discussion(case_id, today - timedelta(days=1), actor=REVIEWER)
    assert pdr_deadline(case_id).status is DeadlineStatus.OPEN

    record_pdr_discussion(case_id, today, actor=REVIEWER)
    deadline = pdr_deadline(case_id)
    assert deadline.status is DeadlineStatus.MET and deadline.met_at is not None
    with session_scope() as session:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
        event = session.exec(select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "pdr_discussed")).one()
    assert (report.pdr_discussed_on, report.pdr_recorded_by) == (today, REVIEWER)
    assert event.actor == REVIEWER and today.isoformat() in event.detail
    with pytest.raises(PdrNotRecorded, match="already recorded"):
        record_pdr_discussion(case_id, today, actor=PSD)
    # Once it is done, no reminder is sent.
    sweep_pdr(report.pdr_due_on)
    assert letters_to(case_id, "pdr_reminder") == []


def test_the_pdr_discussion_needs_a_report() -> None:
    case_id = new_case()
    with pytest.raises(PdrNotRecorded, match="no report"):
        record_pdr_discussion(case_id, date.today(), actor=PSD)


def test_an_officer_who_left_has_no_pdr_clock() -> None:
    case_id = new_case()
    to_report(case_id)
    file_report(case_id, complainant_summary=COMPLAINANT_SUMMARY_DEFAULT)
    close_externally(case_id, S.DISCONTINUED, actor=PSD, reason="Resigned")
    assert pdr_deadline(case_id).status is DeadlineStatus.CANCELLED


# 5. The officer may decline to give an account -----------------------------------------------

def test_declining_moves_the_case_on_at_once_and_tells_psd_and_the_reviewer() -> None:
    case_id = new_case()
    assert decline_account(case_id, 1) is True
    case = case_row(case_id)
    assert case.state is S.NO_ACCOUNT and not case.account_deadline_missed
    with session_scope() as session:
        event = session.exec(select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "account_declined")).one()
        account = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT)).one()
    assert (event.actor, event.from_state, event.to_state) == (
        "officer", "awaiting_account", "no_account")
    assert account.status is DeadlineStatus.CANCELLED
    assert sorted(r.recipient for r in letters_to(case_id, "account_declined")) == sorted(
        [PSD, REVIEWER])
    assert letters_to(case_id, "missed_account_deadline") == []

    # A second press changes nothing; the flow then moves to the reviewer's decision, whose
    # email says the officer declined; the deadline passing later does nothing.
    emails = len(outbox(case_id))
    assert decline_account(case_id, 1) is False
    assert len(outbox(case_id)) == emails
    assert advance(case_id)[0] is S.FACT_FINDING_DECISION
    [decision] = letters_to(case_id, "decision_needed")
    assert "declined to give an account" in decision.body_text
    with session_scope() as session:
        assert not mark_no_account(session, case_row(case_id),
                                   datetime.now(UTC) + timedelta(days=30))
    assert letters_to(case_id, "missed_account_deadline") == []


def test_declining_after_the_account_stage_is_refused() -> None:
    case_id = new_case()
    record_account(case_id, 1, "My account of what happened at the stop.")
    with pytest.raises(AccountNotAccepted, match="nothing to decline"):
        decline_account(case_id, 1)
    assert case_row(case_id).state is S.ACCOUNT_RECEIVED
    with pytest.raises(AccountNotAccepted, match="earlier notice"):
        decline_account(case_id, 2)
