"""The outbox end to end: real templates, a real SQLite case DB and a real SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select

from infra.db import session_scope
from infra.mailsink import MailSink, read_messages
from infra.migrations import upgrade_to_head
from infra.settings import get_settings, reset_settings
from models import Case, Officer, Outbox, as_utc
from models.enums import Rank
from rprp.processes import free_port
from tasks.notify import deliver_pending, message_id, retry_delay
from tasks.outbox import KIND_CONTEXT, enqueue, failed_count, pending_count, render_email

CASE = SimpleNamespace(
    reference="RPRP-000042",
    rprp_reason="Failure to update a victim, referred for reflection rather than misconduct",
    allegation_category="Quality of service",
    public_summary="Did not update the complainant <script>alert('x')</script> for six weeks.",
    behaviour_summary="INTERNAL BEHAVIOUR SUMMARY",
)
OFFICER = SimpleNamespace(name="Jane Smith", rank="chief_inspector", collar_number="4711",
                          email="jane.smith@force.example", ethnicity="MONITORING DATA")

SAMPLES: dict[str, dict[str, Any]] = {
    "officer_notice": {"deadline_text": "Friday 13 June 2025",
                       "account_link": "https://portal.example/account/abc?x=1&y=2",
                       "reviewer_name": "Inspector Bob Jones"},
    "account_reminder": {"deadline_text": "Friday 13 June 2025",
                         "account_link": "https://portal.example/account/abc",
                         "working_days_left": 0},
    "decision_needed": {"recipient_name": "Inspector Bob Jones",
                        "decision_title": "Decide whether fact-finding is needed",
                        "decision_link": "http://prefect.example/runs/flow-run/1",
                        "case_link": "http://portal.example/cases/42",
                        "due_text": "Monday 16 June 2025",
                        "note": "No account was received by the deadline."},
    "missed_account_deadline": {"deadline_text": "Friday 13 June 2025",
                                "case_link": "http://portal.example/cases/42"},
    "escalation": {"outcome_label": "Misconduct proceedings",
                   "case_link": "http://portal.example/cases/42",
                   "decided_by": "psd@force.example"},
    "referral_back": {"case_link": "http://portal.example/cases/42",
                      "decision_link": "http://prefect.example/runs/flow-run/1",
                      "referred_by": "Inspector Bob Jones"},
    "report_filed": {"case_link": "http://portal.example/cases/42",
                     "review_due_text": "Friday 25 July 2025",
                     "pdr_due_text": "Tuesday 16 June 2026"},
    "officer_report_copy": {
        "reviewer_name": "Inspector Bob Jones", "issue_summary": "Victim updates were missed.",
        "officer_lessons": "Diary victim updates weekly.",
        "force_lessons": "The workflow system should prompt victim updates.",
        "review_period_weeks": 6, "agreed_on_text": "Monday 16 June 2025",
        "review_due_text": "Monday 28 July 2025", "pdr_due_text": "Tuesday 16 June 2026",
        "actions": [{"type_label": "Training", "description": "Complete the VCOP e-learning.",
                     "owner": "Jane Smith", "due_text": "Friday 4 July 2025"}],
    },
    "complainant_progress": {"complainant_name": "Mr A Member",
                             "stage_text": "A reflective practice discussion is being arranged.",
                             "next_update_text": "Friday 11 July 2025"},
    "complainant_outcome": {"complainant_name": "Mr A Member",
                            "outcome_text": "The officer has taken part in a reflective practice "
                                            "review discussion.",
                            "learning_text": "", "review_rights": True,
                            "review_body_label": "the local policing body", "review_days": 28},
    "complainant_ending": {"complainant_name": "Mr A Member",
                           "ending_text": "The appropriate authority has decided that no further "
                                          "action will be taken.",
                           "earlier_letter_text": "", "review_rights": True,
                           "review_body_label": "the local policing body", "review_days": 28},
    "account_declined": {"declined_on_text": "Wednesday 11 June 2025",
                         "case_link": "http://portal.example/cases/42"},
    "pdr_reminder": {"pdr_due_text": "Tuesday 16 June 2026", "agreed_on_text": "Monday 16 June 2025",
                     "case_link": "http://portal.example/cases/42"},
    "learning_item_overdue": {"item_reference": "LI-00012", "theme_text": "Training gap",
                              "unit_text": "Response team B", "target_text": "Friday 4 December 2026",
                              "item_text": "Refresher on updating victims", "status_text": "open"},
    "learning_board_pack": {"month_text": "November 2026",
                            "pack_link": "http://portal.example/learning/board/2026-11",
                            "no_cases": False, "cases_referred": 7, "reports_filed": 4,
                            "median_text": "19.5 working days", "new_count": 5,
                            "closed_count": 2, "overdue_count": 1,
                            "themes": [("supervision", 3), ("welfare", 2)]},
    "overdue_reminder": {"what": "the reflective practice discussion outcome",
                         "due_text": "Friday 13 June 2025", "decision_link": "",
                         "case_link": "http://portal.example/cases/42"},
    "action_review_due": {"review_number": 2, "due_text": "Friday 25 July 2025",
                          "decision_link": "http://prefect.example/runs/flow-run/2",
                          "case_link": "http://portal.example/cases/42"},
    "case_closed": {"outcome_label": "No further action",
                    "case_link": "http://portal.example/cases/42"},
    "discussion_invitation": {"reviewer_name": "Inspector Bob Jones",
                              "meeting_text": "Thursday 10 December 2026, 10:00",
                              "duration_minutes": 60, "format_label": "In person",
                              "place": "Room 2 <b>Central</b>",
                              "replaces_text": "Wednesday 9 December 2026, 14:00"},
    "discussion_cancelled": {"reviewer_name": "Inspector Bob Jones",
                             "meeting_text": "Thursday 10 December 2026, 10:00",
                             "duration_minutes": 60, "format_label": "Phone call",
                             "place": "01632 960000"},
    "discussion_reminder": {"recipient_name": "Inspector Bob Jones",
                            "case_link": "http://portal.example/cases/42",
                            "reviewer_name": "Inspector Bob Jones",
                            "meeting_text": "Thursday 10 December 2026, 10:00",
                            "duration_minutes": 60, "format_label": "Video call",
                            "place": "https://video.example/room"},
}

# Every email that links to a paused decision says how to take it.
HOW_TO = ["Open the link below", "Prefect UI", "Resume", "Fill in the form", "Submit"]

PHRASES: dict[str, list[str]] = {
    "officer_notice": ["Chief Inspector Jane Smith", "may give an account", "optional",
                       "Friday 13 June 2025", "5 working days", "Police Federation",
                       "staff association", "not a disciplinary finding",
                       "prevent you from applying for or obtaining promotion",
                       "cannot be used in any later misconduct proceedings",
                       "Inspector Bob Jones", "Failure to update a victim", "Quality of service",
                       "contact Professional Standards at psd@force.example",
                       "you can say so on the same page"],
    "account_reminder": ["Today, Friday 13 June 2025, is the last day", "optional"],
    "decision_needed": ["Decide whether fact-finding is needed", "Monday 16 June 2025", *HOW_TO,
                        "No account was received by the deadline.",
                        "http://prefect.example/runs/flow-run/1"],
    "missed_account_deadline": ["No account was given", "not non-engagement", "fact-finding"],
    "escalation": ["Misconduct proceedings", "psd@force.example", "cannot be used"],
    "referral_back": ["appropriate authority decision is needed", "Inspector Bob Jones", *HOW_TO],
    "report_filed": ["Reflective Review Development Report", "Friday 25 July 2025",
                     "Tuesday 16 June 2026"],
    "officer_report_copy": ["Diary victim updates weekly.", "Complete the VCOP e-learning.",
                            "6 weeks", "retained in the case record", "within 12 months"],
    "complainant_progress": ["Dear Mr A Member", "A reflective practice discussion is being",
                             "Friday 11 July 2025", "Yours sincerely"],
    "complainant_outcome": ["Dear Mr A Member", "right to apply for a review",
                            "the local policing body", "28 days",
                            "starting with the day after the date of this letter"],
    "complainant_ending": ["Dear Mr A Member", "has ended", "no further action",
                           "right to apply for a review", "the local policing body", "28 days",
                           "last letter"],
    "account_declined": ["do not want to give an account", "Wednesday 11 June 2025", "not non-engagement",
                         "without waiting"],
    "pdr_reminder": ["Tuesday 16 June 2026", "Monday 16 June 2025", "70(6)",
                     "Record the PDR discussion"],
    "learning_item_overdue": ["LI-00012", "Training gap", "Response team B",
                              "Friday 4 December 2026", "Refresher on updating victims"],
    "learning_board_pack": ["November 2026", "Cases referred", "19.5 working days",
                            "supervision: 3", "http://portal.example/learning/board/2026-11"],
    "overdue_reminder": ["the reflective practice discussion outcome", "Friday 13 June 2025"],
    "action_review_due": ["Review 2", "Friday 25 July 2025", *HOW_TO],
    "case_closed": ["No further action", "closed"],
    "discussion_invitation": ["Chief Inspector Jane Smith", "Thursday 10 December 2026, 10:00",
                              "replaces the one for Wednesday 9 December 2026, 14:00",
                              "invitation.ics", "Inspector Bob Jones"],
    "discussion_cancelled": ["Thursday 10 December 2026, 10:00", "is cancelled",
                             "01632 960000", "cancellation.ics"],
    "discussion_reminder": ["Thursday 10 December 2026, 10:00", "Jane Smith",
                            "https://video.example/room", "record the outcome"],
}


def sample(kind: str, **extra: Any) -> dict[str, Any]:
    return {"case": CASE, "officer": OFFICER, **SAMPLES[kind], **extra}


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail", port=0) as running:
        yield running


@pytest.fixture
def outbox_db(tmp_path: Path, sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/cases.db"
    monkeypatch.setenv("RPRP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RPRP_DATABASE_URL", url)
    monkeypatch.setenv("RPRP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RPRP_SMTP_PORT", str(sink.port))
    monkeypatch.setenv("RPRP_SMTP_TIMEOUT_SECONDS", "5")
    reset_settings()
    upgrade_to_head(url)
    yield url
    reset_settings()


def queue(key: str, kind: str = "case_closed", recipient: str = "psd@force.example") -> bool:
    with session_scope() as session:
        return enqueue(session, key=key, kind=kind, recipient=recipient, context=sample(kind))


def rows() -> list[Outbox]:
    with session_scope() as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())  # type: ignore[arg-type]


def make_due_now() -> None:
    with session_scope() as session:
        for row in session.exec(select(Outbox)).all():
            row.next_attempt_at = row.next_attempt_at - timedelta(days=1)
            session.add(row)


# Rendering


@pytest.mark.parametrize("kind", sorted(KIND_CONTEXT))
def test_every_kind_renders_with_its_key_phrases(kind: str) -> None:
    email = render_email(kind, sample(kind, force_name="Northshire Police"))
    assert email.subject and "\n" not in email.subject
    # Issue 9: subjects once started with a space (the template's line break).
    assert email.subject == email.subject.strip() and "  " not in email.subject
    for phrase in PHRASES[kind]:
        assert phrase in email.text, (kind, phrase)
        assert phrase in email.html.replace("<strong>", "").replace("</strong>", ""), (kind, phrase)
    assert "Northshire Police" in email.text and "Northshire Police" in email.html
    assert email.html.startswith("<!DOCTYPE html>") and 'lang="en-GB"' in email.html
    for secret in ("INTERNAL BEHAVIOUR SUMMARY", "MONITORING DATA", "jane.smith@force.example"):
        assert secret not in email.text + email.html + email.subject
    if kind.startswith("complainant_"):
        assert "Jane Smith" not in email.text + email.html + email.subject
        assert "RPRP-000042" in email.subject


def test_html_is_escaped_and_text_is_not() -> None:
    email = render_email("officer_notice", sample("officer_notice"))
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert('x')</script>" in email.text
    assert "https://portal.example/account/abc?x=1&amp;y=2" in email.html
    assert "https://portal.example/account/abc?x=1&y=2" in email.text


def test_optional_paragraphs_and_counts() -> None:
    outcome = render_email("complainant_outcome", sample("complainant_outcome"))
    assert "learned" not in outcome.text.lower()
    with_learning = render_email("complainant_outcome", sample(
        "complainant_outcome", learning_text="Updates are now diarised."))
    assert "Updates are now diarised." in with_learning.text
    assert "Updates are now diarised." in with_learning.html
    reminder = render_email("account_reminder", sample("account_reminder", working_days_left=2))
    assert "2 working days from today" in reminder.text
    overdue = render_email("overdue_reminder", sample("overdue_reminder"))
    assert "Record it" not in overdue.text and "Resume" not in overdue.text
    linked = render_email("overdue_reminder", sample(
        "overdue_reminder", decision_link="http://prefect.example/runs/flow-run/1"))
    for phrase in HOW_TO:
        assert phrase in linked.text and phrase in linked.html


@pytest.mark.parametrize("kind", ["decision_needed", "referral_back", "action_review_due"])
def test_a_decision_email_without_a_run_link_says_how_to_decide_from_the_case_page(
        kind: str) -> None:
    email = render_email(kind, sample(kind, decision_link=""))
    for phrase in ["Open the case page", "Open the decision in Prefect", "Resume",
                   "Fill in the form", "Submit"]:
        assert phrase in email.text and phrase in email.html, (kind, phrase)


def test_the_outcome_letter_leaves_out_review_rights_when_told_to() -> None:
    without = render_email("complainant_outcome", sample("complainant_outcome",
                                                         review_rights=False))
    assert "right to apply for a review" not in without.text + without.html
    ending = render_email("complainant_ending", sample(
        "complainant_ending", review_rights=False, earlier_letter_text=""))
    assert "YOUR RIGHT TO APPLY FOR A REVIEW" not in ending.text
    assert "does not start a review period" in ending.text


def test_every_email_gives_psd_contact_from_the_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_PSD_CONTACT_EMAIL", "psd.enquiries@force.example")
    monkeypatch.setenv("RPRP_PSD_CONTACT_PHONE", "01234 567890")
    reset_settings()
    try:
        for kind in KIND_CONTEXT:
            email = render_email(kind, sample(kind))
            assert "psd.enquiries@force.example" in email.text, kind
            assert "psd.enquiries@force.example" in email.html, kind
            assert "01234 567890" in email.text and "01234 567890" in email.html, kind
        notice = render_email("officer_notice", sample("officer_notice"))
        assert "If you have questions about this notice, contact Professional Standards at " \
               "psd.enquiries@force.example or on 01234 567890" in notice.text
    finally:
        monkeypatch.delenv("RPRP_PSD_CONTACT_EMAIL")
        monkeypatch.delenv("RPRP_PSD_CONTACT_PHONE")
        reset_settings()


def test_real_records_are_reduced_to_what_an_email_may_show() -> None:
    case = Case(id=7, rprp_reason="Reason", allegation_category="Category",
                public_summary="Public summary", behaviour_summary="SECRET BEHAVIOUR",
                complainant_name="SECRET COMPLAINANT", incident_on=date(2025, 6, 1))
    officer = Officer(name="Sam Patel", rank=Rank.CHIEF_SUPERINTENDENT, collar_number="99",
                      email="SECRET@force.example")
    email = render_email("officer_notice", {**SAMPLES["officer_notice"], "case": case,
                                            "officer": officer})
    assert "Dear Chief Superintendent Sam Patel" in email.text
    assert "RPRP-000007" in email.subject and "Public summary" in email.html
    assert "SECRET" not in email.subject + email.text + email.html


def test_context_outside_the_whitelist_is_refused() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        render_email("case_closed", sample("case_closed", account_text="my account"))
    with pytest.raises(ValueError, match="missing"):
        render_email("case_closed", {"case": CASE, "officer": OFFICER})
    with pytest.raises(ValueError, match="unknown"):
        render_email("no_such_kind", {"case": CASE})


# The outbox


def test_enqueue_is_idempotent_and_leaves_the_commit_to_the_caller(outbox_db: str) -> None:
    assert queue("k1") is True
    assert queue("k1") is False
    with session_scope() as session:
        assert enqueue(session, key="k1", kind="case_closed", recipient="x@force.example",
                       context=sample("case_closed")) is False
        assert enqueue(session, key="k2", kind="case_closed", recipient="x@force.example",
                       context=sample("case_closed")) is True
        assert enqueue(session, key="k2", kind="case_closed", recipient="x@force.example",
                       context=sample("case_closed")) is False
        session.rollback()  # the caller's change failed: its email must go with it
    assert [r.key for r in rows()] == ["k1"]
    assert rows()[0].status == "pending" and pending_count() == 1


async def test_deliver_sends_once(outbox_db: str, sink: MailSink) -> None:
    queue("once", kind="officer_notice", recipient="jane.smith@force.example")
    result = await deliver_pending()
    assert (result.sent, result.failed_attempts, result.still_pending) == (1, 0, 0)
    again = await deliver_pending()
    assert (again.sent, again.failed_attempts, again.still_pending) == (0, 0, 0)

    [message] = read_messages(sink.directory)
    assert message.recipients == ["jane.smith@force.example"]
    assert message.headers["X-RPRP-Outbox-Key"] == "once"
    assert message.headers["Message-ID"] == message_id("once")
    assert "may give an account" in message.text and "<!DOCTYPE html>" in message.html
    [row] = rows()
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 0


async def test_smtp_outage_delays_mail_and_never_loses_it(outbox_db: str, sink: MailSink) -> None:
    queue("outage")
    sink.stop()
    result = await deliver_pending()
    assert (result.sent, result.failed_attempts, result.still_pending) == (0, 1, 1)
    [row] = rows()
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    assert "RPRP-000042" not in row.last_error  # the error says what failed, not what was in it
    assert row.next_attempt_at > row.created_at

    # Not due yet: a second run does not hammer the server or count another attempt.
    assert (await deliver_pending()).failed_attempts == 0
    assert rows()[0].attempts == 1

    sink.start()
    make_due_now()
    result = await deliver_pending()
    assert (result.sent, result.still_pending) == (1, 0)
    assert (await deliver_pending()).sent == 0
    assert [m.headers["X-RPRP-Outbox-Key"] for m in read_messages(sink.directory)] == ["outage"]
    [row] = rows()
    assert row.status == "sent" and row.attempts == 1


async def test_wrong_port_backs_off_exponentially(
        outbox_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_SMTP_PORT", str(free_port()))
    reset_settings()
    queue("backoff")
    for attempt in range(1, 5):
        before = datetime.now(UTC)
        await deliver_pending()
        [row] = rows()
        assert row.status == "pending" and row.attempts == attempt and row.last_error
        waited = as_utc(row.next_attempt_at) - before
        expected = retry_delay(attempt - 1)
        assert expected <= waited < expected + timedelta(seconds=5)
        make_due_now()
    assert [retry_delay(n) for n in (0, 1, 2)] == [timedelta(seconds=s) for s in (30, 60, 120)]
    assert retry_delay(7) == retry_delay(50) == timedelta(hours=1)
    assert pending_count() == 1


def test_the_first_retry_wait_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv("RPRP_SMTP_RETRY_SECONDS", "2.5")
        reset_settings()
        assert [retry_delay(n) for n in (0, 1, 2)] == [timedelta(seconds=s)
                                                       for s in (2.5, 5, 10)]
        assert retry_delay(30) == timedelta(hours=1)
        for bad in ("0", "-1", "soon"):
            monkeypatch.setenv("RPRP_SMTP_RETRY_SECONDS", bad)
            reset_settings()
            with pytest.raises(ValueError, match="smtp_retry_seconds"):
                get_settings()
    finally:  # the session's settings again for the tests after, whatever happened here
        monkeypatch.delenv("RPRP_SMTP_RETRY_SECONDS", raising=False)
        reset_settings()


async def test_mail_the_server_refuses_is_given_up_after_the_last_attempt(
        outbox_db: str, sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """RPRP_SMTP_MAX_ATTEMPTS attempts, then failed: no further attempt, counted apart from what
    is still pending; mail to other people in the same run is delivered."""
    monkeypatch.setenv("RPRP_SMTP_MAX_ATTEMPTS", "3")
    reset_settings()
    sink.refused.add("gone@force.example")
    queue("refused", recipient="gone@force.example")
    queue("fine", recipient="psd@force.example")
    first = await deliver_pending()
    assert (first.sent, first.failed_attempts, first.given_up) == (1, 1, 0)
    for attempt in (2, 3):
        make_due_now()
        result = await deliver_pending()
        assert (result.sent, result.failed_attempts) == (0, 1)
        [refused] = [r for r in rows() if r.key == "refused"]
        assert refused.attempts == attempt and "550" in refused.last_error
    assert result.given_up == 1 and result.still_pending == 0
    assert refused.status == "failed" and failed_count() == 1 and pending_count() == 0
    make_due_now()
    assert (await deliver_pending()).failed_attempts == 0  # never tried again
    assert [m.headers["X-RPRP-Outbox-Key"] for m in read_messages(sink.directory)] == ["fine"]


async def test_an_outage_longer_than_the_attempts_gives_nothing_up(
        outbox_db: str, sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_SMTP_MAX_ATTEMPTS", "2")
    reset_settings()
    queue("waits")
    sink.stop()
    for _ in range(4):
        await deliver_pending()
        make_due_now()
    [row] = rows()
    assert row.status == "pending" and row.attempts == 4 and failed_count() == 0
    sink.start()
    assert (await deliver_pending()).sent == 1


async def test_no_smtp_host_leaves_mail_pending(
        outbox_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_SMTP_HOST", "")
    reset_settings()
    queue("nohost")
    result = await deliver_pending()
    assert (result.sent, result.failed_attempts, result.still_pending) == (0, 0, 1)
    assert rows()[0].attempts == 0


async def test_concurrent_senders_deliver_each_row_once(outbox_db: str, sink: MailSink) -> None:
    keys = [f"many-{n}" for n in range(12)]
    for key in keys:
        queue(key, recipient=f"{key}@force.example")
    results = await asyncio.gather(deliver_pending(), deliver_pending(), deliver_pending())
    assert sum(r.sent for r in results) == len(keys)
    assert sum(r.failed_attempts for r in results) == 0
    received = [m.headers["X-RPRP-Outbox-Key"] for m in read_messages(sink.directory)]
    assert sorted(received) == sorted(keys)
    assert all(r.status == "sent" for r in rows())


async def test_crashed_sender_claim_expires_and_the_row_is_resent_with_the_same_id(
        outbox_db: str, sink: MailSink) -> None:
    queue("crash")
    with session_scope() as session:  # a sender claimed the row, then died
        row = session.exec(select(Outbox)).one()
        row.status = "sending"
        row.next_attempt_at = row.next_attempt_at + timedelta(seconds=120)
        session.add(row)
    assert (await deliver_pending()).sent == 0  # the claim has not expired yet
    make_due_now()  # ... now it has
    assert (await deliver_pending()).sent == 1
    [message] = read_messages(sink.directory)
    assert message.headers["Message-ID"] == message_id("crash")


def test_message_id_is_stable_per_key(outbox_db: str) -> None:
    assert message_id("a") == message_id("a")
    assert message_id("a") != message_id("b")
    assert message_id("a").startswith("<") and message_id("a").endswith("@force.example>")


def test_long_keys_stay_unique_within_the_column(outbox_db: str) -> None:
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert queue(long_a) and queue(long_b) and not queue(long_a)
    assert all(len(r.key) <= 200 for r in rows()) and len(rows()) == 2
