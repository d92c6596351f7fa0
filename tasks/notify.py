"""Email delivery: the outbox's rows sent over SMTP, exactly once.

`deliver_pending` claims rows one at a time, sends them over SMTP outside any DB transaction and
records the result. A sender that dies mid-send leaves a claim that expires and is taken again;
a resend then carries the same Message-ID, so receivers can drop the duplicate. Queuing an email
is `tasks.outbox`'s job.

The outbox is the one retry mechanism for mail: each failed attempt pushes `next_attempt_at` back
(30 s, doubling, at most an hour) and counts in `attempts`. A message the server refuses is given
up (status failed) once it has had `RPRP_SMTP_MAX_ATTEMPTS` attempts, so PSD see it on the case
page and the sweep reports it; an unreachable server (or one refusing our login) only delays mail,
since the message is not at fault: it waits for the server, however long.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
from sqlalchemy import update
from sqlmodel import col, select

from infra.db import session_scope
from infra.settings import get_settings
from models import Outbox
from tasks.outbox import FAILED, PENDING, SENDING, SENT, UNSENT, Attachment, pending_count

log = logging.getLogger(__name__)

RETRY_MAX = timedelta(hours=1)
CLAIM_SECONDS = 120.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryResult:
    sent: int
    failed_attempts: int
    still_pending: int
    given_up: int = 0  # failed for good in this run, after the last attempt


def message_id(key: str, sender: str | None = None) -> str:
    """The same Message-ID for every attempt at one outbox row, so a resend can be de-duplicated."""
    domain = (sender or get_settings().smtp_sender).rpartition("@")[2] or "rprp.invalid"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<rprp.{digest}@{domain}>"


def build_message(row: _Claimed, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(row.key, sender)
    message["X-RPRP-Outbox-Key"] = row.key
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.text)
    message.add_alternative(row.html, subtype="html")
    if row.attachment is not None:
        main_type, *params = [p.strip() for p in row.attachment.content_type.split(";")]
        subtype = main_type.partition("/")[2]
        message.add_attachment(row.attachment.body, subtype=subtype,
                               filename=row.attachment.filename,
                               params=dict(p.split("=", 1) for p in params if "=" in p))
    return message


@dataclass(frozen=True)
class _Claimed:
    id: int
    key: str
    recipient: str
    subject: str
    text: str
    html: str
    attempts: int
    claim_until: datetime
    attachment: Attachment | None = None


def _due_ids(limit: int) -> list[int]:
    now = _now()
    with session_scope() as session:
        rows = session.exec(
            select(Outbox.id)
            .where(col(Outbox.status).in_(UNSENT), Outbox.next_attempt_at <= now)
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
            .limit(limit)
        ).all()
    return [r for r in rows if r is not None]


def _claim(row_id: int, claim_seconds: float) -> _Claimed | None:
    """Take one due row for this sender; None if another sender has it or it is done.

    Expired 'sending' claims are due again: that is how a crashed sender's rows come back.
    """
    now = _now()
    claim_until = now + timedelta(seconds=claim_seconds)
    with session_scope() as session:
        result = session.exec(
            update(Outbox)
            .where(col(Outbox.id) == row_id, col(Outbox.status).in_(UNSENT),
                   col(Outbox.next_attempt_at) <= now)
            .values(status=SENDING, next_attempt_at=claim_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        row = session.get(Outbox, row_id)
        assert row is not None and row.id is not None
        attachment = (Attachment(row.attachment_filename, row.attachment_type,
                                 row.attachment_body)
                      if row.attachment_body is not None else None)
        return _Claimed(id=row.id, key=row.key, recipient=row.recipient, subject=row.subject,
                        text=row.body_text, html=row.body_html, attempts=row.attempts,
                        claim_until=claim_until, attachment=attachment)


def _mark_sent(claimed: _Claimed) -> None:
    with session_scope() as session:
        session.exec(
            update(Outbox)
            .where(col(Outbox.id) == claimed.id, col(Outbox.status) != SENT)
            .values(status=SENT, sent_at=_now())
            .execution_options(synchronize_session=False)
        )


def retry_delay(attempts_before: int) -> timedelta:
    """30 s, 60 s, 120 s ... (RPRP_SMTP_RETRY_SECONDS doubling) capped at an hour: an outage
    delays mail, it never drops it."""
    base = timedelta(seconds=get_settings().smtp_retry_seconds)
    delay: timedelta = min(base * (2 ** min(attempts_before, 20)), RETRY_MAX)
    return delay


def _mark_failed(claimed: _Claimed, error: str, give_up: bool) -> bool:
    """Back to pending with backoff, or failed for good when `give_up`; nothing if our claim
    expired and another sender took the row. True if the row was given up.

    A failed row keeps in `next_attempt_at` the time it was given up: it is never tried again.
    """
    now = _now()
    values: dict[str, Any] = {"attempts": claimed.attempts + 1, "last_error": error[:1000]}
    if give_up:
        values |= {"status": FAILED, "next_attempt_at": now}
    else:
        values |= {"status": PENDING, "next_attempt_at": now + retry_delay(claimed.attempts)}
    with session_scope() as session:
        result = session.exec(
            update(Outbox)
            .where(col(Outbox.id) == claimed.id, col(Outbox.status) == SENDING,
                   col(Outbox.next_attempt_at) == claimed.claim_until)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return give_up and result.rowcount == 1


def _short_error(exc: BaseException) -> str:
    """The error class and the server's reply, never the message content."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = f"{exc.code} {exc.message}"
    else:
        detail = str(exc)
    return f"{type(exc).__name__}: {' '.join(detail.split())}"[:300]


