"""The learning register's pages: PSD and analysts read the register with its filters and its
CSV export; an owner sees and updates only their own items; only PSD assign, and only PSD see the
case an item came from; a lesson naming the officer is refused with nothing saved."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import delete

from infra.db import session_scope
from infra.settings import reset_settings
from models import Officer, PortalSession, SignInFailure
from models.learning import LearningItem
from portal.app import create_app
from tasks import learning_register as register
from tasks.intake import create_case
from tests.support.cases import PSD, sample_referral
from tests.support.users import use_sign_ins

OWNER = "insp.learning@force.example"
USERS = (f"psd.learning:psd-pass-1:psd,analyst.learning:an-pass-1:analyst,"
         f"{OWNER}:own-pass-1:reviewer,other.learning@force.example:oth-pass-1:reviewer")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RPRP_PORTAL_USERS", USERS)
    reset_settings()
    use_sign_ins(USERS)
    with session_scope() as session:
        session.exec(delete(SignInFailure))
        session.exec(delete(PortalSession))
    with TestClient(create_app(mail_dir=tmp_path / "mail")) as test_client:
        yield test_client
    monkeypatch.undo()
    reset_settings()


def sign_in(client: TestClient, name: str, password: str) -> TestClient:
    page = client.get("/login")
    token = CSRF.search(page.text)
    assert token
    response = client.post("/login", data={"username": name, "password": password,
                                           "csrf_token": token.group(1), "next": "/learning"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def two_items() -> tuple[int, int, int, str]:
    """A case with two learning items: one assigned to OWNER (supervision, Response North),
    one unassigned. Returns both ids, the case id and the officer's name."""
    now = datetime.now(UTC)
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        assert case.id is not None
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        items = [LearningItem(case_id=case.id, part=n, text=text) for n, text in
                 ((1, "Sergeants need cover on late shifts."),
                  (2, "Body-worn video should be on from the start of a stop."))]
        session.add_all(items)
        session.flush()
        ids = [i.id for i in items]
        assert ids[0] is not None and ids[1] is not None
        register.assign(session, ids[0], PSD, now, theme="supervision",
                        unit="Response North", owner=OWNER, target_on=date(2027, 1, 29))
        return ids[0], ids[1], case.id, officer.name


def test_psd_and_analysts_read_the_register_with_filters_and_csv(client: TestClient) -> None:
    assigned, unassigned, case_id, _ = two_items()
    sign_in(client, "analyst.learning", "an-pass-1")
    page = client.get("/learning", params={"theme": "supervision", "unit": "north"})
    assert page.status_code == 200
    assert f"/learning/{assigned}" in page.text and f"/learning/{unassigned}" not in page.text
    page = client.get("/learning", params={"status": "done"})
    assert f"/learning/{assigned}" not in page.text
    exported = client.get("/learning.csv", params={"theme": "supervision"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert f"LI-{assigned:05d}" in [r["reference"] for r in rows]
    assert all(r["theme"] == "supervision" for r in rows)
    item = client.get(f"/learning/{assigned}")
    assert "Sergeants need cover" in item.text and "theme: supervision" in item.text
    assert f"/cases/{case_id}" not in item.text  # the case is PSD's alone
    assert client.post(f"/learning/{assigned}", data={
        "csrf_token": CSRF.search(item.text).group(1),  # type: ignore[union-attr]
        "action": "status", "status": "done", "reason": "Not mine to do"},
        follow_redirects=False).status_code == 403

    sign_in(client, "psd.learning", "psd-pass-1")
    item = client.get(f"/learning/{unassigned}")
    assert f"/cases/{case_id}" in item.text and 'id="assign"' in item.text


def test_owners_update_their_own_items_and_names_are_refused(client: TestClient) -> None:
    assigned, unassigned, _, officer_name = two_items()
    sign_in(client, OWNER, "own-pass-1")
    page = client.get("/learning")
    assert f"/learning/{assigned}" in page.text and f"/learning/{unassigned}" not in page.text
    assert client.get(f"/learning/{unassigned}").status_code == 404
    assert client.get("/learning.csv").status_code == 403
    item = client.get(f"/learning/{assigned}")
    token = CSRF.search(item.text).group(1)  # type: ignore[union-attr]
    assert 'id="assign"' not in item.text
    refused = client.post(f"/learning/{assigned}", data={
        "csrf_token": token, "action": "status", "status": "action planned",
        "reason": f"{officer_name} will brief the team"})
    assert "remove" in refused.text and officer_name in refused.text
    with session_scope() as session:
        assert session.get(LearningItem, assigned).status == "open"  # type: ignore[union-attr]
    done = client.post(f"/learning/{assigned}", data={
        "csrf_token": token, "action": "status", "status": "action planned",
        "reason": "Cover rota agreed with the chief inspector"})
    assert "The learning item was updated" in done.text
    assert "status: action planned" in done.text
    # Only PSD assign.
    assert client.post(f"/learning/{assigned}", data={
        "csrf_token": token, "action": "assign", "owner": "someone@force.example"},
        follow_redirects=False).status_code == 403
