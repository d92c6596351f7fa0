"""The organisational learning register against the case DB alone: a filed report's lessons for
the force become learning items exactly once across replays; the officer's and complainant's
names are refused in an item's text (the refusal names them, nothing is saved); the status rules;
the force's own themes; the sweep reminds an owner once of an item past its target."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import Case, Officer, Outbox, Report
from models.learning import LearningItem
from tasks import learning_register as register
from tasks.calendar import LONDON
from tasks.deadline_sweep import SweepReport, learning_reminders
from tasks.learning_register import LearningRefused
from tests.support.cases import PSD, report_answer
from tests.unit.test_report_check import at_report, new_reviewer, policy, set_policy
from tests.unit.test_steps import give

__all__ = ["policy"]  # the fixture, imported for these tests

LESSONS = ("- Body-worn video was not switched on at the start of the stop: remind all "
           "response teams of the policy.\n"
           "- Alex was not supervised on late shifts; Jordan Blake's complaint shows why "
           "sergeants need cover.")
OWNER = "insp.owner@force.example"
NOW = datetime.now(UTC)


def filed_case(monkeypatch: pytest.MonkeyPatch, force_lessons: str = LESSONS) -> int:
    """A complaint case whose report is filed (no quality check) with these lessons."""
    set_policy(monkeypatch, "never")
    reviewer = new_reviewer()
    case_id = at_report(reviewer)
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.complainant_name = "Jordan Blake"
        session.add(case)
    give(case_id, by=reviewer, now=NOW, **report_answer(force_lessons=force_lessons))
    return case_id


def items(case_id: int) -> list[LearningItem]:
    with session_scope() as session:
        return register.items_of_case(session, case_id)


def test_lessons_are_split_by_bullet_or_paragraph_and_none_is_no_lesson() -> None:
    assert register.lessons("None") == []
    assert register.lessons("  n/a ") == []
    assert register.lessons("One lesson\nwrapped.\n\nAnother lesson.") == [
        "One lesson wrapped.", "Another lesson."]
    assert register.lessons("1. First\n2. Second\n   continued") == [
        "First", "Second continued"]


def test_a_filed_reports_force_lessons_become_items_once_across_replays(
        policy: pytest.MonkeyPatch) -> None:
    case_id = filed_case(policy)
    first, second = items(case_id)
    assert first.text.startswith("Body-worn video was not switched on")
    assert (first.status, first.theme, first.owner) == ("open", "", "")
    # The report's own words are kept, but not the names: the register identifies no one.
    assert "Alex" not in second.text and "Jordan" not in second.text
    assert second.text.startswith("[name removed] was not supervised")
    with session_scope() as session:
        created = register.history(session, second.id or 0)[0]
        assert "identifying words replaced" in created.detail
        # A replay of the filing (the step task run again) adds nothing.
        case = session.get(Case, case_id)
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
        assert case is not None
        assert register.create_from_report(session, case, report, NOW) == []
        assert register.create_from_report(session, case, report, NOW) == []
    assert [i.id for i in items(case_id)] == [first.id, second.id]


def test_a_report_with_no_force_lessons_makes_no_item(policy: pytest.MonkeyPatch) -> None:
    assert items(filed_case(policy, force_lessons="None")) == []


def test_the_officers_and_complainants_names_are_refused_and_nothing_is_saved(
        policy: pytest.MonkeyPatch) -> None:
    case_id = filed_case(policy)
    item = items(case_id)[0]
    assert item.id is not None
    with session_scope() as session:
        officer = session.exec(select(Officer).join(Case).where(Case.id == case_id)).one()
        collar = officer.collar_number
    for text, words in [
            ("PC Alex Officer forgot to switch on the camera.", "Alex Officer"),
            (f"Officer {collar} forgot the camera; jordan was filmed.", collar),
            ("Mr Blake was not told why he was stopped.", "Blake")]:
        with session_scope() as session, pytest.raises(LearningRefused) as refused:
            register.assign(session, item.id, PSD, NOW, theme="supervision", text=text)
        assert "remove" in str(refused.value) and words in str(refused.value)
    with session_scope() as session, pytest.raises(LearningRefused, match="Blake"):
        register.change_status(session, item.id, PSD, NOW, "not accepted",
                               "Blake's complaint was unfounded")
    after = items(case_id)[0]
    assert (after.text, after.theme, after.status) == (item.text, "", "open")


def test_status_changes_follow_the_rules_and_are_in_the_history(
        policy: pytest.MonkeyPatch) -> None:
    item_id = items(filed_case(policy))[0].id
    assert item_id is not None

    def refused(status: str, reason: str, match: str) -> None:
        with session_scope() as session, pytest.raises(LearningRefused, match=match):
            register.change_status(session, item_id, PSD, NOW, status, reason)

    refused("archived", "a reason", "Choose a status")
    refused("action planned", "Training booked", "owner and a target date")
    refused("not accepted", "", "the reasons the lesson is not accepted")
    refused("done", " ", "the closing note")
    with session_scope() as session:
        with pytest.raises(LearningRefused, match="Choose a theme"):
            register.assign(session, item_id, PSD, NOW, theme="morale")
        register.assign(session, item_id, PSD, NOW, theme="Use of body-worn video",
                        unit="Response, North", owner=OWNER, target_on=date(2027, 1, 29))
        register.change_status(session, item_id, OWNER, NOW, "action planned",
                               "Briefing at every response parade in January")
    refused("action planned", "again", "cannot become action planned")
    with session_scope() as session:
        register.change_status(session, item_id, OWNER, NOW, "done",
                               "All four teams briefed; policy card reissued")
    refused("not accepted", "Too late now", "An item that is done cannot become not accepted")
    with session_scope() as session:
        item = session.get(LearningItem, item_id)
        assert item is not None
        assert (item.theme, item.status, item.closing_note) == (
            "use of body-worn video", "done", "All four teams briefed; policy card reissued")
        assert [e.action for e in register.history(session, item_id)] == [
            "created", "updated", "status: action planned", "status: done"]
        assert register.may_update(item, OWNER.upper(), is_psd=False)
        assert not register.may_update(item, "someone@force.example", is_psd=False)
        assert register.may_update(item, "someone@force.example", is_psd=True)


def test_the_force_extends_the_themes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_LEARNING_THEMES_EXTRA", "Custody, Welfare ,  stop and search")
    reset_settings()
    try:
        assert register.themes() == (*register.DEFAULT_THEMES, "Custody", "stop and search")
    finally:
        monkeypatch.delenv("RPRP_LEARNING_THEMES_EXTRA")
        reset_settings()


def reminders(item_id: int) -> list[Outbox]:
    with session_scope() as session:
        return list(session.exec(select(Outbox).where(
            Outbox.key.startswith(f"learning-overdue:{item_id}:"))))  # type: ignore[attr-defined]


def test_the_sweep_reminds_the_owner_once_after_the_target_date(
        policy: pytest.MonkeyPatch) -> None:
    case_id = filed_case(policy)
    item_id = items(case_id)[0].id
    assert item_id is not None
    target = date(2027, 1, 29)
    with session_scope() as session:
        register.assign(session, item_id, PSD, NOW, theme="training gap", owner=OWNER,
                        target_on=target)
        case = session.get(Case, case_id)
        assert case is not None
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        reference, name, collar = case.reference, officer.name, officer.collar_number

    def sweep(day: date) -> int:
        """This item's new reminders (the shared test DB may hold other overdue items)."""
        before = len(reminders(item_id))
        report = SweepReport(as_of=day.isoformat())
        learning_reminders(datetime.combine(day, time(7), tzinfo=LONDON), report)
        assert report.errors == []
        return len(reminders(item_id)) - before

    assert sweep(target) == 0  # the target's own day is not past it
    assert sweep(target + timedelta(days=1)) == 1
    assert sweep(target + timedelta(days=2)) == 0  # once
    [email] = reminders(item_id)
    assert email.recipient == OWNER and email.case_id is None
    assert f"LI-{item_id:05d}" in email.subject and "29 January 2027" in email.body_text
    for detail in (reference, name, collar, "Jordan"):
        assert detail not in email.body_text + email.body_html + email.subject
    # A new target earns one more reminder once it too has passed; a closed item none.
    with session_scope() as session:
        register.assign(session, item_id, PSD, NOW, target_on=target + timedelta(days=7))
    assert sweep(target + timedelta(days=3)) == 0
    assert sweep(target + timedelta(days=8)) == 1
    with session_scope() as session:
        register.assign(session, item_id, PSD, NOW, target_on=target + timedelta(days=9))
        register.change_status(session, item_id, OWNER, NOW, "done", "Training delivered")
    assert sweep(target + timedelta(days=20)) == 0
    assert len(reminders(item_id)) == 2
