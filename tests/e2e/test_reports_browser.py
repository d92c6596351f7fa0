"""The reports pages in a real browser: the charts render (images the browser drew) with their
tables, the CSV and SVG downloads arrive with the table's figures, the disproportionality page
shows its stages, and a reviewer is refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Page, expect

from tasks.trends import FIGURE_KEYS
from tests.e2e.conftest import PSD, REVIEWER
from tests.e2e.test_portal_browser import sign_in
from tests.unit.test_trends import PERIOD, UNIT, seed

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
QUERY = f"start={PERIOD.start.isoformat()}&end={PERIOD.end.isoformat()}&unit={quote(UNIT)}"


async def drawn(page: Page, selector: str) -> list[int]:
    """The natural width of each matching image: 0 for one the browser could not draw."""
    widths: list[int] = await page.eval_on_selector_all(
        selector, "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    return widths


async def test_psd_read_the_trends_charts_with_their_tables_and_download_them(  # type: ignore[no-untyped-def]
        new_page) -> None:
    seed()
    page: Page = await new_page()
    await sign_in(page, PSD)
    await page.get_by_role("link", name="Trends").click()
    await expect(page.get_by_role("heading", name="Trends", exact=True)).to_be_visible()
    await page.goto(f"/reports/trends?{QUERY}")
    await page.wait_for_load_state("networkidle")
    widths = await drawn(page, "img.rprp-chart")
    assert len(widths) == len(FIGURE_KEYS) and all(w > 0 for w in widths), widths
    # One unit's handful of deadlines: their shares are suppressed (the policy's smallest
    # count, 5), the quarter's row still there.
    deadlines = page.locator('table[data-figure="deadlines-met"]')
    await expect(deadlines.get_by_role("row", name="2024 Q2")).to_contain_text("suppressed")
    await expect(page.get_by_role("table", name="Referrals by unit: the figures")) \
        .to_contain_text(UNIT)

    async with page.expect_download() as csv_download:
        await page.locator("#deadlines-met").get_by_role(
            "link", name="Download the table (.csv)").click()
    download = await csv_download.value
    assert download.suggested_filename == "deadlines-met.csv"
    rows = list(csv.reader(io.StringIO(Path(await download.path()).read_text())))
    assert rows[0][0] == "quarter" and ["2024 Q2", *["suppressed"] * 4] in rows

    async with page.expect_download() as svg_download:
        await page.locator("#referrals-by-origin").get_by_role(
            "link", name="Download the chart (.svg)").click()
    image = await svg_download.value
    assert image.suggested_filename == "referrals-by-origin.svg"
    assert "Referrals per month by origin" in Path(await image.path()).read_text()


async def test_psd_read_each_stage_of_disproportionality(new_page) -> None:  # type: ignore[no-untyped-def]
    seed()
    page: Page = await new_page()
    await sign_in(page, PSD)
    await page.goto("/reports/disproportionality?characteristic=ethnicity&start=2024-01-01"
                    "&end=2024-06-30&min_count=100000")
    await page.wait_for_load_state("networkidle")
    widths = await drawn(page, "img.rprp-chart")
    assert len(widths) == 4 and all(w > 0 for w in widths), widths
    referred = page.locator('table[data-stage="referred"]')
    await expect(referred).to_be_visible()
    await expect(referred.get_by_text("suppressed").first).to_be_visible()
    async with page.expect_download() as csv_download:
        await page.get_by_role("link", name="Download every stage (.csv)").click()
    text = Path(await (await csv_download.value).path()).read_text()
    assert text.splitlines()[0] == "stage,group,count,denominator,rate,rri,ci_low,ci_high,suppressed"


async def test_a_reviewer_is_refused_the_reports(new_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = await new_page()
    await sign_in(page, REVIEWER)
    await expect(page.get_by_role("link", name="Trends")).to_have_count(0)
    for path in ("/reports/trends", "/reports/disproportionality"):
        response = await page.goto(path)
        assert response is not None and response.status == 403
        await expect(page.get_by_role("heading", name="You cannot do this")).to_be_visible()
        await expect(page.get_by_text(
            "Only Professional Standards and analysts can see the reports.")).to_be_visible()
