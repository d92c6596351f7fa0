"""People who sign in to the portal, their server-side sessions and failed sign-ins.

Officers are not users: their emailed link and a one-time code are enough.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.case import utc_now


class PortalUser(SQLModel, table=True):
    """A staff member: `username` is what they sign in with (their email unless told otherwise);
    `roles` is a comma-separated list of portal.auth role names."""

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=254)
    email: str = Field(default="", index=True, max_length=254)
    display_name: str = Field(default="", max_length=200)
    roles: str = Field(default="", max_length=200)
    password_hash: str | None = Field(default=None, max_length=200)
    disabled: bool = False
    oidc_issuer: str | None = Field(default=None, max_length=500)
    oidc_subject: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    last_sign_in_at: datetime | None = None

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.roles.split(",") if r.strip())


class PortalSession(SQLModel, table=True):
    """A browser session: the cookie holds a random id whose SHA-256 is `id_hash`; deleting the
    row ends the session at once."""

    id: int | None = Field(default=None, primary_key=True)
    id_hash: str = Field(index=True, unique=True, max_length=64)
    user_id: int | None = Field(default=None, foreign_key="portaluser.id", index=True)
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime = Field(index=True)


class SignInFailure(SQLModel, table=True):
    """One failed sign-in, counted against an account (`account:<name>`) and an address
    (`address:<ip>`) to throttle guessing."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, max_length=300)
    at: datetime = Field(default_factory=utc_now, index=True)


class AccountCode(SQLModel, table=True):
    """A one-time code emailed to the officer: their account is taken only with it, so a link
    seen by someone else is not enough to give an account in their name."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="rprp_case.id", index=True)
    notice_round: int
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime
    used_at: datetime | None = None
    failed_attempts: int = 0
