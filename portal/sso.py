"""Single sign-on with OpenID Connect (e.g. Microsoft Entra ID), by Authlib's Starlette client.

On when RPRP_OIDC_ISSUER is set. Roles come from the provider's groups claim through
RPRP_OIDC_GROUP_ROLES ("psd-group=psd,reviewers=reviewer") on every sign-in, so a change of
group at the provider changes the person's roles next time; someone in no mapped group is
refused. The user is created on first sign-in (no password: they can only use SSO) and found
again by issuer and subject; a disabled user stays out.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import func, select

from infra.db import session_scope
from infra.settings import get_settings
from models import PortalUser, utc_now
from portal.auth import _safe_next, sign_in_session
from portal.users import EMAIL, ROLE_NAMES
from portal.web import render

log = logging.getLogger("rprp.portal.sso")
router = APIRouter(include_in_schema=False)
CLIENT = "rprp"


class SsoRefused(Exception):
    """The provider vouched for someone RPRP will not let in; the message says why."""


def oauth_client() -> Any:
    """The Authlib client for the configured provider (discovery from its metadata URL)."""
    settings = get_settings()
    oauth = OAuth()
    oauth.register(
        CLIENT,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        server_metadata_url=settings.oidc_issuer.rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth.create_client(CLIENT)


def roles_for(groups: Any) -> set[str]:
    mapping = get_settings().group_roles
    if isinstance(groups, str):
        groups = [groups]
    roles: set[str] = set()
    for group in groups if isinstance(groups, list) else []:
        roles |= mapping.get(str(group), set())
    return roles & set(ROLE_NAMES)


def upsert_user(claims: dict[str, Any]) -> PortalUser:
    """The user for these ID-token claims, created or brought up to date (roles, name, email)."""
    settings = get_settings()
    issuer = str(claims.get("iss") or settings.oidc_issuer).rstrip("/")
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("The identity provider did not say who you are.")
    email = str(claims.get("email") or claims.get("preferred_username") or "").strip().lower()
    if not EMAIL.match(email):
        email = ""
    roles = roles_for(claims.get(settings.oidc_groups_claim, []))
    if not roles:
        raise SsoRefused("Your account has no role in RPRP: ask Professional Standards to add "
                         "you to one of its groups.")
    name = str(claims.get("name") or email or subject)
    with session_scope() as session:
        user = session.exec(select(PortalUser).where(
            PortalUser.oidc_issuer == issuer, PortalUser.oidc_subject == subject)).first()
        if user is None and email:
            # Someone added with `rprp users` before SSO was on: the force's provider vouches
            # for their email, so they become the same user.
            user = session.exec(select(PortalUser).where(
                func.lower(PortalUser.username) == email,
                PortalUser.oidc_subject.is_(None))).first()  # type: ignore[union-attr]
        if user is None:
            user = PortalUser(username=email or f"{subject}@{issuer}", password_hash=None)
        if user.disabled:
            raise SsoRefused("Your RPRP account is disabled: ask Professional Standards.")
        user.oidc_issuer, user.oidc_subject = issuer, subject
        user.email = email or user.email
        user.display_name = name
        user.roles = ",".join(sorted(roles))
        user.updated_at = user.last_sign_in_at = utc_now()
        session.add(user)
        session.flush()
        session.refresh(user)
        return user


def _failed(request: Request, message: str, status_code: int) -> Response:
    settings = get_settings()
    return render(request, "login.html", {
        "next": "/cases", "errors": [("sso", message)], "username": "",
        "sso_label": settings.oidc_label}, status_code=status_code)


@router.get("/login/sso")
async def sso_start(request: Request, next: str | None = None) -> Response:
    if not get_settings().oidc_issuer:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    request.session["sso_next"] = _safe_next(next)
    redirect_uri = f"{get_settings().public_portal_url}/login/sso/callback"
    try:
        redirect: Response = await oauth_client().authorize_redirect(request, redirect_uri)
        return redirect
    except Exception as exc:  # noqa: BLE001  (the provider's metadata could not be read)
        log.error("single sign-on: cannot reach the identity provider: %s", type(exc).__name__)
        return _failed(request, "The identity provider cannot be reached. Try again in a few "
                                "minutes.", status.HTTP_502_BAD_GATEWAY)


@router.get("/login/sso/callback")
async def sso_callback(request: Request) -> Response:
    if not get_settings().oidc_issuer:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    client = oauth_client()
    try:
        token = await client.authorize_access_token(request)
        claims = dict(token.get("userinfo") or {})
        if get_settings().oidc_groups_claim not in claims:
            claims = {**dict(await client.userinfo(token=token)), **claims}
        user = upsert_user(claims)
    except OAuthError as exc:
        log.warning("single sign-on refused by the provider: %s", exc.error)
        return _failed(request, "Single sign-on did not complete. Try again.",
                       status.HTTP_401_UNAUTHORIZED)
    except SsoRefused as exc:
        return _failed(request, str(exc), status.HTTP_403_FORBIDDEN)
    next_path = _safe_next(request.session.get("sso_next"))
    sign_in_session(request, user)
    return RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)
