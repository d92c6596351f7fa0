"""The reports pages of the central record: trends (the figures a board reads) and
disproportionality monitoring (seed 004), each chart with its table, a CSV and an SVG download.

PSD and analysts only (a reviewer is refused with a page that says so). They show counts about
groups and periods, never a case or a person: nothing on them links to a case.
"""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from infra.db import session_scope
from infra.settings import get_settings
from models import utc_now
from portal.auth import ReportsUser
from portal.charts import SVG_CSP, SVG_MEDIA, figure_svg, rri_svg
from portal.web import LONDON, render
from tasks import trends as trend_figures
from tasks.disproportionality import CHARACTERISTICS, STAGES, Disproportionality
from tasks.disproportionality import disproportionality as measure_disproportionality
from tasks.trends import Period

router = APIRouter(include_in_schema=False)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"The {name} date must be written YYYY-MM-DD.") from None


def _today() -> date:
    return utc_now().astimezone(LONDON).date()


def _period(start: str | None, end: str | None, unit: str | None) -> Period:
    today = _today()
    period_from = _day(start, "from") or date(today.year - 2, 1, 1)
    period_to = _day(end, "to") or today
    if period_to < period_from:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "The period ends before it starts.")
    return Period(period_from, period_to, (unit or "").strip())


def _query(period: Period) -> str:
    values = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    if period.unit:
        values["unit"] = period.unit
    return urlencode(values)


def _download(body: bytes, media: str, filename: str, attachment: bool = True) -> Response:
    headers = {"Content-Disposition": f'{"attachment" if attachment else "inline"}; '
                                      f'filename="{filename}"'}
    if media == SVG_MEDIA:
        headers["Content-Security-Policy"] = SVG_CSP
    return Response(body, media_type=media, headers=headers)


# -- trends ----------------------------------------------------------------------------------

@router.get("/reports/trends")
async def trends_page(request: Request, user: ReportsUser, start: str | None = None,
                      end: str | None = None, unit: str | None = None) -> Response:
    period = _period(start, end, unit)
    with session_scope() as session:
        result = trend_figures.trends(session, period, utc_now(),
                                       min_count=get_settings().disproportionality_min_count)
        units = trend_figures.units(session)
    return render(request, "trends.html", {"trends": result, "query": _query(period),
                                           "units": units})


def _figure(key: str, start: str | None, end: str | None,
            unit: str | None) -> trend_figures.Figure:
    period = _period(start, end, unit)
    with session_scope() as session:
        try:
            return trend_figures.figure(session, key, period, utc_now(),
                                       min_count=get_settings().disproportionality_min_count)
        except KeyError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such chart.") from None


@router.get("/reports/trends/{key}.csv")
async def trends_csv(key: str, user: ReportsUser, start: str | None = None,
                     end: str | None = None, unit: str | None = None) -> Response:
    figure = _figure(key, start, end, unit)
    return _download(figure.to_csv().encode(), "text/csv; charset=utf-8", f"{key}.csv")


@router.get("/reports/trends/{key}.svg")
async def trends_svg(key: str, user: ReportsUser, start: str | None = None,
                     end: str | None = None, unit: str | None = None,
                     download: bool = False) -> Response:
    figure = _figure(key, start, end, unit)
    return _download(figure_svg(figure), SVG_MEDIA, f"{key}.svg", attachment=download)


# -- disproportionality ----------------------------------------------------------------------

def _measure(characteristic: str, start: str | None, end: str | None, reference: str | None,
             min_count: str | None) -> Disproportionality:
    period = _period(start, end, None)
    if characteristic not in CHARACTERISTICS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"Choose a characteristic: {', '.join(CHARACTERISTICS)}.")
    try:
        smallest = int(min_count) if min_count else get_settings().disproportionality_min_count
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "The smallest count shown must be a whole number.") from None
    if smallest < 1:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "The smallest count shown must be at least 1.")
    with session_scope() as session:
        try:
            return measure_disproportionality(
                session, characteristic=characteristic, period_from=period.start,
                period_to=period.end, min_count=smallest,
                reference=(reference or "").strip() or None)
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc}.") from None


def _dp_query(result: Disproportionality, reference: str | None) -> str:
    values = {"characteristic": result.characteristic, "start": result.period_from.isoformat(),
              "end": result.period_to.isoformat(), "min_count": str(result.min_count)}
    if reference:
        values["reference"] = reference.strip()
    return urlencode(values)


@router.get("/reports/disproportionality")
async def disproportionality_page(request: Request, user: ReportsUser,
                                  characteristic: str = "ethnicity", start: str | None = None,
                                  end: str | None = None, reference: str | None = None,
                                  min_count: str | None = None) -> Response:
    result = _measure(characteristic, start, end, reference, min_count)
    return render(request, "disproportionality.html", {
        "result": result, "query": _dp_query(result, reference),
        "characteristics": CHARACTERISTICS, "reference": (reference or "").strip()})


@router.get("/reports/disproportionality.{extension}")
async def disproportionality_download(extension: str, user: ReportsUser,
                                      characteristic: str = "ethnicity",
                                      start: str | None = None, end: str | None = None,
                                      reference: str | None = None,
                                      min_count: str | None = None) -> Response:
    result = _measure(characteristic, start, end, reference, min_count)
    name = f"disproportionality-{result.characteristic}-{result.period_from.isoformat()}-to-" \
           f"{result.period_to.isoformat()}"
    if extension == "csv":
        return _download(result.as_csv().encode(), "text/csv; charset=utf-8", f"{name}.csv")
    if extension == "json":
        return _download(json.dumps(result.as_json(), indent=2).encode(), "application/json",
                         f"{name}.json")
    raise HTTPException(status.HTTP_404_NOT_FOUND, "Download as .csv or .json.")


@router.get("/reports/disproportionality/{stage}.svg")
async def disproportionality_svg(stage: str, user: ReportsUser,
                                 characteristic: str = "ethnicity", start: str | None = None,
                                 end: str | None = None, reference: str | None = None,
                                 min_count: str | None = None,
                                 download: bool = False) -> Response:
    if stage not in STAGES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such stage.")
    result = _measure(characteristic, start, end, reference, min_count)
    return _download(rri_svg(result, stage), SVG_MEDIA, f"rri-{stage}.svg",
                     attachment=download)
