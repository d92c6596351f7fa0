"""The learning register and the monthly learning board in a real browser: PSD filter the
register by theme, unit, status and period (the CSV link keeps the filters), open the month's
board pack from the menu, record the board's decision on an item, and print the pack (menus and
forms hidden) or save it as a PDF.

The items are the seeded month's (tests/support/board.py), seven years on (March 2041), so the
period filter keeps other tests' items out of what is asserted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from playwright.async_api import Page, expect

from infra.db import session_scope
from tasks import learning_board as board
from tasks.learning_board import Month
from tests.e2e.conftest import PSD
from tests.support.board import OFFICER_NAME, SeededMonth, seed_board_month

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
MONTH = Month(2041, 3)


def seeded_month() -> SeededMonth:
    found = seed_board_month(tag="lbe", years=7)
    with session_scope() as session:
        board.prepare(session, MONTH, date(2041, 4, 1), datetime(2041, 4, 1, 7, tzinfo=UTC))
    return found


def ref(item_id: int) -> str:
    return f"LI-{item_id:05d}"


async def sign_in(page: Page) -> None:
    await page.goto("/cases")
    await page.get_by_label("User name").fill(PSD[0])
    await page.get_by_label("Password").fill(PSD[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Cases", exact=True)).to_be_visible()


async def filter_register(page: Page, theme: str = "", unit: str = "", status: str = "",
                          since: str = "", until: str = "") -> list[str]:
    """Fill the register's filters as a person does and press Filter; the references listed."""
    await page.goto("/learning")
    await page.get_by_label("Theme").select_option(theme or "")
    await page.get_by_label("Unit").fill(unit)
    await page.get_by_label("Status").select_option(status or "")
    await page.get_by_label("Created from (YYYY-MM-DD)").fill(since)
    await page.get_by_label("to", exact=True).fill(until)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("heading", name="Learning register")).to_be_visible()
    if not await page.locator("#items").count():
        await expect(page.get_by_text("No learning items match.")).to_be_visible()
        return []
    return [t.strip() for t in await page.locator("#items tbody tr td:first-child").all_inner_texts()]


async def test_the_register_filters_by_theme_unit_status_and_period(new_page) -> None:  # type: ignore[no-untyped-def]
    items = seeded_month().items
    page: Page = await new_page()
    await sign_in(page)
    await page.get_by_role("link", name="Learning register").click()
    await expect(page.get_by_role("heading", name="Learning register")).to_be_visible()

    march = {"since": "2041-03-01", "until": "2041-03-31"}
    # The period: March's new items, newest first; February's and April's are out.
    assert await filter_register(page, **march) == [ref(items[k]) for k in ("I3", "I2", "I1")]
    assert "since=2041-03-01" in page.url and "until=2041-03-31" in page.url
    # The theme, within the period.
    assert await filter_register(page, theme="supervision", **march) == [
        ref(items["I2"]), ref(items["I1"])]
    # The unit (any part of its name), within the period.
    assert await filter_register(page, unit="south", **march) == [ref(items["I2"])]
    # The status, in February: I5 is still open, I6 done.
    february = {"since": "2041-02-01", "until": "2041-02-28"}
    assert await filter_register(page, status="open", **february) == [ref(items["I5"])]
    assert await filter_register(page, status="done", **february) == [ref(items["I6"])]
    assert await filter_register(page, theme="welfare", unit="north", **february) == []
    # The CSV export keeps the filters the page shows.
    await filter_register(page, theme="supervision", **march)
    href = await page.get_by_role("link", name="Download as CSV").get_attribute("href")
    assert href is not None and "theme=supervision" in href and "since=2041-03-01" in href
    # An item's page from the list.
    await page.get_by_role("link", name=ref(items["I1"])).click()
    await expect(page.get_by_role("heading", name=f"Learning item {ref(items['I1'])}")).to_be_visible()
    await expect(page.locator("#history")).to_contain_text("created")


async def test_the_board_reads_prints_and_records_its_decisions(new_page) -> None:  # type: ignore[no-untyped-def]
    items = seeded_month().items
    page: Page = await new_page()
    await sign_in(page)
    await page.get_by_role("link", name="Learning board").click()
    await expect(page.get_by_role("heading", name="Learning board")).to_be_visible()
    await page.get_by_role("link", name="March 2041").click()
    await expect(page.get_by_role("heading", name="Pack for March 2041")).to_be_visible()
    assert page.url.endswith("/learning/board/2041-03")

    numbers = page.locator("#numbers")
    await expect(numbers).to_contain_text("Cases referred")
    await expect(numbers.locator("dd").nth(0)).to_have_text("3")
    await expect(numbers.locator("dd").nth(1)).to_have_text("2")
    await expect(page.locator("#individual-lessons")).to_contain_text("Incivility")
    await expect(page.locator("#new-by-theme")).to_contain_text("supervision")
    new = page.locator("#new-items")
    for key in ("I1", "I2", "I3"):
        await expect(new).to_contain_text(ref(items[key]))
    await expect(page.locator("#closed-items")).to_contain_text(ref(items["I2"]))
    await expect(page.locator("#overdue-items")).to_contain_text(ref(items["I1"]))
    assert OFFICER_NAME not in await page.content()

    # PSD record the board's decision on I1; it is shown under the item and in its history.
    card = page.locator(f"#item-{items['I1']}")
    await expect(card.get_by_text("No decision recorded.")).to_be_visible()
    await card.get_by_label("The board's decision").select_option("deferred")
    await card.get_by_label(re.compile("^Note")).fill("Back in May with the new rota.")
    await card.get_by_role("button", name="Record the decision").click()
    await expect(page.get_by_text("The board's decision was recorded")).to_be_visible()
    card = page.locator(f"#item-{items['I1']}")
    await expect(card).to_contain_text("deferred: Back in May with the new rota.")
    # A note without words is refused and nothing is recorded.
    await card.get_by_label("The board's decision").select_option("action changed")
    await card.get_by_role("button", name="Record the decision").click()
    await expect(page.get_by_text("Write the board's note")).to_be_visible()
    await expect(page.locator(f"#item-{items['I1']} li")).to_have_count(1)

    # Printed: the pack without the menus, the flash banner or the forms.
    await page.emulate_media(media="print")
    await expect(page.get_by_role("heading", name="Pack for March 2041")).to_be_visible()
    await expect(page.locator(".govuk-service-navigation")).to_be_hidden()
    await expect(page.locator(".govuk-header")).to_be_hidden()
    await expect(page.locator(f"#item-{items['I1']} form")).to_be_hidden()
    await expect(page.locator("#new-items")).to_be_visible()
    pdf = await page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000

    await page.goto(f"/learning/{items['I1']}")
    await expect(page.locator("#history")).to_contain_text("board 2041-03: deferred")
