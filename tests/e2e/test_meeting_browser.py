"""A reflective practice meeting in a real browser against the real stack: the facilitator
requests it on the portal (its run starts and sends the invitations), one invitee confirms for
the whole meeting from the emailed link, another declines and names a colleague (who is
invited in their place), and the facilitator's meeting page shows the replies and records the
meeting as held, which wakes the run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from infra.db import session_scope
from models import utc_now
from models.meetings import Meeting, MeetingState
from tests.support.stack import WAIT_CEILING, eventually
from tests.support.users import use_sign_ins

M = MeetingState
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
FACILITATOR = ("faci.e2e@partnership.example", "faci-e2e-password")
OLA, BEN, CARYS = ("ola.e2e@council.example", "ben.e2e@nhs.example", "carys.e2e@nhs.example")


def meeting_of(child: str) -> Meeting | None:
    with session_scope() as session:
        return session.exec(select(Meeting).where(Meeting.child_name == child)).first()


async def in_state(child: str, state: MeetingState) -> Meeting:
    async def check() -> Meeting | None:
        found = meeting_of(child)
        return found if found is not None and found.state is state else None

    found = await eventually(check, WAIT_CEILING, f"the meeting {state.value}")
    assert isinstance(found, Meeting)
    return found


async def link_for(mail_sink: Any, recipient: str) -> str:
    def invitation() -> Any:
        return next((m for m in mail_sink.messages() if recipient in m.recipients
                     and "/meetings/invitation/" in m.text), None)

    message = await eventually(invitation, 90, f"the invitation to {recipient}")
    found = re.search(r"https?://[^\s<>\"]+/meetings/invitation/[A-Za-z0-9._-]+", message.text)
    assert found, message.text
    return found.group(0)


async def test_a_meeting_requested_replied_to_and_held_in_the_browser(  # type: ignore[no-untyped-def]
        new_page, portal, stack, mail_sink) -> None:
    use_sign_ins(f"{FACILITATOR[0]}:{FACILITATOR[1]}:rpm-facilitator")
    child = f"Elin Browserchild{utc_now().timestamp():.0f}"
    facilitator: Page = await new_page()
    await facilitator.goto("/meetings")
    await facilitator.get_by_label("User name").fill(FACILITATOR[0])
    await facilitator.get_by_label("Password").fill(FACILITATOR[1])
    await facilitator.get_by_role("button", name="Sign in").click()
    await expect(facilitator.get_by_role("heading", name="Reflective practice meetings")
                 ).to_be_visible()

    # The request: a refusal keeps what was typed; then the meeting is recorded.
    await facilitator.get_by_role("link", name="Request a meeting").click()
    for field, value in (("child_name", child), ("child_date_of_birth", "2017-09-14"),
                         ("requested_by_name", "Rhian Requester"),
                         ("requested_by_agency", "Primary school"),
                         ("requested_by_email", "rhian@school.example"),
                         ("purpose", "Reflect on the child's journey since the school move."),
                         ("invitee_name_1", "Ola Social"), ("invitee_email_1", OLA),
                         ("invitee_agency_1", "Children's Social Care"),
                         ("invitee_role_1", "Social worker"),
                         ("invitee_name_2", "Ben Health"), ("invitee_email_2", "ben.e2e"),
                         ("invitee_agency_2", "Health visiting"),
                         ("invitee_role_2", "Health visitor")):
        await facilitator.locator(f"#{field}").fill(value)
    send = facilitator.get_by_role("button", name="Request the meeting and send the invitations")
    await send.click()
    await expect(facilitator.locator(".govuk-error-summary")).to_contain_text(
        "The invitee's email must be an email address")
    assert meeting_of(child) is None
    await expect(facilitator.locator("#child_name")).to_have_value(child)
    await facilitator.locator("#invitee_email_2").fill(BEN)
    await send.click()
    await expect(facilitator.get_by_role("heading", name=re.compile("Reflective practice meeting:"))
                 ).to_be_visible()
    meeting = await in_state(child, M.INVITATIONS_SENT)

    # One invitee confirms for the whole meeting, from the emailed link.
    ola: Page = await new_page()
    await ola.goto(await link_for(mail_sink, OLA))
    await expect(ola.get_by_role("heading", name="A reflective practice meeting you are invited to")
                 ).to_be_visible()
    await ola.get_by_role("button", name="Confirm attendance").click()
    await expect(ola.locator(".govuk-error-summary")).to_contain_text("whole meeting")
    await ola.get_by_label("I will attend the whole meeting").check()
    await ola.get_by_role("button", name="Confirm attendance").click()
    await expect(ola.locator(".govuk-summary-list")).to_contain_text("Confirmed")

    # Another declines and names a colleague, who is invited in their place.
    ben: Page = await new_page()
    await ben.goto(await link_for(mail_sink, BEN))
    await ben.get_by_role("button", name="Decline and invite my colleague").click()
    await expect(ben.locator(".govuk-error-summary")).to_contain_text("must be an email address")
    await ben.get_by_label("Colleague's name").fill("Carys Colleague")
    await ben.get_by_label("Colleague's email").fill(CARYS)
    await ben.get_by_label("Their agency").fill("Health visiting")
    await ben.get_by_label("Their role").fill("Health visitor")
    await ben.get_by_role("button", name="Decline and invite my colleague").click()
    await expect(ben.locator(".govuk-summary-list")).to_contain_text("Declined")
    assert "/meetings/invitation/" in await link_for(mail_sink, CARYS)

    # The facilitator's page shows the replies and records the meeting as held.
    await facilitator.goto(f"/meetings/{meeting.id}")
    invitees = facilitator.locator("table.govuk-table").first
    for text in ("Ola Social", "Confirmed", "Ben Health", "Declined", "Carys Colleague"):
        await expect(invitees).to_contain_text(text)
    await facilitator.locator("#held-held_on").fill(utc_now().date().isoformat())
    await facilitator.get_by_role("button", name="Record the meeting as held").click()
    await expect(facilitator.get_by_role("heading", name="Learning log (Appendix 2)")
                 ).to_be_visible()
    await in_state(child, M.MEETING_HELD)
