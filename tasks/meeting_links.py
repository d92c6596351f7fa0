"""Signed single-meeting links for invitees outside the force, like the officer's account link.

A token names one invitee of one meeting; the portal opens that meeting's page only.
"""

from __future__ import annotations

from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer

from infra.settings import get_settings
from tasks.links import InvalidToken

INVITEE_SALT = "rprp-rpm-invitee-link-v1"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().signing_key, salt=INVITEE_SALT)


def invitee_token(meeting_id: int, invitee_id: int, expires_at: datetime) -> str:
    """Deterministic per invitee and expiry, so an invitation and its reminder share a link."""
    return _serializer().dumps({"m": meeting_id, "i": invitee_id,
                                "e": int(expires_at.timestamp())})


def read_invitee_token(token: str, now: datetime) -> tuple[int, int]:
    """The (meeting id, invitee id) a token opens, or InvalidToken."""
    try:
        payload = _serializer().loads(token)
    except BadSignature as exc:
        raise InvalidToken("This link is not valid.") from exc
    if not isinstance(payload, dict) or not {"m", "i", "e"} <= payload.keys():
        raise InvalidToken("This link is not valid.")
    if now.timestamp() > payload["e"]:
        raise InvalidToken("This link has expired.")
    return int(payload["m"]), int(payload["i"])


def invitee_link(token: str) -> str:
    return f"{get_settings().public_portal_url}/meetings/invitation/{token}"


def crc_summary_link(meeting_id: int) -> str:
    """The Case Review Committee's page: the summary of learning (Appendix 3), no names."""
    return f"{get_settings().public_portal_url}/meetings/{meeting_id}/summary"


def meeting_page_link(meeting_id: int) -> str:
    """The facilitator's and business unit's page (signed-in portal users)."""
    return f"{get_settings().public_portal_url}/meetings/{meeting_id}"
