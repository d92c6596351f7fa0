"""The outbox page: what the local SMTP sink received, newest first (development and demos)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from portal.auth import PageUser
from portal.web import render
from rprp.mailsink import StoredMessage, read_messages
from rprp.settings import get_settings

router = APIRouter(include_in_schema=False)
MESSAGE_ID = re.compile(r"^[0-9]{1,12}$")

# The email's HTML is shown in a sandboxed frame: no scripts, no requests, no navigation.
EMAIL_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
             "frame-ancestors 'self'")


def mail_dir(request: Request) -> Path:
    configured = getattr(request.app.state, "mail_dir", None)
    return Path(configured) if configured else get_settings().resolved_data_dir / "mail"


def _messages(request: Request) -> list[StoredMessage]:
    return list(reversed(read_messages(mail_dir(request))))


def _message(request: Request, message_id: str) -> StoredMessage:
    if MESSAGE_ID.match(message_id):
        for message in read_messages(mail_dir(request)):
            if message.file.stem == message_id:
                return message
    raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such message.")


@router.get("/outbox")
async def outbox(request: Request, user: PageUser) -> Response:
    return render(request, "outbox.html",
                  {"messages": _messages(request), "directory": mail_dir(request)})


@router.get("/outbox/{message_id}")
async def outbox_message(request: Request, message_id: str, user: PageUser) -> Response:
    return render(request, "outbox_message.html", {"message": _message(request, message_id)})


@router.get("/outbox/{message_id}/html")
async def outbox_message_html(request: Request, message_id: str, user: PageUser) -> Response:
    message = _message(request, message_id)
    return HTMLResponse(message.html or "<p>This message has no HTML part.</p>", headers={
        "Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store"})
