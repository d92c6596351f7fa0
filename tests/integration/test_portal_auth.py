"""Sign-in you can trust, against the real portal and case DB: server-side sessions that end at
sign-out and when a user is disabled, throttling on the form and the API, and who sees which
case (a reviewer their own, PSD all, analysts none). Prefect is replaced by the recorder of
test_portal_api, as there."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from infra.db import session_scope
from models import AccountCode, AuditEvent, PortalSession, utc_now
from portal import account_code, actions, throttle, users
from portal.app import create_app
from tasks.casework import record_account
from tests.integration import test_portal_api as portal_api

# The portal fixtures of test_portal_api, shared (pytest finds fixtures by module attribute).
prefect = portal_api.prefect
app_client = portal_api.app_client
client = portal_api.client
psd = portal_api.psd
served_case = portal_api.served_case
PSD_AUTH, REVIEWER_AUTH = portal_api.PSD_AUTH, portal_api.REVIEWER_AUTH
csrf, refer, sign_in = portal_api.csrf, portal_api.refer, portal_api.sign_in

PASSWORD = "a-password-long-enough"


def new_user(*roles: str) -> tuple[str, str]:
    name = f"{roles[0]}.{uuid.uuid4().hex[:8]}@force.example"
    users.add_user(name, roles=list(roles), password=PASSWORD)
    return name, PASSWORD


def fresh(client: TestClient) -> TestClient:
    """Another browser: same app, its own cookies."""
    return TestClient(client.app)


def login(client: TestClient, name: str, password: str):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": csrf(page.text)}, follow_redirects=False)


# -- sessions -------------------------------------------------------------------------------------

def test_the_cookie_holds_only_a_random_id_and_sign_out_revokes_it(client: TestClient) -> None:
    response = login(client, *PSD_AUTH)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    old = client.cookies.get("rprp_session")
    assert old and "psd" not in old and len(old) >= 40
    page = client.get("/cases")
    assert page.status_code == 200
    client.post("/logout", data={"csrf_token": csrf(page.text)})

    thief = fresh(client)
    thief.cookies.set("rprp_session", old)
    refused = thief.get("/cases", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_signing_in_again_gives_a_new_session_id(client: TestClient) -> None:
    client.get("/login")
    before = client.cookies.get("rprp_session")
    assert login(client, *PSD_AUTH).status_code == 303
    after = client.cookies.get("rprp_session")
    assert before and after and before != after
    stale = fresh(client)
    stale.cookies.set("rprp_session", before)
    assert stale.get("/cases", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_when_served_over_https(client: TestClient) -> None:
    secure = TestClient(client.app, base_url="https://portal.force.example")
    page = secure.get("/login")
    assert "; Secure" in page.headers["set-cookie"]


def test_disabling_a_user_ends_their_session_at_once(client: TestClient) -> None:
    name, password = new_user("reviewer")
    assert login(client, name, password).status_code == 303
    assert client.get("/cases").status_code == 200
    assert users.set_disabled(name) == 1
    assert client.get("/cases", follow_redirects=False).status_code == 303
    assert login(fresh(client), name, password).status_code == 401
    assert client.get("/api/referrals/1", auth=(name, password)).status_code == 401
    with session_scope() as session:
        record = users._find(session, name)
        assert record is not None
        assert not session.exec(select(PortalSession).where(
            PortalSession.user_id == record.id)).all()


def test_a_new_password_ends_the_old_sessions(client: TestClient) -> None:
    name, password = new_user("reviewer")
    assert login(client, name, password).status_code == 303
    users.reset_password(name, "another-long-password")
    assert client.get("/cases", follow_redirects=False).status_code == 303
    assert login(fresh(client), name, password).status_code == 401
    assert login(fresh(client), name, "another-long-password").status_code == 303


# -- throttling -----------------------------------------------------------------------------------

def test_the_form_throttles_an_account_even_for_the_right_password(client: TestClient) -> None:
    name, password = new_user("psd")
    for _ in range(5):
        assert login(fresh(client), name, "wrong-password").status_code == 401
    response = login(fresh(client), name, password)
    assert response.status_code == 429
    assert "Too many attempts: try again in 15 minutes" in response.text
    assert fresh(client).get("/cases", follow_redirects=False).status_code == 303
    # Another account from the same address is not locked by this one's failures.
    assert login(fresh(client), *PSD_AUTH).status_code == 303
    # Once the failures are older than the lockout window, the right password works again.
    throttle.check(name, "testclient", now=utc_now() + timedelta(minutes=16))


def test_the_form_throttles_an_address_across_accounts(client: TestClient) -> None:
    for n in range(20):
        assert login(fresh(client), f"guess{n}@force.example", "wrong").status_code == 401
    response = login(fresh(client), *PSD_AUTH)
    assert response.status_code == 429
    assert "Too many attempts: try again in" in response.text


def test_the_api_throttles_with_429_and_retry_after(client: TestClient) -> None:
    name, password = new_user("psd")
    for _ in range(5):
        assert client.get("/api/referrals/1", auth=(name, "wrong")).status_code == 401
    response = client.get("/api/referrals/1", auth=(name, password))
    assert response.status_code == 429
    assert response.json()["detail"] == "Too many attempts: try again in 15 minutes"
    assert 14 * 60 < int(response.headers["Retry-After"]) <= 15 * 60


def test_the_api_takes_each_users_own_credentials(client: TestClient, prefect) -> None:
    case_id = refer(client)["case_id"]
    name, password = new_user("psd")
    assert client.get(f"/api/referrals/{case_id}", auth=(name, password)).status_code == 200
    assert client.get(f"/api/referrals/{case_id}", auth=(name, "not-it")).status_code == 401


# -- who sees which case --------------------------------------------------------------------------

def test_a_reviewer_sees_only_their_own_cases(client: TestClient, prefect, served_case) -> None:
    record_account(served_case, 1, "My account of the stop.")
    with session_scope() as session:
        from models import Account

        account_id = session.exec(select(Account.id).where(
            Account.case_id == served_case)).first()
    own = sign_in(fresh(client), REVIEWER_AUTH)
    assert own.get(f"/cases/{served_case}").status_code == 200
    assert f"/cases/{served_case}" in own.get("/cases").text
    assert "My account of the stop." in own.get(
        f"/cases/{served_case}/accounts/{account_id}").text

    other = fresh(client)
    assert login(other, *new_user("reviewer")).status_code == 303
    assert f"/cases/{served_case}" not in other.get("/cases").text
    assert other.get(f"/cases/{served_case}").status_code == 404
    assert other.get(f"/cases/{served_case}/accounts/{account_id}").status_code == 404
    with session_scope() as session:
        readers = list(session.exec(select(AuditEvent.actor).where(
            AuditEvent.case_id == served_case, AuditEvent.action == "account_viewed")))
    assert readers == [REVIEWER_AUTH[0]]  # the reader by name; the refused one read nothing

    name, password = new_user("reviewer")
    assert client.get(f"/api/referrals/{served_case}", auth=(name, password)).status_code == 404
    assert client.get(f"/api/referrals/{served_case}", auth=REVIEWER_AUTH).status_code == 200


@pytest.mark.parametrize("role", ["analyst", "operator"])
def test_analysts_and_operators_see_no_case(client: TestClient, prefect, served_case,
                                            role: str) -> None:
    assert login(client, *new_user(role)).status_code == 303
    page = client.get("/cases")
    assert page.status_code == 200 and f"/cases/{served_case}" not in page.text
    assert client.get(f"/cases/{served_case}").status_code == 404


def test_psd_see_every_case(psd: TestClient, prefect, served_case) -> None:
    assert psd.get(f"/cases/{served_case}").status_code == 200


def test_only_psd_and_operators_read_the_outbox(client: TestClient) -> None:
    reviewer = sign_in(fresh(client), REVIEWER_AUTH)
    assert reviewer.get("/outbox").status_code == 403
    operator = fresh(client)
    assert login(operator, *new_user("operator")).status_code == 303
    assert operator.get("/outbox").status_code == 200


def test_the_app_starts_without_bootstrap_users(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from infra.settings import reset_settings

    monkeypatch.setenv("RPRP_PORTAL_USERS", "")
    reset_settings()
    with TestClient(create_app()) as plain:
        assert plain.get("/login").status_code == 200
    monkeypatch.undo()
    reset_settings()


# -- the officer alone gives the account ----------------------------------------------------------

@pytest.fixture
def officer_mail(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A real SMTP server on loopback that the portal sends the one-time code to."""
    from infra.mailsink import MailSink
    from infra.settings import reset_settings

    with MailSink(tmp_path / "officer-mail", port=0) as sink:
        monkeypatch.setenv("RPRP_SMTP_HOST", sink.host)
        monkeypatch.setenv("RPRP_SMTP_PORT", str(sink.port))
        reset_settings()
        yield sink
    monkeypatch.undo()
    reset_settings()


