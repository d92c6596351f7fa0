"""Who is using the portal: PSD and reviewers sign in; officers never do (their link is enough).

Browser pages use a signed session cookie; the JSON API uses HTTP Basic with the same
`RPRP_PORTAL_USERS` credentials. Only PSD may refer, record that an officer left, or cancel.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from portal.web import check_csrf, render
from rprp.settings import get_settings

PSD = "psd"
PSD_DECISION_MAKER = "psd-decision-maker"
REVIEWER = "reviewer"
ANALYST = "analyst"
OPERATOR = "operator"
ROLES = {
    PSD: "Professional Standards",
    PSD_DECISION_MAKER: "PSD decision-maker (appropriate authority)",
    REVIEWER: "Reviewer",
    ANALYST: "Analyst",
    OPERATOR: "Operator",
}


@dataclass(frozen=True)
class User:
    """A signed-in person: who they are (the email the case record uses) and what they may do."""

    name: str
    email: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_psd(self) -> bool:
        return PSD in self.roles or PSD_DECISION_MAKER in self.roles

    @property
    def role_label(self) -> str:
        return ", ".join(ROLES[r] for r in sorted(self.roles) if r in ROLES)


def _user(name: str, role: str) -> User:
    """A settings account as a User: a PSD login listed in RPRP_PSD_DECISION_MAKERS is also a
    decision-maker for the appropriate authority."""
    email = name if "@" in name else ""
    roles = {role}
    if role == PSD and email.lower() in get_settings().decision_makers:
        roles.add(PSD_DECISION_MAKER)
    return User(name, email, frozenset(roles))


def _accounts() -> dict[str, tuple[str, str]]:
    """name -> (password, role) from "user:password:role,..." (a password may contain ':')."""
    accounts: dict[str, tuple[str, str]] = {}
    for entry in get_settings().portal_users.split(","):
        entry = entry.strip()
        if entry.count(":") < 2:
            continue
        name, rest = entry.split(":", 1)
        password, role = rest.rsplit(":", 1)
        role = role.strip().lower()
        if name.strip() and password and role in ROLES:
            accounts[name.strip()] = (password, role)
    return accounts


def authenticate(name: str, password: str) -> User | None:
    account = _accounts().get(name.strip())
    # Compare even for an unknown name, so timing does not tell which names exist.
    expected = account[0] if account else secrets.token_urlsafe(16)
    if hmac.compare_digest(password.encode(), expected.encode()) and account:
        return _user(name.strip(), account[1])
    return None


def session_secret() -> str:
    """A key for session cookies derived from the signing key, so neither stands in for the
    other (account links use the same key with their own salt)."""
    key = get_settings().signing_key.encode()
    return hmac.new(key, b"rprp-portal-session-v1", hashlib.sha256).hexdigest()


# -- browser pages ---------------------------------------------------------------------------

class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def current_user(request: Request) -> User | None:
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    account = _accounts().get(name)  # a user removed from the settings is signed out at once
    return _user(name, account[1]) if account else None


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


PageUser = Annotated[User, Depends(require_user)]
PsdUser = Annotated[User, Depends(require_psd)]


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/cases"


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_path, safe='/')}",
                            status_code=status.HTTP_303_SEE_OTHER)


router = APIRouter()


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str | None = None) -> Response:
    if current_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return render(request, "login.html", {"next": _safe_next(next), "errors": []})


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
    user = authenticate(name, password) if not errors else None
    if user is None:
        if not errors:
            errors.append(("username", "The user name or password is not right"))
        return render(request, "login.html",
                      {"next": next_path, "errors": errors, "username": name},
                      status_code=status.HTTP_401_UNAUTHORIZED)
    request.session.clear()  # a fresh session (and CSRF token) on every sign-in
    request.session["user"] = user.name
    return RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    request.session.clear()
    return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)


# -- JSON API --------------------------------------------------------------------------------

_basic = HTTPBasic(auto_error=False, description="A portal user from RPRP_PORTAL_USERS")


def api_user(credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> User:
    user = authenticate(credentials.username, credentials.password) if credentials else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Sign in with HTTP Basic",
                            headers={"WWW-Authenticate": 'Basic realm="rprp"'})
    return user


def api_psd(user: Annotated[User, Depends(api_user)]) -> User:
    if not user.is_psd:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only Professional Standards can do this")
    return user


ApiUser = Annotated[User, Depends(api_user)]
ApiPsd = Annotated[User, Depends(api_psd)]
