"""A case's life against a real Prefect server, a real process worker, a real SMTP server on
loopback and the case DB. Time moves through the sweep's `as_of`, never by sleeping."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from flows.sweep import rprp_sweep
from infra.db import session_scope
from infra.mailsink import read_messages
from models import Account, ActionReview, Deadline, Decision, Report
from models.enums import CaseState, DeadlineKind, DeadlineStatus
from tests.support.cases import (
    AS_PSD,
    PSD,
    REVIEWER,
    audit_actions,
    case_row,
    decide,
    finished,
    give_account,
    invite_officer,
    open_case,
    outbox,
    paused_in,
    report_answer,
    sample_referral,
    submit,
)

S = CaseState
pytestmark = [pytest.mark.long(seconds=75), pytest.mark.integration]
ACCOUNT_MARKER = "ZX-CONFIDENTIAL-ACCOUNT-7731"
DISCUSSION_MARKER = "QK-SEALED-DISCUSSION-4409"


def kinds(case_id: int) -> list[str]:
    return [f"{row.kind}->{row.recipient}" for row in outbox(case_id)]


async def sweep_at(as_of: datetime) -> dict[str, object]:
    return await rprp_sweep(as_of=as_of)


async def to_discussion(case_id: int) -> None:
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)


async def test_happy_path_from_notice_to_closure(stack, mail_sink, session_dir,  # type: ignore[no-untyped-def]
                                                prefect_server) -> None:
    """The whole life through the flow runs, and the account and the discussion summary,
    confidential by law, never reach Prefect, its logs or an email on the way."""
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    officer_email = kinds(case_id)[0]
    assert officer_email.startswith("officer_notice->officer")

    await give_account(case_id, f"I accept I was abrupt ({ACCOUNT_MARKER}); I was rushing.")
    await to_discussion(case_id)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer(
        discussion_summary=f"We discussed the stop and welfare: {DISCUSSION_MARKER}."))
    await paused_in(case_id, S.ACTIONS_MONITORING)

    with session_scope() as session:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
        pdr = session.exec(select(Deadline).where(Deadline.case_id == case_id,
                                                  Deadline.kind == DeadlineKind.PDR)).one()
    assert DISCUSSION_MARKER in report.discussion_summary  # the case DB has it, from the seal
    assert pdr.status is DeadlineStatus.OPEN

    # Three months on, the sweep starts the action-plan review; the reviewer closes the action.
    # (When the review falls due, and that it starts once: test_case_clock.py.)
    summary = await sweep_at(datetime.now(UTC) + timedelta(days=92))
    assert summary["reviews_started"] == 1
    review_run = await _review_run(case_id)
    action_id = await _open_action_id(case_id)
    await _wait_paused(review_run)
    await decide(case_id, flow_run_id=str(review_run), **{
        f"action_{action_id}_note": "Module completed on time.",
        f"action_{action_id}_outcome": "Completed: close this action"})
    assert await finished(case_id) == "Completed"
    assert case_row(case_id).state is S.CLOSED_COMPLETE

    sent = kinds(case_id)
    assert sent.count(f"officer_notice->{officer_email.split('->')[1]}") == 1
    assert any(k.startswith("officer_report_copy->") for k in sent)
    assert f"report_filed->{PSD}" in sent
    assert f"action_review_due->{REVIEWER}" in sent
    assert {f"case_closed->{PSD}", f"case_closed->{REVIEWER}"} <= set(sent)
    actions = audit_actions(case_id)
    for step in ("referral_received", "notice_served", "account_received", "report_filed",
                 "all_actions_closed"):
        assert step in actions

    # Not a byte of either confidential text in Prefect's database (its files, WAL included,
    # or a dump of its PostgreSQL database), in any log of the session, or in any email.
    haystacks = [prefect_bytes(prefect_server)]
    haystacks += [p.read_bytes() for p in Path(session_dir).rglob("*.log") if p.is_file()]
    messages = read_messages(mail_sink.directory)
    assert messages
    haystacks += [(m.text + (m.html or "") + m.subject).encode() for m in messages]
    haystacks += [(r.body_text + r.body_html).encode() for r in outbox(case_id)]
    assert any(b"rprp-case" in h for h in haystacks), "Prefect's records were searched"
    for marker in (ACCOUNT_MARKER, DISCUSSION_MARKER):
        assert [h.find(marker.encode()) for h in haystacks if marker.encode() in h] == []
    assert os.environ.get("PREFECT_API_AUTH_STRING")  # the server ran with its credentials


def prefect_bytes(prefect_server) -> bytes:  # type: ignore[no-untyped-def]
    """Every byte Prefect stored: its SQLite files (WAL included) or a dump of its database."""
    if prefect_server.database_url:
        url = prefect_server.resolved_database_url.replace("+asyncpg", "")
        return subprocess.run(["pg_dump", "--data-only", url], capture_output=True,
                              check=True, timeout=120).stdout
    files = [p for p in Path(prefect_server.home).rglob("prefect.db*") if p.is_file()]
    assert files, "Prefect's SQLite files exist: the search would be empty otherwise"
    return b"".join(p.read_bytes() for p in files)


async def _review_run(case_id: int):  # type: ignore[no-untyped-def]
    from uuid import UUID

    from tests.support.stack import eventually

    def check():  # type: ignore[no-untyped-def]
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(ActionReview.case_id == case_id,
                                                             ActionReview.number == 1)).one()
            return UUID(review.flow_run_id) if review.flow_run_id else None

    return await eventually(check, 30, "review run id")


async def _open_action_id(case_id: int) -> int:
    from models import Action

    with session_scope() as session:
        action = session.exec(select(Action).where(Action.case_id == case_id)).first()
        assert action is not None and action.id is not None
        return action.id


async def _wait_paused(flow_run_id) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client

    from tests.support.stack import eventually

    async def check() -> bool:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
        return bool(run.state and run.state.is_paused())

    await eventually(check, 90, "review run paused")


async def test_no_account_by_the_deadline_moves_on_to_the_fact_finding_decision(stack) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    with session_scope() as session:
        deadline = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT)).one()
    due = deadline.due_at.replace(tzinfo=UTC)

    # Two working days before, and on the morning of, the deadline: one reminder each.
    first = await sweep_at(due - timedelta(days=4, hours=12))
    again = await sweep_at(due - timedelta(days=4, hours=12))
    assert again["reminders"] == 0
    morning = await sweep_at(due - timedelta(hours=15))
    reminders = [k for k in kinds(case_id) if k.startswith("account_reminder")]
    assert len(reminders) == first["reminders"] + morning["reminders"] >= 1

    summary = await sweep_at(due + timedelta(hours=9))
    assert summary["missed_deadlines"] == 1
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    assert case.account_deadline_missed
    assert f"missed_account_deadline->{PSD}" in kinds(case_id)
    assert f"missed_account_deadline->{REVIEWER}" in kinds(case_id)
    assert not any(a.startswith("escalat") for a in audit_actions(case_id))

    # A late account is still accepted, and flagged.
    await give_account(case_id, "Sorry this is late: I was on leave last week.")
    with session_scope() as session:
        account = session.exec(select(Account).where(Account.case_id == case_id)).one()
    assert account.late
    assert case_row(case_id).state is S.FACT_FINDING_DECISION

    twice = await sweep_at(due + timedelta(hours=9))
    assert twice["missed_deadlines"] == 0 and twice["reminders"] == 0


AUTHORITY_OUTCOMES = {
    "Continue RPRP, same scope": S.DISCUSSION_SCHEDULING,
    "Continue RPRP with a new notice and a new account window": S.AWAITING_ACCOUNT,
    "Misconduct proceedings": S.ESCALATED_MISCONDUCT,
    "Unsatisfactory performance procedures (UPP)": S.ESCALATED_UPP,
    "Vetting Regulations": S.ESCALATED_VETTING,
    "No further action": S.CLOSED_NFA,
}


async def test_fact_finding_then_referral_back_then_each_authority_decision(stack) -> None:
    async def one(choice: str, expected: CaseState) -> None:
        case_id = await open_case()
        await paused_in(case_id, S.AWAITING_ACCOUNT)
        await give_account(case_id, "My account of what happened at the stop.")
        await paused_in(case_id, S.FACT_FINDING_DECISION)
        await decide(case_id, choice="Fact-finding needed")
        await paused_in(case_id, S.FACT_FINDING)
        await decide(case_id, choice="Substantial new evidence: refer back to PSD",
                     reasons="CCTV shows more")
        await paused_in(case_id, S.REFERRED_BACK)
        assert f"referral_back->{PSD}" in kinds(case_id)
        # The reviewer may not take the appropriate authority's decision: refused at once.
        refused = await submit(case_id, choice=choice, reasons="Reviewer tries")
        assert refused["status"] == "REJECT"
        assert "PSD decision-maker" in refused["details"]["reason"]
        await paused_in(case_id, S.REFERRED_BACK)
        assert not any(a.startswith("decision_rejected") for a in audit_actions(case_id)), (
            "refused before Prefect saw it: the flow had nothing to refuse")
        await decide(case_id, choice=choice, reasons="AA reassessed severity", by=AS_PSD)
        if expected.is_terminal:
            await finished(case_id)
            assert case_row(case_id).state is expected
        else:
            case = await paused_in(case_id, expected)
            if expected is S.AWAITING_ACCOUNT:
                assert case.notice_round == 2
                assert sum(k.startswith("officer_notice") for k in kinds(case_id)) == 2

    await asyncio.gather(*(one(c, s) for c, s in AUTHORITY_OUTCOMES.items()))


@pytest.mark.parametrize(("choice", "expected"), [
    ("Unsatisfactory performance procedures (UPP)", S.ESCALATED_UPP),
    ("Formal (misconduct) proceedings", S.ESCALATED_MISCONDUCT),
])
async def test_non_engagement_goes_to_a_decision_then_upp_or_formal_proceedings(
        stack, choice: str, expected: CaseState) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    await to_discussion(case_id)
    await invite_officer(case_id)
    await decide(case_id, choice="Officer did not attend")
    await paused_in(case_id, S.NON_ENGAGEMENT_REVIEW)
    assert "discussion_outcome_recorded" in audit_actions(case_id)
    assert f"decision_needed->{PSD}" in kinds(case_id)
    await decide(case_id, choice=choice, reasons="Refused twice", by=AS_PSD)
    await finished(case_id)
    assert case_row(case_id).state is expected
    assert f"escalation->{PSD}" in kinds(case_id)


async def test_upp_is_not_offered_for_a_probationer_constable(stack) -> None:
    case_id = await open_case(sample_referral(officer={"probationer": True}))
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    await to_discussion(case_id)
    await decide(case_id, choice="Officer attended but did not engage",
                 held_on=datetime.now(UTC).date().isoformat())
    case = await paused_in(case_id, S.NON_ENGAGEMENT_REVIEW)
    schema = await _pending_schema(case.flow_run_id or "")
    assert "Unsatisfactory performance procedures (UPP)" not in str(schema)
    assert "Formal (misconduct) proceedings" in str(schema)
    refused = await submit(case_id, by=AS_PSD, reasons="x" * 5,
                           choice="Unsatisfactory performance procedures (UPP)")
    assert refused["status"] == "REJECT"
    assert "Choose one of the options for 'Decision on non-engagement'" in (
        refused["details"]["reason"])
    assert case_row(case_id).state is S.NON_ENGAGEMENT_REVIEW


async def _pending_schema(flow_run_id: str) -> object:
    from uuid import UUID

    from prefect.input.actions import afilter_flow_run_input

    inputs = await afilter_flow_run_input(key_prefix="suspended-non-engagement-review",
                                          flow_run_id=UUID(flow_run_id), limit=100)
    return [i.value for i in inputs if i.key.endswith("-schema")]


async def test_an_officer_who_leaves_mid_case_ends_it_as_discontinued(stack) -> None:
    from tasks.casework import close_externally
    from tasks.orchestration import stop_flow_run

    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    close_externally(case_id, S.DISCONTINUED, actor=PSD, reason="Resigned")
    await stop_flow_run(case.flow_run_id, "Case discontinued: officer left the force")
    assert await finished(case_id) in {"Cancelled", "Completed"}
    assert case_row(case_id).state is S.DISCONTINUED
    assert f"case_closed->{PSD}" in kinds(case_id)
    # Closed stays closed.
    assert close_externally(case_id, S.CANCELLED, actor=PSD, reason="again") is S.DISCONTINUED


async def test_public_complaint_gets_progress_and_outcome_letters(stack) -> None:
    complaint = sample_referral(origin="public_complaint", complainant={
        "name": "Jo Public", "email": "jo.public@example.org", "review_body": "iopc"})
    case_id = await open_case(complaint)
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    letters = [k for k in kinds(case_id) if k.startswith("complainant_")]
    assert letters == ["complainant_progress->jo.public@example.org"]

    await sweep_at(datetime.now(UTC) + timedelta(days=26))
    progress = [k for k in kinds(case_id) if k.startswith("complainant_progress")]
    assert len(progress) == 2
    await sweep_at(datetime.now(UTC) + timedelta(days=26))
    assert len([k for k in kinds(case_id) if k.startswith("complainant_progress")]) == 2

    await give_account(case_id, "My account of what happened at the stop.")
    await to_discussion(case_id)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    words = "Stops will now be explained at the start."
    await decide(case_id, **report_answer(complainant_summary=words))
    await paused_in(case_id, S.ACTIONS_MONITORING)
    outcome = [r for r in outbox(case_id) if r.kind == "complainant_outcome"]
    assert len(outcome) == 1 and "IOPC" in outcome[0].body_text
    assert words in outcome[0].body_text


def assert_each_email_delivered_once(mail_sink, case_id: int) -> None:  # type: ignore[no-untyped-def]
    from infra.mailsink import read_messages
    from tasks.notify import deliver_pending  # noqa: F401

    keys = [m.headers.get("X-RPRP-Outbox-Key") for m in read_messages(mail_sink.directory)]
    mine = [r.key for r in outbox(case_id)]
    for key in mine:
        assert keys.count(key) <= 1, key
    assert any(keys.count(key) == 1 for key in mine)


async def test_resuming_twice_and_sweeping_twice_send_nothing_twice(stack, mail_sink) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    again = await submit(case_id, choice="Fact-finding needed")  # the same pause, answered
    assert again["status"] == "REJECT"
    assert "may have just been answered" in again["details"]["reason"], again
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)  # the first answer, not the second
    with session_scope() as session:
        assert len(session.exec(select(Decision).where(Decision.case_id == case_id)).all()) == 1
    now = datetime.now(UTC) + timedelta(days=40)
    await sweep_at(now)
    before = kinds(case_id)
    assert f"overdue_reminder->{REVIEWER}" in before
    await sweep_at(now)
    assert kinds(case_id) == before
    assert_each_email_delivered_once(mail_sink, case_id)


async def test_worker_killed_mid_flow_then_restarted_loses_and_repeats_nothing(stack,
                                                                            mail_sink) -> None:
    from datetime import timedelta as td

    from models import Decision
    from tasks.orchestration import recover_stalled_runs
    from tests.support.stack import eventually, flow_run_state

    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await eventually(lambda: flow_run_state(case.flow_run_id or ""), 60, "run picked up",
                     interval=0.05)

    async def running() -> bool:
        return await flow_run_state(case.flow_run_id or "") in {"Pending", "Running"}

    await eventually(running, 60, "the resumed run to start", interval=0.05)
    stack.kill()
    stack.start()
    await recover_stalled_runs(td(seconds=0))
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)

    with session_scope() as session:
        decisions = session.exec(select(Decision).where(Decision.case_id == case_id)).all()
    assert len(decisions) == 1
    sent = kinds(case_id)
    assert sent.count(f"decision_needed->{REVIEWER}") == 2  # fact-finding, then discussion
    assert_each_email_delivered_once(mail_sink, case_id)


async def test_smtp_down_delays_mail_and_it_is_delivered_once_when_back(stack, mail_sink) -> None:
    from infra.mailsink import read_messages
    from tasks.notify import deliver_pending
    from tests.support.stack import eventually

    mail_sink.stop()
    try:
        case_id = await open_case()
        await paused_in(case_id, S.AWAITING_ACCOUNT)
        notice = [r for r in outbox(case_id) if r.kind == "officer_notice"]
        assert notice and notice[0].status == "pending" and notice[0].attempts >= 1
    finally:
        mail_sink.start()
    from models import Outbox

    with session_scope() as session:
        row = session.get(Outbox, notice[0].id)
        row.next_attempt_at = row.created_at
        session.add(row)
    await deliver_pending()
    await deliver_pending()
    key = notice[0].key

    def delivered() -> int:
        return sum(m.headers.get("X-RPRP-Outbox-Key") == key
                   for m in read_messages(mail_sink.directory))

    await eventually(delivered, 30, "the notice to arrive")
    assert delivered() == 1
    assert [r.status for r in outbox(case_id) if r.kind == "officer_notice"] == ["sent"]
