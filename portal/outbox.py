"""The outbox page: what the local SMTP sink received, newest first (development and demos).

For PSD and operators only. Officers' account links are redacted: the account is the officer's
alone to give, from their own mailbox.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from infra.mailsink import StoredMessage, read_messages
from infra.settings import get_settings
from portal.auth import OPERATOR, PageUser, User
from portal.web import render

router = APIRouter(include_in_schema=False)
MESSAGE_ID = re.compile(r"^[0-9]{1,12}$")
ACCOUNT_LINK = re.compile(r"(?:https?://[^\s\"'<>/]+)?/account/[^\s\"'<>]+")
REDACTED = "[account link: only in the officer's own email]"

# The email's HTML is shown in a sandboxed frame: no scripts, no requests, no navigation.
EMAIL_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
             "frame-ancestors 'self'")


def mail_dir(request: Request) -> Path:
    configured = getattr(request.app.state, "mail_dir", None)
    return Path(configured) if configured else get_settings().resolved_data_dir / "mail"


def redact(message: StoredMessage) -> StoredMessage:
    """The message with every officer's account link replaced by a note."""
    return dataclasses.replace(message, text=ACCOUNT_LINK.sub(REDACTED, message.text),
                               html=ACCOUNT_LINK.sub(REDACTED, message.html))


def _allowed(user: User) -> None:
    if not (user.is_psd or user.has(OPERATOR)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only Professional Standards and operators can read the outbox.")


def _messages(request: Request) -> list[StoredMessage]:
    return [redact(m) for m in reversed(read_messages(mail_dir(request)))]


def _message(request: Request, message_id: str) -> StoredMessage:
    if MESSAGE_ID.match(message_id):
        for message in read_messages(mail_dir(request)):
            if message.file.stem == message_id:
                return redact(message)
    raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such message.")


@router.get("/outbox")
async def outbox(request: Request, user: PageUser) -> Response:
    _allowed(user)
    return render(request, "outbox.html",
                  {"messages": _messages(request), "directory": mail_dir(request)})


@router.get("/outbox/{message_id}")
async def outbox_message(request: Request, message_id: str, user: PageUser) -> Response:
    _allowed(user)
    return render(request, "outbox_message.html", {"message": _message(request, message_id)})


@router.get("/outbox/{message_id}/html")
async def outbox_message_html(request: Request, message_id: str, user: PageUser) -> Response:
    _allowed(user)
    message = _message(request, message_id)
    return HTMLResponse(message.html or "<p>This message has no HTML part.</p>", headers={
        "Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store"})
