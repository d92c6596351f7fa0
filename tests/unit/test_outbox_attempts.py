"""The outbox's one retry mechanism against the case DB alone: a message the server refuses is
given up after RPRP_SMTP_MAX_ATTEMPTS attempts and never tried again; an unreachable server
never gives one up. tests/integration/test_notify.py proves the same against a real SMTP server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import aiosmtplib
import pytest
from sqlmodel import select

from infra.db import session_scope
from infra.settings import Settings
from models import Outbox
from models.enums import OutboxStatus
from tasks import notify, outbox

CASE = SimpleNamespace(reference="RPRP-000099", rprp_reason="Reason", allegation_category="Cat",
                       public_summary="Summary")
REFUSED = aiosmtplib.SMTPRecipientsRefused(
    [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 no such mailbox", "x@force.example")])
UNREACHABLE = ConnectionRefusedError(111, "Connection refused")


@pytest.fixture
def row_key() -> Iterator[str]:
    """One queued email, taken out of the session's outbox afterwards."""
    key = f"attempts-{uuid.uuid4().hex}"
    with session_scope() as session:
        assert outbox.enqueue(session, key=key, kind="case_closed", recipient="x@force.example",
                              context={"case": CASE, "officer": None, "outcome_label": "Closed",
                                       "case_link": "http://portal.example/cases/99"})
    yield key
    with session_scope() as session:
        row = session.exec(select(Outbox).where(Outbox.key == key)).one()
        row.status = OutboxStatus.SENT
        session.add(row)


def row(key: str) -> Outbox:
    with session_scope() as session:
        return session.exec(select(Outbox).where(Outbox.key == key)).one()


def fail_once(key: str, exc: BaseException, max_attempts: int) -> bool:
    """What deliver_pending does with one failed send: claim, fail, record."""
    current = row(key)
    assert current.id is not None
    with session_scope() as session:  # due now, as if its backoff had passed
        stored = session.get(Outbox, current.id)
        assert stored is not None
        stored.next_attempt_at = notify._now()
        session.add(stored)
    claimed = notify._claim(current.id, 60)
    assert claimed is not None
    give_up = notify.gives_up(claimed.attempts, exc, max_attempts)
    return notify._mark_failed(claimed, notify._short_error(exc), give_up=give_up)


def test_a_refused_message_is_given_up_after_its_last_attempt(row_key: str) -> None:
    before = outbox.failed_count()
    for attempt in range(1, 3):
        assert fail_once(row_key, REFUSED, max_attempts=3) is False
        assert (row(row_key).status, row(row_key).attempts) == (OutboxStatus.PENDING, attempt)
    assert fail_once(row_key, REFUSED, max_attempts=3) is True
    given_up = row(row_key)
    assert (given_up.status, given_up.attempts) == (OutboxStatus.FAILED, 3)
    assert "SMTPRecipientsRefused" in given_up.last_error
    assert outbox.failed_count() == before + 1
    assert given_up.id not in notify._due_ids(10_000)  # never tried again
    assert given_up.id is not None and notify._claim(given_up.id, 60) is None


def test_an_unreachable_server_never_gives_a_message_up(row_key: str) -> None:
    for attempt in range(1, 6):
        assert fail_once(row_key, UNREACHABLE, max_attempts=2) is False
        assert (row(row_key).status, row(row_key).attempts) == (OutboxStatus.PENDING, attempt)
    # Once the server answers again and refuses it, the message has had its attempts.
    assert fail_once(row_key, REFUSED, max_attempts=2) is True


def test_the_stored_status_values_are_the_ones_rows_always_had() -> None:
    assert [s.value for s in OutboxStatus] == ["pending", "sending", "sent", "failed"]


def test_max_attempts_is_a_setting_of_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_SMTP_MAX_ATTEMPTS", "3")
    assert Settings().smtp_max_attempts == 3
    monkeypatch.setenv("RPRP_SMTP_MAX_ATTEMPTS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        Settings()