CONNECTION_ERRORS = (OSError, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                     aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPAuthenticationError,
                     aiosmtplib.SMTPHeloError, aiosmtplib.SMTPNotSupported)


def gives_up(attempts_before: int, exc: BaseException, max_attempts: int) -> bool:
    """Whether this failure is the message's last: the server reached it and refused it, and it
    has now had `max_attempts` attempts. An unreachable server never gives a message up."""
    return attempts_before + 1 >= max_attempts and not isinstance(exc, CONNECTION_ERRORS)


class _Connection:
    """One SMTP session per delivery run, opened when the first row is claimed."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.client: aiosmtplib.SMTP | None = None

    async def send(self, message: EmailMessage) -> None:
        if self.client is None:
            s = self.settings
            client = aiosmtplib.SMTP(
                hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls,
                username=s.smtp_username or None, password=s.smtp_password or None,
                timeout=s.smtp_timeout_seconds,
            )
            await client.connect()
            self.client = client
        await self.client.send_message(message)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            await client.quit()
        except Exception:  # the mail is already accepted or recorded as failed
            client.close()


async def deliver_pending(limit: int = 200) -> DeliveryResult:
    """Send what is due, each row claimed first, never holding a DB transaction over SMTP."""
    settings = get_settings()
    if not settings.smtp_host:
        return DeliveryResult(sent=0, failed_attempts=0, still_pending=pending_count())
    claim_seconds = max(CLAIM_SECONDS, 6 * settings.smtp_timeout_seconds)
    sent = failed = given_up = 0
    connection = _Connection()
    try:
        for row_id in _due_ids(limit):
            claimed = _claim(row_id, claim_seconds)
            if claimed is None:
                continue
            try:
                await connection.send(build_message(claimed, settings.smtp_sender))
            except Exception as exc:  # unsent: back to pending, or failed after the last attempt
                failed += 1
                last = gives_up(claimed.attempts, exc, settings.smtp_max_attempts)
                if _mark_failed(claimed, _short_error(exc), give_up=last):
                    given_up += 1
                log.warning("Outbox %s not sent (attempt %s of %s%s): %s", claimed.key,
                            claimed.attempts + 1, settings.smtp_max_attempts,
                            ", given up" if last else "", _short_error(exc))
                await connection.close()
                if isinstance(exc, CONNECTION_ERRORS):
                    break  # the server is unreachable: the rest wait for the next run
                continue
            _mark_sent(claimed)
            sent += 1
    finally:
        await connection.close()
    return DeliveryResult(sent=sent, failed_attempts=failed, still_pending=pending_count(),
                          given_up=given_up)
