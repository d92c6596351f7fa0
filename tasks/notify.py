"""Email through the outbox: queued with the state change, delivered later, exactly once.

`enqueue` writes an Outbox row in the caller's transaction, so an email exists if and only if the
change that owes it was committed, and a replay finds the row by its key instead of adding another.
`deliver_pending` claims rows one at a time, sends them over SMTP outside any DB transaction and
records the result. A sender that dies mid-send leaves a claim that expires and is taken again;
a resend then carries the same Message-ID, so receivers can drop the duplicate.

The outbox is the one retry mechanism for mail: each failed attempt pushes `next_attempt_at` back
(30 s, doubling, at most an hour) and counts in `attempts`. A message the server refuses is given
up (status failed) once it has had `RPRP_SMTP_MAX_ATTEMPTS` attempts, so PSD see it on the case
page and the sweep reports it; an unreachable server (or one refusing our login) only delays mail,
since the message is not at fault: it waits for the server, however long.

Confidentiality: templates see only the whitelisted context of their kind. The case and officer
are reduced to a few public attributes before rendering, so no template can reach the officer's
account, the discussion, or monitoring data, whatever object a caller passes in.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from enum import Enum
from functools import lru_cache
from typing import Any

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models import Outbox
from models.enums import OutboxStatus
from rprp.db import session_scope
from rprp.settings import PROJECT_ROOT, get_settings

log = logging.getLogger(__name__)

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "email"
DEFAULT_FORCE_NAME = "Police Professional Standards"

PENDING, SENDING, SENT, FAILED = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT,
                                  OutboxStatus.FAILED)
UNSENT = (PENDING, SENDING)  # still to be delivered: waiting, being sent, or backing off
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
CLAIM_SECONDS = 120.0
KEY_MAX = 200

# The context each kind may be given, besides `case`, `officer` and `force_name`. Anything else
# is refused: what a letter may say is decided here, not by whoever builds the context.
KIND_CONTEXT: dict[str, frozenset[str]] = {
    "officer_notice": frozenset({"deadline_text", "account_link", "reviewer_name"}),
    "account_reminder": frozenset({"deadline_text", "account_link", "working_days_left"}),
    "decision_needed": frozenset(
        {"recipient_name", "decision_title", "decision_link", "case_link", "due_text", "note"}
    ),
    "missed_account_deadline": frozenset({"deadline_text", "case_link"}),
    "escalation": frozenset({"outcome_label", "case_link", "decided_by"}),
    "referral_back": frozenset({"case_link", "decision_link", "referred_by"}),
    "report_filed": frozenset({"case_link", "review_due_text", "pdr_due_text"}),
    "officer_report_copy": frozenset(
        {"reviewer_name", "issue_summary", "officer_lessons", "force_lessons",
         "review_period_weeks", "agreed_on_text", "review_due_text", "pdr_due_text", "actions"}
    ),
    "complainant_progress": frozenset({"complainant_name", "stage_text", "next_update_text"}),
    "complainant_outcome": frozenset(
        {"complainant_name", "outcome_text", "learning_text", "review_rights",
         "review_body_label", "review_days"}
    ),
    "complainant_ending": frozenset(
        {"complainant_name", "ending_text", "earlier_letter_text", "review_rights",
         "review_body_label", "review_days"}
    ),
    "account_declined": frozenset({"declined_on_text", "case_link"}),
    "pdr_reminder": frozenset({"pdr_due_text", "agreed_on_text", "case_link"}),
    "overdue_reminder": frozenset({"what", "due_text", "decision_link", "case_link"}),
    "action_review_due": frozenset({"review_number", "due_text", "decision_link", "case_link"}),
    "case_closed": frozenset({"outcome_label", "case_link"}),
    "discussion_invitation": frozenset(
        {"reviewer_name", "meeting_text", "duration_minutes", "format_label", "place",
         "replaces_text"}),
    "discussion_cancelled": frozenset(
        {"reviewer_name", "meeting_text", "duration_minutes", "format_label", "place"}),
    "discussion_reminder": frozenset(
        {"recipient_name", "case_link", "reviewer_name", "meeting_text", "duration_minutes",
         "format_label", "place"}),
}
# What each email is, as PSD read it on the case page (never its subject or body).
KIND_TITLES: dict[str, str] = {
    "officer_notice": "Notice to give an account",
    "account_reminder": "Account deadline reminder",
    "decision_needed": "Decision needed",
    "missed_account_deadline": "Account deadline missed",
    "escalation": "Escalation",
    "referral_back": "Referral back to the appropriate authority",
    "report_filed": "Report filed",
    "officer_report_copy": "Copy of the report",
    "complainant_progress": "Progress letter",
    "complainant_outcome": "Outcome letter",
    "complainant_ending": "Letter that the review has ended",
    "account_declined": "Account declined",
    "pdr_reminder": "PDR discussion reminder",
    "overdue_reminder": "Overdue step reminder",
    "action_review_due": "Action-plan review due",
    "case_closed": "Case closed",
    "discussion_invitation": "Discussion invitation",
    "discussion_cancelled": "Discussion cancelled",
    "discussion_reminder": "Discussion reminder",
}
# Letters to the public never name the officer.
COMPLAINANT_KINDS = frozenset({"complainant_progress", "complainant_outcome",
                               "complainant_ending"})
# Letters to the officer need the officer; staff emails show the officer when there is one.
OFFICER_KINDS = frozenset({"officer_notice", "account_reminder", "officer_report_copy",
                           "discussion_invitation", "discussion_cancelled",
                           "discussion_reminder"})
COMMON_CONTEXT = frozenset({"case", "officer", "force_name"})
# Filled in from the settings for every email, so everyone is told how to reach PSD.
CONTACT_CONTEXT = ("psd_email", "psd_phone")

CASE_FIELDS = ("reference", "rprp_reason", "allegation_category", "public_summary")
OFFICER_FIELDS = ("name", "rank", "collar_number")
ACTION_FIELDS = ("type_label", "description", "owner", "due_text")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Attachment:
    """A file sent with an email, e.g. a calendar invitation: stored with the outbox row."""

    filename: str
    content_type: str  # "text/calendar; method=REQUEST": main type/subtype, then parameters
    body: str


@dataclass(frozen=True)
class DeliveryResult:
    sent: int
    failed_attempts: int
    still_pending: int
    given_up: int = 0  # failed for good in this run, after the last attempt


@dataclass(frozen=True)
class CaseView:
    """The only case facts an email may show."""

    reference: str
    rprp_reason: str
    allegation_category: str
    public_summary: str


@dataclass(frozen=True)
class OfficerView:
    """The only officer facts an email may show: never protected characteristics."""

    name: str
    rank: str
    collar_number: str


def label(value: Any) -> str:
    """`chief_inspector` -> `Chief Inspector`: enum values as people read them."""
    raw = value.value if isinstance(value, Enum) else str(value)
    return " ".join(word.capitalize() for word in raw.replace("-", "_").split("_") if word)


def paragraphs(value: Any, style: str = "margin:0 0 16px 0;") -> Markup:
    """Free text into escaped HTML paragraphs, keeping the writer's line breaks."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(value).replace("\r\n", "\n"))]
    return Markup("").join(
        Markup('<p style="{}">{}</p>').format(style, Markup("<br>").join(
            escape(line) for line in block.split("\n")))
        for block in blocks if block
    )


