"""The FOI return page: PSD see the counts and the summaries held back, and download the same
return the command writes; a reviewer is refused. Same setting as test_portal_api.py."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.integration.test_portal_api import (  # noqa: F401  (fixtures)
    app_client,
    client,
    prefect,
    psd,
    reviewer,
)
from tests.unit.test_foi import seeded  # noqa: F401  (the seeded period's cases)

QUERY = "start=1995-04-01&end=1996-04-01&as_of=1996-06-30"


def test_psd_see_the_counts_and_what_is_held_back(psd: TestClient,  # noqa: F811
                                                  seeded: dict[str, str]) -> None:  # noqa: F811
    page = psd.get(f"/reports/foi?{QUERY}")
    assert page.status_code == 200
    assert "distinct officers" in page.text and "3 row(s) in the return" in page.text
    assert f"{seeded['E']}</a>: officer&#39;s name" in page.text
    assert "late to a briefing" not in page.text


def test_psd_download_the_return_as_a_workbook_and_as_csv(psd: TestClient,  # noqa: F811
                                                          seeded: dict[str, str]) -> None:  # noqa: F811
    xlsx = psd.get(f"/reports/foi/download?{QUERY}&format=xlsx")
    assert xlsx.status_code == 200
    assert xlsx.headers["content-disposition"] == (
        'attachment; filename="foi-return-1995-04-01-to-1996-04-01.xlsx"')
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["FOI return", "Summary"]
    rows = psd.get(f"/reports/foi/download?{QUERY}&format=csv").text.splitlines()
    assert rows[0] == "reference,date_concern_reported,origin,behaviour_summary,still_serving"
    assert len(rows) == 4 and seeded["E"] not in "\n".join(rows)
    counts = psd.get(f"/reports/foi/download?{QUERY}&format=summary").text
    assert "cases,4" in counts.splitlines()


def test_a_reviewer_is_refused(reviewer: TestClient) -> None:  # noqa: F811
    assert reviewer.get(f"/reports/foi?{QUERY}").status_code == 403
    assert reviewer.get(f"/reports/foi/download?{QUERY}").status_code == 403


def test_an_imported_case_page_opens_and_starts_no_flow_run(psd: TestClient,  # noqa: F811
                                                            prefect,  # noqa: F811
                                                            seeded: dict[str, str]) -> None:  # noqa: F811
    from sqlmodel import select

    from infra.db import session_scope
    from models import ImportedCase
    from tests.integration.test_portal_api import csrf

    with session_scope() as session:
        case_id = session.exec(select(ImportedCase.case_id).where(
            ImportedCase.reference == seeded["B"])).one()  # an open imported case
    page = psd.get(f"/cases/{case_id}")
    assert page.status_code == 200
    started = psd.post(f"/cases/{case_id}/start", data={"csrf_token": csrf(page.text)})
    assert started.status_code == 200
    assert "imported from the force&#39;s previous system" in started.text
    assert not [call for call in prefect.calls if call[0] in ("start_case_flow", "wake_case")]
