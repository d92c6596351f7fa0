"""The officer declines to give an account in a real browser, from the emailed link: an
explicit choice with a confirmation, after which the case moves on at once (its flow run is
woken, as when an account arrives), PSD and the reviewer are told."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from models.enums import CaseState
from tests.e2e.test_portal_browser import refer_through_api
from tests.support.cases import PSD, REVIEWER, audit_actions, outbox, paused_in
from tests.support.stack import eventually

S = CaseState
pytestmark = [pytest.mark.long(seconds=35), pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_officer_declines_to_give_an_account(new_page, portal, stack,  # type: ignore[no-untyped-def]
                                                   mail_sink) -> None:
    case_id = await refer_through_api(portal, officer={"email": "decliner.e2e@force.example"})
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    reference = f"RPRP-{case_id:06d}"

    def notice() -> Any:
        return next((m for m in mail_sink.messages()
                     if "decliner.e2e@force.example" in m.recipients
                     and reference in m.subject), None)

    message = await eventually(notice, 60, "the notice email at the SMTP server")
    assert "you can say so on the same page" in message.text
    link = re.search(r"https?://[^\s<>\"]+/account/[A-Za-z0-9._-]+", message.text)
    assert link, message.text

    officer: Page = await new_page()
    await officer.goto(link.group(0))
    await officer.get_by_role("button", name="I do not want to give an account").click()
    await expect(officer.get_by_role("heading", name="Decline to give an account")).to_be_visible()

    # Not confirmed: told so, nothing changes.
    confirm = officer.get_by_role("button", name="Confirm: I decline to give an account")
    await confirm.click()
    await expect(officer.locator(".govuk-error-summary")).to_contain_text(
        "Confirm that you do not want to give an account")
    assert "account_declined" not in audit_actions(case_id)

    # Confirmed, but only the officer may decline: the code emailed to their address.
    await officer.get_by_label("I do not want to give an account").check()
    await confirm.click()
    await expect(officer.locator(".govuk-error-summary")).to_contain_text("Ask for a code first")
    assert "account_declined" not in audit_actions(case_id)
    await officer.get_by_role("button", name="Email me a code").click()
    await expect(officer.locator("#code-message")).to_contain_text("We have emailed a code")

    def code_email() -> Any:
        return next((m for m in mail_sink.messages()
                     if "decliner.e2e@force.example" in m.recipients
                     and "your code" in m.subject), None)

    code = re.search(r"Your code is (\d{8})",
                     (await eventually(code_email, 30, "the code email")).text)
    assert code
    await officer.get_by_label("Code from your email").fill(code.group(1))
    await officer.get_by_label("I do not want to give an account").check()
    await confirm.click()
    await expect(officer.get_by_role("heading", name="You declined to give an account")
                 ).to_be_visible()

    # The flow run is woken at once and waits for the reviewer's decision.
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    assert audit_actions(case_id).count("account_declined") == 1
    told = sorted(r.recipient for r in outbox(case_id) if r.kind == "account_declined")
    assert told == sorted([PSD, REVIEWER])
    assert not [r for r in outbox(case_id) if r.kind == "missed_account_deadline"]
