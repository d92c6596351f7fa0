"""Links that go into emails: the officer's signed account link, case pages, Prefect UI runs."""

from __future__ import annotations

from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

from infra.settings import get_settings

ACCOUNT_SALT = "rprp-account-link-v1"


class InvalidToken(PermissionError):
    """Tampered, expired or for another case: the portal answers 403 and shows nothing."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().signing_key, salt=ACCOUNT_SALT)


def account_token(case_id: int, notice_round: int, expires_at: datetime) -> str:
    """Deterministic for one notice, so the notice and its reminders carry the same link."""
    return _serializer().dumps({"c": case_id, "r": notice_round, "e": int(expires_at.timestamp())})


def read_account_token(token: str, now: datetime | None = None) -> tuple[int, int]:
    """The (case id, notice round) a token opens, or InvalidToken."""
    try:
        payload = _serializer().loads(token)
    except BadSignature as exc:
        raise InvalidToken("This link is not valid.") from exc
    if not isinstance(payload, dict) or not {"c", "r", "e"} <= payload.keys():
        raise InvalidToken("This link is not valid.")
    now = now or datetime.now(UTC)
    if now.timestamp() > payload["e"]:
        raise InvalidToken("This link has expired.")
    return int(payload["c"]), int(payload["r"])


def account_link(token: str) -> str:
    return f"{get_settings().public_portal_url}/account/{token}"


def case_link(case_id: int) -> str:
    return f"{get_settings().public_portal_url}/cases/{case_id}"


def flow_run_link(flow_run_id: str | None) -> str:
    if not flow_run_id:
        return ""
    return f"{get_settings().public_prefect_ui_url}/runs/flow-run/{flow_run_id}"
