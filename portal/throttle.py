"""Sign-in throttling, per account and per client address, on the form and the API alike.

A failure is a row; while an account (or an address) has had too many failures within the
lockout window, its sign-ins are refused before the password is even checked, so a right
password after a run of wrong ones does not get in either. Numbers are force policy (settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, delete, func, select

from infra.db import session_scope
from infra.settings import get_settings
from models import SignInFailure, as_utc, utc_now


@dataclass(frozen=True)
class Throttled(Exception):
    """Too many failed sign-ins; `retry_after` seconds until the next try is taken."""

    retry_after: int

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))

    @property
    def message(self) -> str:
        minutes = self.minutes
        return f"Too many attempts: try again in {minutes} minute{'s' if minutes != 1 else ''}"


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    settings = get_settings()
    keys = [(f"address:{address or 'unknown'}", settings.signin_max_failures_per_address)]
    if username.strip():
        keys.insert(0, (f"account:{username.strip().lower()}",
                        settings.signin_max_failures_per_account))
    return keys


def check(username: str, address: str, now: datetime | None = None) -> None:
    """Raise Throttled if this account or this address is locked out now."""
    now = now or utc_now()
    window = timedelta(minutes=get_settings().signin_lockout_minutes)
    waits = []
    with session_scope() as session:
        for key, limit in _keys(username, address):
            recent = select(SignInFailure.at).where(SignInFailure.key == key,
                                                    SignInFailure.at > now - window)
            count = session.exec(select(func.count()).select_from(recent.subquery())).one()
            if count >= limit:
                # Locked until enough of the failures age out of the window.
                times = sorted(as_utc(t) for t in session.exec(recent))
                until = times[count - limit] + window
                waits.append(max(1, math.ceil((until - now).total_seconds())))
    if waits:
        raise Throttled(max(waits))


def record_failure(username: str, address: str, now: datetime | None = None) -> None:
    now = now or utc_now()
    with session_scope() as session:
        for key, _ in _keys(username, address):
            session.add(SignInFailure(key=key, at=now))
        window = timedelta(minutes=get_settings().signin_lockout_minutes)
        session.exec(delete(SignInFailure).where(col(SignInFailure.at) < now - window))


def record_success(username: str) -> None:
    """A right password clears the account's count (not the address's)."""
    with session_scope() as session:
        session.exec(delete(SignInFailure).where(
            col(SignInFailure.key) == f"account:{username.strip().lower()}"))