@lru_cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False,
                                     default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["label"] = label
    env.filters["paragraphs"] = paragraphs
    return env


def _pick(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _case_view(case: Any) -> CaseView:
    return CaseView(**{name: str(_pick(case, name)) for name in CASE_FIELDS})


def _officer_view(officer: Any) -> OfficerView | None:
    if officer is None:
        return None
    rank = _pick(officer, "rank")
    return OfficerView(name=str(_pick(officer, "name")),
                       rank=rank.value if isinstance(rank, Enum) else str(rank),
                       collar_number=str(_pick(officer, "collar_number")))


def _safe_context(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Check the context against the kind's whitelist and reduce records to their views."""
    if kind not in KIND_CONTEXT:
        raise ValueError(f"unknown email kind {kind!r}")
    allowed = KIND_CONTEXT[kind]
    unexpected = set(context) - allowed - COMMON_CONTEXT
    if unexpected:
        raise ValueError(f"{kind}: context keys not allowed in an email: {sorted(unexpected)}")
    missing = (allowed | {"case"}) - set(context)
    if missing:
        raise ValueError(f"{kind}: missing context keys: {sorted(missing)}")
    safe = {key: context[key] for key in allowed}
    safe["case"] = _case_view(context["case"])
    safe["force_name"] = str(context.get("force_name") or DEFAULT_FORCE_NAME)
    settings = get_settings()
    safe["psd_email"], safe["psd_phone"] = settings.psd_contact, settings.psd_contact_phone
    if kind not in COMPLAINANT_KINDS:
        safe["officer"] = _officer_view(context.get("officer"))
        if kind in OFFICER_KINDS and safe["officer"] is None:
            raise ValueError(f"{kind}: an email to the officer needs the officer")
    if kind == "officer_report_copy":
        safe["actions"] = [{name: str(_pick(a, name)) for name in ACTION_FIELDS}
                           for a in safe["actions"]]
    return safe


def render_email(kind: str, context: dict[str, Any]) -> RenderedEmail:
    """Render `<kind>.txt` (its `subject` block is the subject line) and `<kind>.html`."""
    safe = _safe_context(kind, context)
    env = _environment()
    text_template = env.get_template(f"{kind}.txt")
    subject_parts = text_template.blocks["subject"](text_template.new_context(safe))
    subject = " ".join("".join(subject_parts).split())
    text = re.sub(r"\n{3,}", "\n\n", text_template.render(safe)).strip() + "\n"
    html = env.get_template(f"{kind}.html").render({**safe, "subject": subject})
    return RenderedEmail(subject=subject, text=text, html=html)


def _storable_key(key: str) -> str:
    """Keys longer than the column keep their head and gain a digest, so they stay unique."""
    if len(key) <= KEY_MAX:
        return key
    return f"{key[:KEY_MAX - 41]}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _key_exists(session: Session, key: str) -> bool:
    if any(isinstance(o, Outbox) and o.key == key for o in session.new):
        return True
    return session.exec(select(Outbox.id).where(Outbox.key == key)).first() is not None


def enqueue(session: Session, *, key: str, kind: str, recipient: str, context: dict[str, Any],
            case_id: int | None = None, attachment: Attachment | None = None) -> bool:
    """Queue one email in the caller's transaction; False if its key was queued before.

    The caller commits: the email then exists exactly when the change that owes it does.
    """
    key = _storable_key(key)
    if _key_exists(session, key):
        return False
    context.setdefault("force_name", DEFAULT_FORCE_NAME)
    email = render_email(kind, context)
    now = _now()
    row = Outbox(key=key, case_id=case_id, kind=kind, recipient=recipient,
                 subject=email.subject[:300], body_text=email.text, body_html=email.html,
                 status=PENDING, attempts=0, next_attempt_at=now, created_at=now)
    if attachment is not None:
        row.attachment_filename = attachment.filename
        row.attachment_type = attachment.content_type
        row.attachment_body = attachment.body
    try:
        # A savepoint, so a concurrent writer of the same key costs only this row.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        if _key_exists(session, key):
            return False
        raise
    return True


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
    """30 s, 60 s, 120 s ... capped at an hour: an outage delays mail, it never drops it."""
    delay: timedelta = min(RETRY_BASE * (2 ** min(attempts_before, 20)), RETRY_MAX)
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


def pending_count() -> int:
    """Emails still to be delivered, whether waiting, being sent or backing off."""
    with session_scope() as session:
        return int(session.exec(
            select(func.count()).select_from(Outbox).where(col(Outbox.status).in_(UNSENT))
        ).one())


def failed_count() -> int:
    """Emails given up after their last attempt: PSD must reach these people another way."""
    with session_scope() as session:
        return int(session.exec(
            select(func.count()).select_from(Outbox).where(col(Outbox.status) == FAILED)
        ).one())

