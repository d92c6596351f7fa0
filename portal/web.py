"""What every page shares: the Jinja2 environment, CSRF tokens, flash messages, formatting."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request, status
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import Response

from models.labels import audit_action_label, deadline_label, label
from tasks.discussion_invitation import meeting_text

HERE = Path(__file__).resolve().parent
LONDON = ZoneInfo("Europe/London")

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def long_date(value: datetime | date | None) -> str:
    """'Friday 13 June 2025' in Europe/London, the way letters write dates."""
    if value is None:
        return ""
    day = _aware(value).astimezone(LONDON).date() if isinstance(value, datetime) else value
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(value: datetime | date | None) -> str:
    if value is None:
        return ""
    day = _aware(value).astimezone(LONDON).date() if isinstance(value, datetime) else value
    return f"{day.day} {day:%b %Y}"


def london_time(value: datetime | None) -> str:
    """'13 Jun 2025, 4:05pm' in Europe/London."""
    if value is None:
        return ""
    local = _aware(value).astimezone(LONDON)
    hour = local.hour % 12 or 12
    return f"{local.day} {local:%b %Y}, {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _aware(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


templates.env.filters.update(long_date=long_date, short_date=short_date,
                             london_time=london_time, iso_utc=iso_utc, label=label,
                             meeting_text=meeting_text, deadline_label=deadline_label,
                             audit_action=audit_action_label)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: FormData) -> None:
    """Every form a signed-in person posts carries the session's CSRF token."""
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not (isinstance(sent, str) and isinstance(expected, str)
            and hmac.compare_digest(sent, expected)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "This form has expired. Go back, reload the page and try again.")


def flash(request: Request, message: str, kind: str = "success") -> None:
    # Reassigned, not appended: the session is saved only when a key is set.
    request.session["flash"] = [*request.session.get("flash", []),
                                {"message": message, "kind": kind}]


def take_flashes(request: Request) -> list[dict[str, str]]:
    return request.session.pop("flash", []) if "session" in request.scope else []


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200, headers: dict[str, str] | None = None,
           public: bool = False) -> Response:
    """A page; `public` pages (the officer's) neither read nor set the session cookie."""
    from portal.auth import current_user

    session = "session" in request.scope and not public
    base: dict[str, Any] = {
        "user": current_user(request) if session else None,
        "csrf_token": csrf_token(request) if session else "",
        "flashes": take_flashes(request) if session else [],
        "path": request.url.path,
        "errors": [],
    }
    base.update(context or {})
    return templates.TemplateResponse(request, template, base, status_code=status_code,
                                      headers=headers)
