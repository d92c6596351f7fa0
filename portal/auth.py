"""Who is using the portal, and what they may see.

Staff sign in with a users-table password (Argon2, `rprp users`) or single sign-on (portal.sso);
officers never do (their link and a one-time code are enough). Browser sessions are server-side
(portal.sessions); the JSON API takes a real user's credentials with HTTP Basic. Both are
throttled (portal.throttle). PSD see every case; reviewers the cases they review or reviewed;
analysts and operators no case at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import func, select

from infra.db import session_scope
from infra.settings import get_settings
from models import ActionReview, Case, Decision, PortalUser, Report
from portal import throttle, users
from portal.sessions import rotate_session
from portal.web import check_csrf, render

PSD = "psd"
PSD_DECISION_MAKER = "psd-decision-maker"
REVIEWER = "reviewer"
ANALYST = "analyst"
OPERATOR = "operator"
RPM_FACILITATOR = "rpm-facilitator"  # reflective practice meetings: facilitator, business unit
CRC_CHAIR = "crc-chair"  # the partnership's Case Review Committee: decides on a meeting's learning
ROLES = {
    PSD: "Professional Standards",
    PSD_DECISION_MAKER: "PSD decision-maker (appropriate authority)",
    REVIEWER: "Reviewer",
    ANALYST: "Analyst",
    OPERATOR: "Operator",
    RPM_FACILITATOR: "Reflective practice meeting facilitator or business unit",
    CRC_CHAIR: "Case Review Committee (chair or member)",
}


@dataclass(frozen=True)
class User:
    """A signed-in person: who they are (the email the case record uses) and what they may do."""

    name: str
    email: str
    roles: frozenset[str]
    user_id: int | None = field(default=None, compare=False)
    display_name: str = field(default="", compare=False)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_psd(self) -> bool:
        return PSD in self.roles or PSD_DECISION_MAKER in self.roles

    @property
    def role_label(self) -> str:
        return ", ".join(ROLES[r] for r in sorted(self.roles) if r in ROLES)


def from_record(record: PortalUser) -> User:
    """A users-table row as a User: a PSD user listed in RPRP_PSD_DECISION_MAKERS is also a
    decision-maker for the appropriate authority."""
    roles = set(record.role_set)
    if PSD in roles and record.email.lower() in get_settings().decision_makers:
        roles.add(PSD_DECISION_MAKER)
    return User(record.username, record.email, frozenset(roles), user_id=record.id,
                display_name=record.display_name)


def client_address(request: Request) -> str:
    """The client's address (uvicorn takes X-Forwarded-For only from RPRP_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def authenticate(name: str, password: str, address: str, remember: bool = False) -> User | None:
    """Check a password, throttled per account and per address; raises throttle.Throttled.

    With `remember` (HTTP Basic on the API, where a client sends the same credentials on every
    request), credentials checked in the last RPRP_API_CREDENTIAL_SECONDS are taken again
    without the password hash, which is deliberately slow (argon2: tens of milliseconds of CPU a
    request, most of an intake request's time). See `_VerifiedCredentials`."""
    throttle.check(name, address)
    if remember:
        known = _verified.user(name, password)
        if known is not None:
            return from_record(known)
    record = users.verify(name, password)
    if record is None:
        throttle.record_failure(name, address)
        return None
    throttle.record_success(name)
    if remember:
        _verified.remember(name, password, record)
    return from_record(record)


