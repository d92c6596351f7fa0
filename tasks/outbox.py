"""The outbox: every email the process owes, written in the transaction of the change that owes it.

`enqueue` renders an email and writes its Outbox row in the caller's transaction, so an email
exists if and only if the change that owes it was committed, and a replay finds the row by its
key instead of adding another. Sending it is `tasks.notify`'s job: this module knows nothing of
SMTP, so the rules that queue letters can be tested with a database and nothing else.

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
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from infra.db import session_scope
from infra.settings import PROJECT_ROOT, get_settings
from models import Outbox
from models.enums import OutboxStatus

log = logging.getLogger(__name__)

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "email"
DEFAULT_FORCE_NAME = "Police Professional Standards"

PENDING, SENDING, SENT, FAILED = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT,
                                  OutboxStatus.FAILED)
UNSENT = (PENDING, SENDING)  # still to be delivered: waiting, being sent, or backing off
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
    # The register's reminder names the item, never the case, its officer or complainant.
    "learning_item_overdue": frozenset({"item_reference", "theme_text", "unit_text",
                                        "item_text", "target_text", "status_text"}),
    # The board's pack: counts and themes, and the link to the pack; never an item's text.
    "learning_board_pack": frozenset({"month_text", "pack_link", "no_cases", "cases_referred",
                                      "reports_filed", "median_text", "new_count",
                                      "closed_count", "overdue_count", "themes"}),
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
    "learning_item_overdue": "Learning item past its target",
    "learning_board_pack": "Monthly learning board pack",
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


def email_environment() -> Environment:
    """The one Jinja environment every email is rendered with (templates/email)."""
    return _environment()


def compile_templates() -> int:
    """Compile every email template now, into the shared environment's cache; returns how many.

    The worker's fork server does this once, so that a flow run forked from it does not spend
    tens of milliseconds compiling each template its step sends (Jinja still reloads a
    template whose file has changed since).
    """
    env = _environment()
    names = env.list_templates(extensions=["txt", "html", "ics"])
    for name in names:
        env.get_template(name)
    return len(names)


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
    if _key_exists(session, _storable_key(key)):
        return False
    context.setdefault("force_name", DEFAULT_FORCE_NAME)
    return enqueue_rendered(session, key=key, kind=kind, recipient=recipient,
                            email=render_email(kind, context), case_id=case_id,
                            attachment=attachment)


def enqueue_rendered(session: Session, *, key: str, kind: str, recipient: str,
                     email: RenderedEmail, case_id: int | None = None,
                     attachment: Attachment | None = None) -> bool:
    """Queue an email its own module rendered (e.g. a meeting's); False if its key was queued."""
    key = _storable_key(key)
    if _key_exists(session, key):
        return False
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