def emailed_code(sink, officer_email: str) -> str:  # type: ignore[no-untyped-def]
    [message] = [m for m in sink.messages() if officer_email in m.recipients]
    found = re.search(r"Your code is (\d{8})", message.text)
    assert found, message.text
    return found.group(1)


def audit_of(case_id: int) -> list[tuple[str, str, str]]:
    with session_scope() as session:
        return [(e.actor, e.action, e.detail) for e in session.exec(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id))]


def test_the_account_needs_the_code_emailed_to_the_officer(client: TestClient, prefect,
                                                           served_case, officer_mail) -> None:
    from tests.integration.test_portal_api import accounts_of, link_token

    token = link_token(served_case)
    officer = actions.case_file(served_case).officer  # type: ignore[union-attr]
    page = client.get(f"/account/{token}")
    assert "Email me a code" in page.text and "rprp_session" not in page.headers.get(
        "set-cookie", "")
    # Without asking for a code, the account is not taken (the text is kept).
    refused = client.post(f"/account/{token}", data={"account": "My account of the stop."})
    assert refused.status_code == 422 and "Ask for a code first" in refused.text
    assert "My account of the stop." in refused.text

    sent = client.post(f"/account/{token}/code", follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith("?code=sent#code")
    page = client.get(sent.headers["location"])
    assert f"We have emailed a code to {officer.email[0]}••••@force.example" in page.text
    code = emailed_code(officer_mail, officer.email)

    wrong = str((int(code) + 1) % 10**8).zfill(8)
    refused = client.post(f"/account/{token}", data={"account": "My account of the stop.",
                                                     "code": wrong})
    assert refused.status_code == 422 and "The code is not right" in refused.text
    assert "My account of the stop." in refused.text and accounts_of(served_case) == []

    taken = client.post(f"/account/{token}", data={"account": "My account of the stop.",
                                                   "code": code}, follow_redirects=False)
    assert taken.status_code == 303 and taken.headers["location"].endswith("/received")
    assert len(accounts_of(served_case)) == 1
    trail = audit_of(served_case)
    assert ("officer", "account_code_sent",
            "a one-time code for the account page, to the officer's email") in trail
    assert ("unknown", "account_code_refused",
            "a wrong code on the account page (try 1)") in trail
    [received] = [detail for _, action, detail in trail if action == "account_received"]
    assert received == f"version 1, {account_code.VIA}"

    # The code worked once.
    with pytest.raises(account_code.CodeRefused, match="Ask for a code first"):
        account_code.check(served_case, 1, code)


def test_wrong_codes_run_out_and_codes_expire(client: TestClient, prefect, served_case) -> None:
    from tests.integration.test_portal_api import accounts_of, link_token

    token = link_token(served_case)
    code = account_code.issue(served_case, 1)
    assert client.post(f"/account/{token}/code", follow_redirects=False).headers[
        "location"].endswith("?code=wait#code")  # one a minute
    for _ in range(5):
        client.post(f"/account/{token}", data={"account": "An account.", "code": "00000000"})
    worn = client.post(f"/account/{token}", data={"account": "An account.", "code": code})
    assert worn.status_code == 422 and "Too many wrong codes" in worn.text

    with session_scope() as session:  # a new code, then time passes beyond its life
        for row in session.exec(select(AccountCode).where(AccountCode.case_id == served_case)):
            row.created_at -= timedelta(minutes=31)
            session.add(row)
    code = account_code.issue(served_case, 1)
    with session_scope() as session:
        for row in session.exec(select(AccountCode).where(AccountCode.case_id == served_case)):
            row.expires_at = utc_now() - timedelta(seconds=1)
            session.add(row)
    expired = client.post(f"/account/{token}", data={"account": "An account.", "code": code})
    assert expired.status_code == 422 and "The code has expired" in expired.text
    assert accounts_of(served_case) == []
