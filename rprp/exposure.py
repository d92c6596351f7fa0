"""Refuse to listen beyond loopback with the development defaults still in place.

On 127.0.0.1 a demo password, a key the product generated itself and a Prefect API without
credentials are conveniences; on any other address each is an open door. `rprp portal` and
`rprp up` call `refusals(host)` and stop, naming the setting to change.
"""

from __future__ import annotations

import ipaddress
import os

from infra.settings import get_settings


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusals(host: str, demo_users: bool = False) -> list[str]:
    """Why this product must not listen on `host` as configured (empty when it may);
    `demo_users`: it is about to create the demo sign-ins."""
    if is_loopback(host):
        return []
    from infra.db import create_schema
    from portal.users import default_password_users

    settings = get_settings()
    reasons = []
    if demo_users:
        reasons.append("the demo sign-ins have published passwords: run with --no-demo-users")
    if settings.portal_users.strip():
        reasons.append("RPRP_PORTAL_USERS puts passwords in the environment: unset it and "
                       "manage sign-ins with `rprp users`")
    create_schema()
    for name in default_password_users():
        reasons.append(f"user {name} still has its published password: "
                       f"`rprp users reset-password {name}` or `rprp users disable {name}`")
    if settings.generated_secret:
        reasons.append("the signing key is one the product generated: set RPRP_SECRET_KEY "
                       "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    if not (os.environ.get("PREFECT_SERVER_API_AUTH_STRING")
            or os.environ.get("PREFECT_API_AUTH_STRING")):
        reasons.append("the Prefect API is open: set PREFECT_SERVER_API_AUTH_STRING "
                       "(user:password) so only the product's own services can use it")
    return reasons


def refusal_message(command: str, host: str, demo_users: bool = False) -> str | None:
    reasons = refusals(host, demo_users)
    if not reasons:
        return None
    lines = [f"{command}: refusing to listen on {host} (not loopback) because:"]
    lines += [f"  - {reason}" for reason in reasons]
    return "\n".join(lines)
