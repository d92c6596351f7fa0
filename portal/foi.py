"""The FOI return page: PSD choose a period, see the counts and any summary held back, and
download the same return `rprp foi` writes (.xlsx, or .csv with its summary as a second file).

PSD only: the return lists cases one by one (with their public summaries), which analysts,
who see only figures about groups, do not need.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from infra.db import session_scope
from models import utc_now
from portal.auth import PsdUser
from portal.web import LONDON, render
from tasks.foi import FoiReturn, foi_return, summary_csv, to_csv, to_xlsx

router = APIRouter(include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"The {name} date must be written YYYY-MM-DD.") from None


def _period(start: str | None, end: str | None, as_of: str | None) -> tuple[date, date, date]:
    today = utc_now().astimezone(LONDON).date()
    period_from = _day(start, "from") or today.replace(month=1, day=1)
    period_to = _day(end, "to") or today
    if period_to < period_from:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "The period ends before it starts.")
    return period_from, period_to, _day(as_of, "as-of") or today


def _return(start: str | None, end: str | None, as_of: str | None) -> FoiReturn:
    period_from, period_to, day = _period(start, end, as_of)
    with session_scope() as session:
        return foi_return(session, period_from, period_to, day)


@router.get("/reports/foi")
async def foi_page(request: Request, user: PsdUser, start: str | None = None,
                   end: str | None = None, as_of: str | None = None) -> Response:
    foi = _return(start, end, as_of)
    query = (f"start={foi.period_from.isoformat()}&end={foi.period_to.isoformat()}"
             f"&as_of={foi.as_of.isoformat()}")
    return render(request, "foi.html", {"foi": foi, "query": query})


@router.get("/reports/foi/download")
async def foi_download(user: PsdUser, start: str | None = None, end: str | None = None,
                       as_of: str | None = None, format: str = "xlsx") -> Response:
    foi = _return(start, end, as_of)
    name = f"foi-return-{foi.period_from.isoformat()}-to-{foi.period_to.isoformat()}"
    if format == "xlsx":
        body, media, filename = to_xlsx(foi), XLSX, f"{name}.xlsx"
    elif format == "csv":
        body, media, filename = to_csv(foi).encode(), "text/csv", f"{name}.csv"
    elif format == "summary":
        body, media, filename = summary_csv(foi).encode(), "text/csv", f"{name}.summary.csv"
    else:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Download as xlsx, csv or summary.")
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
