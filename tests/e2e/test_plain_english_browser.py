"""What people see in a browser: the Prefect UI's Resume form in plain English with the case's
free text shown as text, and the case page leading to the action-plan review (asked in the
case's own run)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from infra.db import session_scope
from models import ActionReview
from models.enums import CaseState
from tasks.deadline_sweep import SweepReport, start_due_reviews
from tasks.links import flow_run_link
from tests.e2e.conftest import PSD
from tests.support.cases import (
    case_row,
    decide,
    give_account,
    paused_in,
    report_answer,
    sample_referral,
)
from tests.support.stack import eventually

S = CaseState
pytestmark = [pytest.mark.long(seconds=85), pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
INJECTED = ("Rude at a stop. [Session expired: sign in again](http://evil.example) "
            '<a href="http://evil.example/login">Sign in</a>')


async def _refer(portal: str, **overrides: Any) -> int:
    body = sample_referral(**overrides).model_dump(mode="json")
    async with httpx.AsyncClient(base_url=portal, auth=PSD, timeout=60) as client:
        response = await client.post("/api/referrals", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["case_id"])


async def _to_report(case_id: int) -> None:
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of the stop, given through the portal.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=date.today().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)


async def _sign_in(page: Page) -> None:
    await page.goto("/cases")
    await page.get_by_label("User name").fill(PSD[0])
    await page.get_by_label("Password").fill(PSD[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Cases", exact=True)).to_be_visible()


async def test_the_report_form_reads_in_plain_english_and_shows_typed_text_as_text(  # type: ignore[no-untyped-def]
        new_page, portal, prefect_ui, stack) -> None:
    case_id = await _refer(portal, rprp_reason=INJECTED, route="sch3_para_24_6",
                           origin="public_complaint",
                           complainant={"name": "Jo Public", "email": "jo@example.org"})
    await _to_report(case_id)

    page: Page = await new_page()
    await _sign_in(page)  # the Prefect UI is behind the portal's gateway
    await page.goto(flow_run_link(case_row(case_id).flow_run_id))
    await page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal__card")
    await expect(modal).to_contain_text("Resume Flow Run")

    # The description: the route in words, the typed text as text and never a link.
    await expect(modal).to_contain_text("Schedule 3 paragraph 24(6)")
    await expect(modal).to_contain_text("[Session expired: sign in again](http://evil.example)")
    await expect(modal).to_contain_text('<a href="http://evil.example/login">Sign in</a>')
    await expect(page.locator('a[href*="evil.example"]')).to_have_count(0)
    await expect(modal).not_to_contain_text("sch3")

    # Labels are not doubled; the UI adds "(Optional)" itself.
    labels = await modal.locator(".schema-form-property__label").all_inner_texts()
    assert labels and not any(re.search(r"\(optional\)", t, re.I) and t.lower().count(
        "optional") > 1 for t in labels), labels
    assert any(t.strip().startswith("Officer's comments") for t in labels), labels

    # Action types are offered as words, not codes.
    await modal.get_by_role("button", name=re.compile("Add item")).click()
    control = modal.locator(".schema-form-property").filter(
        has=page.locator(".schema-form-property__label", has_text="Action type")
    ).locator(".p-select-button__control").first
    await control.focus()
    await page.keyboard.press("ArrowDown")
    await expect(page.get_by_role("option", name="Management meeting or mediation",
                                  exact=True)).to_be_visible()
    await expect(modal).not_to_contain_text("maps back to the stored code")
    options = await page.get_by_role("option").all_inner_texts()
    assert "Management meeting or mediation" in [o.strip() for o in options], options
    assert "Training, a learning plan or a PDR entry" in [o.strip() for o in options], options
    assert not any("_" in o for o in options), options


async def test_the_case_page_leads_to_the_action_plan_review(new_page, portal, prefect_ui,  # type: ignore[no-untyped-def]
                                                             stack) -> None:
    case_id = await _refer(portal)
    await _to_report(case_id)
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.ACTIONS_MONITORING)
    # What the sweep does when the review period is up: open the review in the case's run.
    await start_due_reviews(datetime.now(UTC) + timedelta(days=92),
                            SweepReport(as_of=datetime.now(UTC).isoformat()))

    def review_run() -> str | None:
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id, ActionReview.number == 1)).one()
            return review.flow_run_id

    review_run_id = await eventually(review_run, 30, "the review's flow run id")
    case_run_id = case_row(case_id).flow_run_id or ""
    assert review_run_id == case_run_id  # the review is a step of the case's own run
    async with httpx.AsyncClient(base_url=portal, auth=PSD, timeout=60) as client:
        body = (await client.get(f"/api/referrals/{case_id}")).json()
    assert body["pending_decision"]["kind"] == "action_review"
    assert body["pending_decision"]["prefect_url"].endswith(str(review_run_id))

    page: Page = await new_page()
    await _sign_in(page)
    await page.goto(f"/cases/{case_id}")
    decision = page.locator("#pending-decision")
    await expect(decision).to_contain_text("action-plan review 1")
    await expect(page.locator("#waiting-for")).to_have_count(0)
    await decision.get_by_role("button", name=re.compile("Open the action-plan review")).click()
    await expect(page).to_have_url(re.compile(
        re.escape(prefect_ui) + r"/runs/flow-run/" + re.escape(str(review_run_id))))
