"""The portal in a real browser, end to end: PSD refers through the form, the officer answers
the emailed link, the reviewer decides in the Prefect UI, and a tampered link is refused."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlmodel import func, select

from infra.db import session_scope
from models import Case
from models.enums import CaseState
from tasks.casework import advance
from tasks.intake import create_case
from tasks.links import account_token
from tests.e2e.conftest import OTHER_REVIEWER, PSD, REVIEWER
from tests.support.cases import REVIEWER as REVIEWER_EMAIL
from tests.support.cases import case_row, give_account, paused_in, sample_referral
from tests.support.stack import eventually

S = CaseState
pytestmark = [pytest.mark.long(seconds=30), pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def case_count() -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(Case)).one())


async def sign_in(page: Page, who: tuple[str, str]) -> None:
    await page.goto("/cases")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("User name").fill(who[0])
    await page.get_by_label("Password").fill(who[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Cases", exact=True)).to_be_visible()


async def refer_through_api(portal: str, **overrides: Any) -> int:
    """PSD's case system refers through the JSON API; the portal starts the flow run."""
    body = sample_referral(**overrides).model_dump(mode="json")
    async with httpx.AsyncClient(base_url=portal, auth=PSD, timeout=60) as client:
        response = await client.post("/api/referrals", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["flow_run_id"], "the portal started the case's flow run"
    return int(response.json()["case_id"])


def set_date(values: dict[str, str], name: str, day: date) -> None:
    values.update({f"#{name}-day": str(day.day), f"#{name}-month": str(day.month),
                   f"#{name}-year": str(day.year)})


async def test_psd_refers_a_matter_through_the_form(new_page, stack) -> None:  # type: ignore[no-untyped-def]
    page: Page = await new_page()
    await sign_in(page, PSD)
    await page.get_by_role("link", name="New referral").click()
    await expect(page.get_by_role("heading", name=re.compile("Refer a matter"))).to_be_visible()

    today = date.today()
    n = case_count()
    await page.get_by_label(re.compile("^Severity assessment")).check()
    await page.get_by_label("Conduct matter", exact=True).check()
    fields: dict[str, str] = {}
    set_date(fields, "incident-on", today - timedelta(days=30))
    set_date(fields, "concern-reported-on", today - timedelta(days=20))
    # A mistake: 31 February.
    fields.update({"#referred-on-day": "31", "#referred-on-month": "2",
                   "#referred-on-year": str(today.year)})
    fields.update({
        "#allegation-category": "Discreditable conduct",
        "#rprp-reason": "Rude manner towards a member of the public during a stop",
        "#behaviour-summary": "The officer raised their voice and swore during a stop.",
        "#public-summary": "",  # a mistake: required
        "#aa-decision-maker": "DI Dana Authority",
        "#officer-collar-number": f"E2E{n:05d}",
        "#officer-name": "Alex Browser",
        "#officer-email": "alex.browser.force.example",  # a mistake: no @
        "#reviewer-name": "Sgt Sam Reviewer",
        "#reviewer-email": "sgt.reviewer@",  # a mistake: no domain
    })
    for selector, value in fields.items():
        await page.fill(selector, value)
    await page.get_by_label("Rank", exact=True).select_option("constable")
    await page.get_by_label("The officer's line manager").check()
    await page.locator("#complainant-2").check()  # "No" complainant
    await page.get_by_role("button", name="Submit referral").click()

    # The errors: in the summary at the top (focused) and beside each field; nothing stored.
    summary = page.locator(".govuk-error-summary")
    await expect(summary).to_be_visible()
    await expect(summary).to_be_focused()
    await expect(page).to_have_title(re.compile("^Error: "))
    await expect(summary.get_by_role("link")).to_have_text([
        "The date of the referral must be a real date",
        "Enter the public summary",
        re.compile("^Enter the officer's email address in the correct format"),
        re.compile("^Enter the reviewer's email address in the correct format"),
    ])
    await expect(page.locator("#referred-on-error")).to_contain_text("must be a real date")
    await expect(page.locator("#public-summary-error")).to_contain_text("Enter the public summary")
    await expect(page.locator("#officer-email-error")).to_contain_text("correct format")
    await expect(page.locator("#officer-email")).to_have_value("alex.browser.force.example")
    assert case_count() == n

    # The summary's links take the keyboard to the field.
    await summary.get_by_role("link", name="Enter the public summary").click()
    await expect(page.locator("#public-summary")).to_be_focused()
    await page.keyboard.type("An officer spoke discourteously to a member of the public.")
    await page.fill("#officer-email", "alex.browser@force.example")
    await page.fill("#reviewer-email", REVIEWER_EMAIL)
    await page.fill("#referred-on-day", str((today - timedelta(days=1)).day))
    await page.fill("#referred-on-month", str((today - timedelta(days=1)).month))
    await page.fill("#referred-on-year", str((today - timedelta(days=1)).year))
    await page.get_by_role("button", name="Submit referral").click()

    heading = page.get_by_role("heading", name=re.compile(r"^Case RPRP-\d{6}$"))
    await expect(heading).to_be_visible()
    await expect(page.locator(".govuk-notification-banner")).to_contain_text("Referral received")
    assert case_count() == n + 1
    case_id = int(page.url.rsplit("/", 1)[1])
    case = case_row(case_id)
    assert case.officer_id and case.public_summary.startswith("An officer spoke")
    # The flow run serves the notice; the case page shows the account deadline.
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await page.reload()
    await expect(page.locator("#case-state")).to_contain_text("Awaiting account")
    await expect(page.locator("#deadlines")).to_contain_text("The officer's account")


async def test_officer_gives_an_account_from_the_emailed_link(new_page, portal, stack,  # type: ignore[no-untyped-def]
                                                              mail_sink) -> None:
    case_id = await refer_through_api(portal, officer={"email": "officer.e2e@force.example"})
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    reference = f"RPRP-{case_id:06d}"

    def notice() -> Any:
        return next((m for m in mail_sink.messages()
                     if "officer.e2e@force.example" in m.recipients and reference in m.subject),
                    None)

    message = await eventually(notice, 60, "the notice email at the SMTP server")
    found = re.search(r"https?://[^\s<>\"]+/account/[A-Za-z0-9._-]+", message.text)
    assert found, message.text
    link = found.group(0)
    assert link.startswith(portal), "the email links to this portal"

    # PSD sees the same email in the outbox, without the link: it is the officer's alone.
    psd: Page = await new_page()
    await sign_in(psd, PSD)
    await psd.get_by_role("link", name="Outbox").click()
    await psd.get_by_role("link", name=message.subject).first.click()
    await expect(psd.locator("#message-text")).to_contain_text("only in the officer's own email")
    await expect(psd.locator("#message-text")).not_to_contain_text("/account/")

    # The officer, who has no portal login, opens the link.
    officer: Page = await new_page()
    await officer.goto(link)
    await expect(officer.get_by_role("heading", name="Give your account")).to_be_visible()
    await expect(officer.locator("#notice-summary")).to_contain_text(reference)
    await expect(officer.get_by_text("optional", exact=False).first).to_be_visible()
    await expect(officer.get_by_text("Police Federation", exact=False).first).to_be_visible()
    # Only the officer can give it: a code goes to their own address.
    await officer.get_by_role("button", name="Email me a code").click()
    await expect(officer.locator("#code-message")).to_contain_text("We have emailed a code")

    def code_email() -> Any:
        return next((m for m in mail_sink.messages()
                     if "officer.e2e@force.example" in m.recipients
                     and "your code" in m.subject), None)

    code = re.search(r"Your code is (\d{8})",
                     (await eventually(code_email, 30, "the code email")).text)
    assert code
    await officer.get_by_label("Code from your email").fill(code.group(1))
    await officer.get_by_label("Your account").fill(
        "I accept I was abrupt. I had been called to an urgent job and I was rushing.")
    await officer.get_by_role("button", name="Send your account").click()
    await expect(officer.get_by_role("heading", name="Account received")).to_be_visible()
    await expect(officer.locator("#late-warning")).to_have_count(0)

    # The flow run was woken and moved on to the reviewer's decision.
    await paused_in(case_id, S.FACT_FINDING_DECISION)


async def open_resume(page: Page, prefect_ui: str, run_id: str):  # type: ignore[no-untyped-def]
    await page.goto(f"{prefect_ui}/runs/flow-run/{run_id}")
    await page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal__card")
    await expect(modal).to_contain_text("Resume Flow Run")
    return modal


async def test_reviewer_decides_in_the_prefect_ui(new_page, portal, prefect_ui, stack) -> None:  # type: ignore[no-untyped-def]
    case_id = await refer_through_api(portal)
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of the stop, given through the portal.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    run_id = case_row(case_id).flow_run_id or ""

    # PSD (not a decision-maker) sees the run but may not take the reviewer's decision: the
    # refusal is shown at once, the form stays open with what was typed, the case stays put.
    psd: Page = await new_page()
    await sign_in(psd, PSD)
    modal = await open_resume(psd, prefect_ui, run_id)
    await choose(psd, modal, "Fact-finding decision", "Fact-finding needed")
    await fill(modal, "Reasons", "PSD tries to decide for the reviewer.")
    await modal.get_by_role("button", name="Submit").click()
    toast = psd.get_by_text("You may not take this decision", exact=False).first
    await expect(toast).to_be_visible()
    await expect(modal).to_be_visible()
    await expect(_property(modal, "Reasons").locator("textarea, input").first).to_have_value(
        "PSD tries to decide for the reviewer.")
    assert case_row(case_id).state is S.FACT_FINDING_DECISION

    # A second reviewer sees neither the case's run nor may resume it.
    other: Page = await new_page()
    await sign_in(other, OTHER_REVIEWER)
    seen = await other.request.get(f"{prefect_ui}/api/flow_runs/{run_id}")
    assert seen.status == 403
    listed = await other.request.post(f"{prefect_ui}/api/flow_runs/filter", data={"limit": 200})
    assert listed.ok and await listed.json() == []
    resumed = await other.request.post(f"{prefect_ui}/api/flow_runs/{run_id}/resume", data={
        "run_input": {"choice": "No fact-finding needed: go to the discussion"}})
    assert (await resumed.json())["status"] == "REJECT"
    assert case_row(case_id).state is S.FACT_FINDING_DECISION

    # The case's reviewer: from the case page to the decision in the Prefect UI, through the
    # gateway; no form asks who they are.
    page: Page = await new_page()
    await sign_in(page, REVIEWER)
    await page.goto(f"/cases/{case_id}")
    decision = page.locator("#pending-decision")
    await expect(decision).to_contain_text("Fact-finding decision")
    await decision.get_by_role("button", name=re.compile("Open the decision in Prefect")).click()
    await expect(page).to_have_url(re.compile(
        re.escape(prefect_ui) + r"/runs/flow-run/" + re.escape(run_id)))
    await page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal__card")
    await expect(modal).to_contain_text("Resume Flow Run")
    await expect(modal).not_to_contain_text("email address")
    await choose(page, modal, "Fact-finding decision",
                 "No fact-finding needed: go to the discussion")
    await fill(modal, "Reasons", "The account and the body-worn video agree.")
    await modal.get_by_role("button", name="Submit").click()
    await expect(modal).to_have_count(0)

    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await page.goto(f"{portal}/cases/{case_id}")
    await expect(page.locator("#case-state")).to_contain_text("Discussion scheduling")
    await expect(page.locator("#audit-trail")).to_contain_text(REVIEWER_EMAIL.lower())


def _property(modal, label: str):  # type: ignore[no-untyped-def]
    return modal.locator(".schema-form-property").filter(
        has=modal.page.locator(".schema-form-property__label", has_text=label))


async def fill(modal, label: str, value: str) -> None:  # type: ignore[no-untyped-def]
    await _property(modal, label).locator("textarea, input").first.fill(value)


async def choose(page: Page, modal, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """The UI's enum field is a listbox opened from the keyboard."""
    control = _property(modal, label).locator(".p-select-button__control")
    await control.focus()
    await page.keyboard.press("ArrowDown")
    await page.get_by_role("option", name=option, exact=True).click()
    await expect(control).to_contain_text(option)


async def test_a_tampered_link_is_refused(new_page) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD[0])
        case_id = case.id
    assert case_id is not None
    advance(case_id)  # the notice is served (what the flow run's first step does)
    from datetime import UTC, datetime

    token = account_token(case_id, 1, datetime.now(UTC) + timedelta(days=30))
    page: Page = await new_page()
    valid = await page.goto(f"/account/{token}")
    assert valid is not None and valid.status == 200
    await expect(page.get_by_role("heading", name="Give your account")).to_be_visible()

    payload, signature = token.rsplit(".", 1)
    tampered = f"{payload}.{signature[:5]}{'A' if signature[5] != 'A' else 'B'}{signature[6:]}"
    refused = await page.goto(f"/account/{tampered}")
    assert refused is not None and refused.status == 403
    await expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
    content = await page.content()
    assert f"RPRP-{case_id:06d}" not in content and "textarea" not in content


async def test_the_discussion_step_offers_the_invitation_and_refuses_one_without_a_date(
        new_page, portal, prefect_ui, stack) -> None:  # type: ignore[no-untyped-def]
    from tests.support.cases import audit_actions, decide

    case_id = await refer_through_api(portal)
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of the stop, given through the portal.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    case = await paused_in(case_id, S.DISCUSSION_SCHEDULING)

    page: Page = await new_page()
    await sign_in(page, REVIEWER)
    await page.goto(f"{prefect_ui}/runs/flow-run/{case.flow_run_id}")
    await page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal__card")
    await expect(modal).to_contain_text("Invite the officer")
    for label in ("Date of the meeting", "Start time (24-hour clock, UK time, e.g. 10:00)",
                  "How it is held", "Place, or the phone number or video link of the call",
                  "Date the discussion was held (or missed)"):
        await expect(_property(modal, label)).to_have_count(1)
    await choose(page, modal, "What do you want to do?",
                 "Invite the officer: send the date, time and place below")
    await fill(modal, "Start time", "10:00")
    await fill(modal, "Place, or the phone number", "Interview room 2")
    await modal.get_by_role("button", name="Submit").click()

    # Refused at once by the gateway, in the form's words; the form stays open with what was
    # typed, and the case is unchanged.
    await expect(page.get_by_text("enter the date of the meeting", exact=False).first).to_be_visible()
    await expect(modal).to_be_visible()
    await expect(_property(modal, "Place, or the phone number").locator("textarea, input").first
                 ).to_have_value("Interview room 2")
    assert not any(a.startswith("decision_rejected:") for a in audit_actions(case_id))
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await page.goto(f"{portal}/cases/{case_id}")
    await expect(page.locator("body")).to_contain_text(
        "The officer has not been invited to a discussion yet.")
