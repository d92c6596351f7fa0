"""The officer's one-time code: the account link alone is not enough to give an account.

The account page asks for a code that is emailed to the officer's own address when they ask
for it; only someone who reads that mailbox can give the account. Codes are kept as keyed
hashes, work for RPRP_ACCOUNT_CODE_MINUTES, once, and stop after RPRP_ACCOUNT_CODE_MAX_ATTEMPTS
wrong tries. The code goes straight to SMTP (not the outbox table): it is a passing credential,
not part of the case record.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

import aiosmtplib
from sqlmodel import select

from infra.db import session_scope
from infra.settings import get_settings
from models import AccountCode, as_utc, utc_now
from tasks.records import audit, lock_case

log = logging.getLogger("rprp.portal.account_code")
DIGITS = 8
RESEND_SECONDS = 60
VIA = "through the emailed link, with a one-time code sent to the officer's email"


class CodeRefused(Exception):
    """The code cannot open the form; the message is for the officer."""


class TooSoon(Exception):
    """A code was sent less than a minute ago."""


def _digest(case_id: int, notice_round: int, code: str) -> str:
    key = get_settings().signing_key.encode()
    return hmac.new(key, f"rprp-account-code:{case_id}:{notice_round}:{code}".encode(),
                    hashlib.sha256).hexdigest()


def issue(case_id: int, notice_round: int) -> str:
    """A new code for this case's notice round (earlier ones stop working); the code itself."""
    now = utc_now()
    code = "".join(secrets.choice("0123456789") for _ in range(DIGITS))
    with session_scope() as session:
        case = lock_case(session, case_id)
        latest = session.exec(select(AccountCode).where(
            AccountCode.case_id == case_id, AccountCode.notice_round == notice_round)
            .order_by(AccountCode.id.desc())).first()  # type: ignore[union-attr]
        if latest is not None and as_utc(latest.created_at) > now - timedelta(
                seconds=RESEND_SECONDS):
            raise TooSoon
        for old in session.exec(select(AccountCode).where(
                AccountCode.case_id == case_id, AccountCode.notice_round == notice_round,
                AccountCode.used_at.is_(None))):  # type: ignore[union-attr]
            old.used_at = now  # superseded
            session.add(old)
        session.add(AccountCode(
            case_id=case_id, notice_round=notice_round,
            code_hash=_digest(case_id, notice_round, code), created_at=now,
            expires_at=now + timedelta(minutes=get_settings().account_code_minutes)))
        audit(session, case, actor="officer", action="account_code_sent",
              detail="a one-time code for the account page, to the officer's email")
    return code


@dataclass(frozen=True)
class Accepted:
    code_id: int


def check(case_id: int, notice_round: int, code: str) -> Accepted:
    """The live code this is, or CodeRefused (a wrong try counts, and is audited)."""
    code = "".join(code.split())
    now = utc_now()
    wrong = False
    with session_scope() as session:
        row = session.exec(select(AccountCode).where(
            AccountCode.case_id == case_id, AccountCode.notice_round == notice_round,
            AccountCode.used_at.is_(None))  # type: ignore[union-attr]
            .order_by(AccountCode.id.desc())).first()  # type: ignore[union-attr]
        if row is None:
            raise CodeRefused("Ask for a code first: use “Email me a code” below")
        if as_utc(row.expires_at) <= now:
            raise CodeRefused("The code has expired: ask for a new one")
        if row.failed_attempts >= get_settings().account_code_max_attempts:
            raise CodeRefused("Too many wrong codes: ask for a new one")
        if not code:
            raise CodeRefused("Enter the code we emailed you")
        if not hmac.compare_digest(row.code_hash, _digest(case_id, notice_round, code)):
            # Counted and audited (committed here), then refused below.
            wrong = True
            row.failed_attempts += 1
            session.add(row)
            audit(session, lock_case(session, case_id), actor="unknown",
                  action="account_code_refused",
                  detail=f"a wrong code on the account page (try {row.failed_attempts})")
        assert row.id is not None
        accepted = Accepted(row.id)
    if wrong:
        raise CodeRefused("The code is not right: check the email we sent you, or ask for a "
                          "new code")
    return accepted


def use(accepted: Accepted) -> None:
    """The code has let an account in: it works no more."""
    with session_scope() as session:
        row = session.get(AccountCode, accepted.code_id)
        if row is not None and row.used_at is None:
            row.used_at = utc_now()
            session.add(row)


def masked(email: str) -> str:
    """'d••••@force.example': enough for the officer to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'•' * 4}@{domain}" if domain else "your email address"


async def send(recipient: str, reference: str, code: str) -> bool:
    """Email the code now; False if the mail server cannot be reached (nothing is kept)."""
    settings = get_settings()
    if not settings.smtp_host:
        log.error("account code not sent: RPRP_SMTP_HOST is not set")
        return False
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = recipient
    message["Subject"] = f"{reference}: your code to give your account"
    message.set_content(
        f"Your code is {code}\n\n"
        f"Enter it on the account page for {reference} to send your account. It works once, "
        f"for {settings.account_code_minutes} minutes.\n\n"
        "If you did not ask for a code, someone else may have your account link: tell "
        "Professional Standards.\n")
    try:
        await aiosmtplib.send(message, hostname=settings.smtp_host, port=settings.smtp_port,
                              start_tls=settings.smtp_starttls,
                              username=settings.smtp_username or None,
                              password=settings.smtp_password or None,
                              timeout=settings.smtp_timeout_seconds)
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.error("account code not sent: %s", type(exc).__name__)
        return False
    return True
