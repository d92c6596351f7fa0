"""Server-side sessions: the cookie holds only a random id; what the session holds (who is signed
in, the CSRF token, flash messages) is a row in the case DB. Deleting the row (sign-out,
disabling the user, a new password) ends the session at once: the old cookie opens nothing.

`request.session` works as with Starlette's SessionMiddleware; `rotate_session(request)` gives
a fresh id (on sign-in, against session fixation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

from sqlmodel import Session, col, delete, select
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.db import session_scope
from infra.settings import get_settings
from models import PortalSession, utc_now

COOKIE = "rprp_session"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_session(request: Request) -> None:
    """Issue a new session id when the response goes out; the old one stops working."""
    request.scope["rprp.session_rotate"] = True


def end_all_sessions(user_id: int) -> None:
    with session_scope() as session:
        session.exec(delete(PortalSession).where(col(PortalSession.user_id) == user_id))


def cookie_secure(scope: Scope) -> bool:
    """Secure when told so, or (auto) when this request came over HTTPS (X-Forwarded-Proto from
    a trusted proxy is already in the scope's scheme) or the public URL is HTTPS."""
    setting = get_settings().cookie_secure.strip().lower()
    if setting in {"true", "1", "yes"}:
        return True
    if setting in {"false", "0", "no"}:
        return False
    return scope.get("scheme") == "https" or get_settings().public_portal_url.startswith("https:")


class ServerSessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _load(self, token: str | None) -> tuple[int | None, dict[str, Any]]:
        if not token:
            return None, {}
        with session_scope() as session:
            row = session.exec(select(PortalSession).where(
                PortalSession.id_hash == _hash(token))).first()
            if row is None:
                return None, {}
            if row.expires_at <= utc_now():
                session.delete(row)
                return None, {}
            try:
                data = json.loads(row.data)
            except ValueError:
                data = {}
            return row.id, data if isinstance(data, dict) else {}

    def _save(self, row_id: int | None, data: dict[str, Any], rotate: bool) -> str | None:
        """Store the session; returns a new cookie value when one must be set, "" to clear."""
        user_id = data.get("user_id") if isinstance(data.get("user_id"), int) else None
        with session_scope() as session:
            row = session.get(PortalSession, row_id) if row_id is not None else None
            if not data:
                if row is not None:
                    session.delete(row)
                return "" if row_id is not None else None
            if row is not None and rotate:
                session.delete(row)
                row = None
            if row is None:
                token = secrets.token_urlsafe(32)
                expires = utc_now() + timedelta(hours=get_settings().session_hours)
                session.add(PortalSession(id_hash=_hash(token), user_id=user_id,
                                          data=json.dumps(data), expires_at=expires))
                self._sweep(session)
                return token
            row.data = json.dumps(data)
            row.user_id = user_id
            session.add(row)
            return None

    @staticmethod
    def _sweep(session: Session) -> None:
        session.exec(delete(PortalSession).where(col(PortalSession.expires_at) <= utc_now()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        row_id, data = self._load(connection.cookies.get(COOKIE))
        scope["session"] = data
        before = json.dumps(data, sort_keys=True)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = scope["session"]
                rotate = bool(scope.get("rprp.session_rotate"))
                if rotate or json.dumps(current, sort_keys=True) != before:
                    token = self._save(row_id, current, rotate)
                    if token is not None:
                        headers = MutableHeaders(scope=message)
                        headers.append("Set-Cookie", self._cookie(token, scope))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _cookie(self, token: str, scope: Scope) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE] = token
        morsel = cookie[COOKIE]
        morsel["path"] = "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"
        if cookie_secure(scope):
            morsel["secure"] = True
        morsel["max-age"] = get_settings().session_hours * 3600 if token else 0
        return morsel.OutputString()
