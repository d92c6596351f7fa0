"""The users table: adding, disabling and re-keying people, checking passwords (Argon2).

`rprp users` and the portal's sign-in both go through here. Disabling someone or changing their
password ends every session they have at once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, delete, func, select

from infra.db import session_scope
from infra.settings import get_settings
from models import PortalSession, PortalUser, utc_now

ROLE_NAMES = ("psd", "psd-decision-maker", "reviewer", "analyst", "operator", "rpm-facilitator",
              "crc-chair")
MIN_PASSWORD = 12
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()
# Verified against when the name is unknown, so timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A request about users that cannot be done; the message says why in one line."""


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    roles: tuple[str, ...]
    password: str


# Demo sign-ins `rprp up` and `rprp demo` create (and print). Their passwords are public, so the
# product refuses to listen beyond loopback while any of them can still sign in.
DEMO_USERS = (
    DemoUser("psd@force.example", "Demo PSD decision-maker", ("psd", "psd-decision-maker"),
             "demo-psd-password"),
    DemoUser("sgt.demo.reviewer@force.example", "Sgt Demo Reviewer", ("reviewer",),
             "demo-reviewer-password"),
    DemoUser("analyst@force.example", "Demo Analyst", ("analyst",), "demo-analyst-password"),
    DemoUser("operator@force.example", "Demo Operator", ("operator",), "demo-operator-password"),
    DemoUser("facilitator@partnership.example", "Demo RPM facilitator", ("rpm-facilitator",),
             "demo-facilitator-password"),
    DemoUser("crc-chair@partnership.example", "Demo Case Review Committee chair", ("crc-chair",),
             "demo-crc-chair-password"),
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def normalise_roles(roles: list[str] | tuple[str, ...] | set[str]) -> str:
    """Known role names, sorted and comma-joined; an unknown one is an error."""
    cleaned = {r.strip().lower() for r in roles if r.strip()}
    unknown = cleaned - set(ROLE_NAMES)
    if unknown:
        raise UserError(f"unknown role {sorted(unknown)[0]!r}: use one of "
                        f"{', '.join(ROLE_NAMES)}")
    if not cleaned:
        raise UserError(f"give at least one role: {', '.join(ROLE_NAMES)}")
    return ",".join(sorted(cleaned))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be {MIN_PASSWORD} characters or more")


def _find(session: Session, username: str) -> PortalUser | None:
    return session.exec(select(PortalUser).where(
        func.lower(PortalUser.username) == username.strip().lower())).first()


def _end_sessions(session: Session, user_id: int | None) -> int:
    result = session.exec(delete(PortalSession).where(col(PortalSession.user_id) == user_id))
    return int(result.rowcount or 0)


def add_user(username: str, *, roles: list[str] | tuple[str, ...], password: str | None,
             email: str = "", display_name: str = "", check_strength: bool = True) -> PortalUser:
    """A new user; `username` is an email unless `email` is given separately."""
    username = username.strip()
    if not username:
        raise UserError("give the user's sign-in name (usually their email)")
    email = (email or (username if "@" in username else "")).strip()
    if email and not EMAIL.match(email):
        raise UserError(f"{email!r} is not an email address")
    role_text = normalise_roles(roles)
    if password is not None and check_strength:
        check_password(password)
    with session_scope() as session:
        if _find(session, username) is not None:
            raise UserError(f"there is already a user {username!r}")
        user = PortalUser(username=username, email=email.lower(),
                          display_name=display_name.strip() or username, roles=role_text,
                          password_hash=hash_password(password) if password else None)
        session.add(user)
        session.flush()
        session.refresh(user)
        return user


def set_disabled(username: str, disabled: bool = True) -> int:
    """Disable (or enable) a user; returns how many sessions were ended."""
    with session_scope() as session:
        user = _find(session, username)
        if user is None:
            raise UserError(f"there is no user {username!r}")
        user.disabled = disabled
        user.updated_at = utc_now()
        session.add(user)
        return _end_sessions(session, user.id) if disabled else 0


def reset_password(username: str, password: str) -> int:
    """A new password; every session the user had ends. Returns how many."""
    check_password(password)
    with session_scope() as session:
        user = _find(session, username)
        if user is None:
            raise UserError(f"there is no user {username!r}")
        user.password_hash = hash_password(password)
        user.updated_at = utc_now()
        session.add(user)
        return _end_sessions(session, user.id)


def list_users() -> list[PortalUser]:
    with session_scope() as session:
        return list(session.exec(select(PortalUser).order_by(PortalUser.username)))


def get_user(user_id: int) -> PortalUser | None:
    with session_scope() as session:
        return session.get(PortalUser, user_id)


def verify(username: str, password: str) -> PortalUser | None:
    """The enabled user whose password this is, or None (the same work either way)."""
    with session_scope() as session:
        user = _find(session, username) if username.strip() else None
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled or not user.password_hash:
            return None
        if _hasher.check_needs_rehash(stored):
            user.password_hash = hash_password(password)
        user.last_sign_in_at = utc_now()
        session.add(user)
        return user


def _bootstrap_entries(text: str) -> list[tuple[str, str, list[str]]]:
    """RPRP_PORTAL_USERS as (name, password, roles): "user:password:role[+role]" (a password may
    contain ':')."""
    entries = []
    for entry in text.split(","):
        entry = entry.strip()
        if entry.count(":") < 2:
            continue
        name, rest = entry.split(":", 1)
        password, roles = rest.rsplit(":", 1)
        if name.strip() and password:
            entries.append((name.strip(), password, roles.split("+")))
    return entries


def bootstrap_users() -> list[str]:
    """Create the RPRP_PORTAL_USERS sign-ins that do not exist yet (never changes existing ones,
    so a user disabled with `rprp users` stays disabled). Returns the names created."""
    created = []
    for name, password, roles in _bootstrap_entries(get_settings().portal_users):
        with session_scope() as session:
            exists = _find(session, name) is not None
        if not exists:
            add_user(name, roles=roles, password=password, check_strength=False)
            created.append(name)
    return created


def ensure_demo_users() -> list[DemoUser]:
    """The demo sign-ins, created if missing (their passwords reset to the demo ones only when
    they are created)."""
    for demo in DEMO_USERS:
        with session_scope() as session:
            exists = _find(session, demo.username) is not None
        if not exists:
            add_user(demo.username, roles=demo.roles, password=demo.password,
                     display_name=demo.display_name)
    return list(DEMO_USERS)


def default_password_users() -> list[str]:
    """Enabled users who still sign in with a published password: a demo one or one from
    RPRP_PORTAL_USERS (which lives in the environment)."""
    published = {d.username.lower(): d.password for d in DEMO_USERS}
    for name, password, _ in _bootstrap_entries(get_settings().portal_users):
        published[name.lower()] = password
    found = []
    for user in list_users():
        known = published.get(user.username.lower())
        if known and not user.disabled and user.password_hash:
            try:
                _hasher.verify(user.password_hash, known)
            except (VerificationError, InvalidHashError):
                continue
            found.append(user.username)
    return found


def demo_sign_ins_text() -> list[str]:
    """Lines saying who to sign in as, for `rprp up` and `rprp demo` to print."""
    width = max(len(d.username) for d in DEMO_USERS)
    return ["Demo sign-ins (portal and Prefect UI; change or disable them with `rprp users` "
            "before anyone else can reach this machine):"] + [
        f"  {d.username:<{width}}  {d.password:<24} {', '.join(d.roles)}" for d in DEMO_USERS]
