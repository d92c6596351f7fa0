"""Sign-ins a test layer relies on, made exactly as it names them.

The test session shares one case DB across its layers, and `RPRP_PORTAL_USERS` only creates
users that do not exist yet (so an operator's `rprp users disable` sticks). A layer that names a
user another layer already created (the e2e and integration layers both sign in as the sample
case's reviewer) would otherwise find the other layer's password; this sets each named user's
password and roles to the ones given, and clears their sessions and throttle counts.
"""

from __future__ import annotations

from sqlmodel import delete, func, select

from infra.db import session_scope
from models import PortalSession, PortalUser, SignInFailure
from portal import users


def use_sign_ins(entries: str) -> None:
    """`entries` in RPRP_PORTAL_USERS form ("name:password:role[+role],...")."""
    for entry in filter(None, (e.strip() for e in entries.split(","))):
        name, rest = entry.split(":", 1)
        password, roles = rest.rsplit(":", 1)
        with session_scope() as session:
            user = session.exec(select(PortalUser).where(
                func.lower(PortalUser.username) == name.lower())).first()
            if user is not None:
                session.exec(delete(PortalSession).where(  # type: ignore[call-overload]
                    PortalSession.user_id == user.id))
                session.delete(user)
            session.exec(delete(SignInFailure).where(  # type: ignore[call-overload]
                SignInFailure.key == f"account:{name.lower()}"))
        users.add_user(name, roles=roles.split("+"), password=password, check_strength=False)