class _VerifiedCredentials:
    """Credentials this process has checked lately. Kept as an HMAC under a key made at start
    (never the password, and nothing a memory dump could reverse), with the user's id and the
    password hash they matched; taken again only while that user is enabled and has that same
    hash, so `rprp users disable` or a new password ends it at the next request."""

    LIMIT = 1024

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[int, str, float]] = {}

    def _fingerprint(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()

    def remember(self, name: str, password: str, record: PortalUser) -> None:
        seconds = get_settings().api_credential_seconds
        if seconds <= 0 or record.id is None or not record.password_hash:
            return
        if len(self._entries) >= self.LIMIT:
            self._entries.clear()
        self._entries[self._fingerprint(name, password)] = (
            record.id, record.password_hash, time.monotonic() + seconds)

    def user(self, name: str, password: str) -> PortalUser | None:
        key = self._fingerprint(name, password)
        entry = self._entries.get(key)
        if entry is None:
            return None
        user_id, password_hash, until = entry
        record = users.get_user(user_id) if time.monotonic() < until else None
        if record is None or record.disabled or record.password_hash != password_hash:
            self._entries.pop(key, None)
            return None
        return record

    def forget_all(self) -> None:
        self._entries.clear()


_verified = _VerifiedCredentials()


# -- who sees which case ----------------------------------------------------------------------

def reviews(user: User, case: Case) -> bool:
    """The case's reviewer now (by email)."""
    return bool(user.email) and case.reviewer_email.strip().lower() == user.email.lower()


def reviewed_case_ids(user: User) -> set[int]:
    """Cases this person took a reviewer's step on (a decision, the report, an action review):
    they keep reading them."""
    if not user.email:
        return set()
    email = user.email.lower()
    with session_scope() as session:
        ids = set(session.exec(select(Decision.case_id).where(
            func.lower(Decision.decided_by) == email)))
        ids |= set(session.exec(select(Report.case_id).where(
            func.lower(Report.submitted_by) == email)))
        ids |= set(session.exec(select(ActionReview.case_id).where(
            func.lower(ActionReview.reviewed_by) == email)))
    return ids


def may_see_case(user: User, case: Case) -> bool:
    if user.is_psd:
        return True
    if not user.has(REVIEWER):
        return False
    return reviews(user, case) or (case.id is not None and case.id in reviewed_case_ids(user))


def visible_case_ids(user: User) -> set[int] | None:
    """The cases this person may open: None means all (PSD)."""
    if user.is_psd:
        return None
    if not user.has(REVIEWER) or not user.email:
        return set()
    with session_scope() as session:
        ids = set(session.exec(select(Case.id).where(
            func.lower(Case.reviewer_email) == user.email.lower())))
    return {i for i in ids if i is not None} | reviewed_case_ids(user)


def require_case(user: User, case_id: int) -> None:
    """404, not 403, for a case this person may not see: its existence is not theirs to know."""
    with session_scope() as session:
        case = session.get(Case, case_id)
    if case is not None and may_see_case(user, case):
        return
    raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no case with that number.")


# -- browser pages ---------------------------------------------------------------------------

class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def current_user(request: Request) -> User | None:
    """The signed-in person, read from their server-side session and the users table on every
    request, so a disabled user is out at once."""
    if "rprp.user" in request.scope:
        known: User | None = request.scope["rprp.user"]
        return known
    user = None
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if isinstance(user_id, int):
        record = users.get_user(user_id)
        if record is not None and not record.disabled:
            user = from_record(record)
        else:
            request.session.clear()
    request.scope["rprp.user"] = user
    return user


def sign_in_session(request: Request, record: PortalUser) -> None:
    """Start a fresh session (new id, new CSRF token) for this user."""
    request.session.clear()
    request.session["user_id"] = record.id
    rotate_session(request)
    request.scope.pop("rprp.user", None)


def require_user(request: Request) -> User:
    user = current_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return user


def require_psd(user: Annotated[User, Depends(require_user)]) -> User:
    if not user.is_psd:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only Professional Standards can do this.")
    return user


def require_reports(user: Annotated[User, Depends(require_user)]) -> User:
    """The reports pages (trends, disproportionality): figures about groups, for PSD and
    analysts."""
    if not (user.is_psd or user.has(ANALYST)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only Professional Standards and analysts can see the reports.")
    return user


PageUser = Annotated[User, Depends(require_user)]
PsdUser = Annotated[User, Depends(require_psd)]
ReportsUser = Annotated[User, Depends(require_reports)]


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/cases"


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/')}",
                            status_code=status.HTTP_303_SEE_OTHER)


def _login_page(request: Request, next_path: str, errors: list[tuple[str, str]],
                username: str = "", status_code: int = 200) -> Response:
    settings = get_settings()
    return render(request, "login.html", {
        "next": next_path, "errors": errors, "username": username,
        "sso_label": settings.oidc_label if settings.oidc_issuer else "",
    }, status_code=status_code)


router = APIRouter()


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str | None = None) -> Response:
    if current_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return _login_page(request, _safe_next(next), [])


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    name = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_path = _safe_next(str(form.get("next", "")))
    errors = []
    if not name:
        errors.append(("username", "Enter your user name"))
    if not password:
        errors.append(("password", "Enter your password"))
    if errors:
        return _login_page(request, next_path, errors, name, status.HTTP_401_UNAUTHORIZED)
    try:
        user = authenticate(name, password, client_address(request))
    except throttle.Throttled as exc:
        return _login_page(request, next_path, [("username", exc.message)], name,
                           status.HTTP_429_TOO_MANY_REQUESTS)
    if user is None:
        return _login_page(request, next_path,
                           [("username", "The user name or password is not right")], name,
                           status.HTTP_401_UNAUTHORIZED)
    record = users.get_user(user.user_id or 0)
    assert record is not None
    sign_in_session(request, record)
    return RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    request.session.clear()  # the server-side session row goes: the cookie opens nothing now
    return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)


# -- JSON API --------------------------------------------------------------------------------

_basic = HTTPBasic(auto_error=False, description="A portal user's own sign-in name and password")
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="rprp"'}


def api_user(request: Request,
             credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> User:
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in with HTTP Basic",
                            headers=_CHALLENGE)
    try:
        user = authenticate(credentials.username, credentials.password, client_address(request),
                            remember=True)
    except throttle.Throttled as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, exc.message,
                            headers={"Retry-After": str(exc.retry_after)}) from exc
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in with HTTP Basic",
                            headers=_CHALLENGE)
    return user


def api_psd(user: Annotated[User, Depends(api_user)]) -> User:
    if not user.is_psd:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only Professional Standards can do this")
    return user


ApiUser = Annotated[User, Depends(api_user)]
ApiPsd = Annotated[User, Depends(api_psd)]
