"""The learning board's pages: PSD and analysts read the list of packs and a month's pack (its
figures as they were kept, printable); others cannot; only PSD record the board's decision on an
item, which goes into the item's history; a note naming the officer is refused, nothing saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import delete

from infra.db import session_scope
from infra.settings import reset_settings
from models import PortalSession, SignInFailure
from portal.app import create_app
from tasks import learning_board as board
from tasks.learning_board import Month
from tests.support.board import OFFICER_NAME, SeededMonth, seed_board_month
from tests.support.users import use_sign_ins

USERS = ("psd.board:psd-pass-1:psd,analyst.board:an-pass-1:analyst,"
         "insp.board@force.example:rev-pass-1:reviewer")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MONTH = Month(2039, 3)  # the seeded March, five years on


@pytest.fixture(scope="module")
def seeded() -> SeededMonth:
    found = seed_board_month(tag="lbp", years=5)
    with session_scope() as session:
        board.prepare(session, MONTH, date(2039, 4, 1), datetime(2039, 4, 1, 7, tzinfo=UTC))
    return found


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
    token = CSRF.search(client.get("/login").text)
    assert token
    response = client.post("/login", data={"username": name, "password": password,
                                           "csrf_token": token.group(1), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def test_readers_see_the_packs_and_the_figures_kept(client: TestClient,
                                                    seeded: SeededMonth) -> None:
    sign_in(client, "analyst.board", "an-pass-1")
    listing = client.get("/learning/board")
    assert listing.status_code == 200
    assert f'href="/learning/board/{MONTH.key}"' in listing.text and "March 2039" in listing.text
    page = client.get(f"/learning/board/{MONTH.key}")
    assert page.status_code == 200
    text = page.text
    assert "Pack for March 2039" in text and "rprp-board-pack" in text
    assert f"LI-{seeded.items['I1']:05d}" in text
    assert '<dd class="govuk-summary-list__value">2</dd>' in text  # reports filed
    assert OFFICER_NAME not in text and "RPRP-" not in text
    assert "Record the decision" not in text  # analysts read; PSD record
    assert client.get("/learning/board/2039-13").status_code == 404
    assert client.get("/learning/board/2040-02").status_code == 404
    # The print stylesheet hides the menus and the forms.
    css = client.get("/static/rprp.css").text
    assert "@media print" in css and ".rprp-no-print" in css


def test_others_cannot_read_the_packs(client: TestClient, seeded: SeededMonth) -> None:
    sign_in(client, "insp.board@force.example", "rev-pass-1")
    assert client.get("/learning/board").status_code == 403
    assert client.get(f"/learning/board/{MONTH.key}").status_code == 403


def test_psd_record_the_boards_decision_in_the_items_history(client: TestClient,
                                                             seeded: SeededMonth) -> None:
    sign_in(client, "psd.board", "psd-pass-1")
    page = client.get(f"/learning/board/{MONTH.key}")
    token = CSRF.search(page.text)
    assert token and "Record the decision" in page.text
    i1 = seeded.items["I1"]
    refused = client.post(f"/learning/board/{MONTH.key}", data={
        "csrf_token": token.group(1), "item_id": str(i1), "decision": "action changed",
        "note": f"{OFFICER_NAME.split()[1]} to lead it"}, follow_redirects=True)
    assert "remove" in refused.text and OFFICER_NAME.split()[1] in refused.text
    with session_scope() as session:
        assert board.decisions(session, MONTH).get(i1) is None
    done = client.post(f"/learning/board/{MONTH.key}", data={
        "csrf_token": token.group(1), "item_id": str(i1), "decision": "action changed",
        "note": "Cover rota to be agreed by the area inspector"}, follow_redirects=True)
    assert "was recorded in the item&#39;s history" in done.text or \
        "was recorded in the item's history" in done.text
    assert "Cover rota to be agreed by the area inspector" in done.text
    item_page = client.get(f"/learning/{i1}")
    assert "board 2039-03: action changed" in item_page.text
