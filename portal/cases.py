"""Case pages for PSD and reviewers, and PSD's actions on a case (pages and JSON API)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from portal import actions
from portal.auth import (
    REVIEWER,
    ApiPsd,
    ApiUser,
    PageUser,
    PsdUser,
    User,
    require_case,
    visible_case_ids,
)
from portal.referral_form import ORIGINS, ROUTES
from portal.referrals import case_json
from portal.web import check_csrf, flash, render
from tasks.report import PdrNotRecorded, record_pdr_discussion

router = APIRouter()
api = APIRouter(prefix="/api/cases", tags=["cases"])

SETTLED = {
    "woken": "Its flow run has been told and will finish.",
    "stopped": "Its flow run has been stopped.",
    "not_started": "It had no flow run.",
    "unreachable": "Prefect could not be reached: the flow run will finish when it next wakes.",
}


def _file(case_id: int) -> actions.CaseFile:
    file = actions.case_file(case_id)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no case with that number.")
    return file


@router.get("/", include_in_schema=False)
async def home(user: PageUser) -> Response:
    return RedirectResponse("/cases", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/cases", include_in_schema=False)
async def case_list(request: Request, user: PageUser) -> Response:
    return render(request, "cases.html",
                  {"rows": actions.case_rows(case_ids=visible_case_ids(user))})


@router.get("/cases/{case_id}", include_in_schema=False)
async def case_page(request: Request, case_id: int, user: PageUser) -> Response:
    require_case(user, case_id)
    return render(request, "case.html", {"file": _file(case_id), "routes": ROUTES,
                                         "origins": ORIGINS})


@router.get("/cases/{case_id}/accounts/{account_id}", include_in_schema=False)
async def account_page(request: Request, case_id: int, account_id: int,
                       user: PageUser) -> Response:
    require_case(user, case_id)
    found = actions.read_account(case_id, account_id, actor=user.name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such account.")
    case, account = found
    return render(request, "case_account.html", {"case": case, "account": account})


@router.post("/cases/{case_id}/start", include_in_schema=False)
async def start(request: Request, case_id: int, user: PsdUser) -> Response:
    check_csrf(request, await request.form())
    file = _file(case_id)
    if file.case.state.is_terminal:
        flash(request, "This case is closed: there is nothing to start.", "important")
    elif actions.is_imported_record(case_id):
        flash(request, "This case was imported from the force's previous system: it is a "
                       "record, not a live case, so it has no flow run.", "important")
    elif await actions.start_flow(case_id):
        flash(request, "The flow run has started.")
    else:
        flash(request, "Prefect could not be reached. Try again in a few minutes.", "important")
    return RedirectResponse(f"/cases/{case_id}", status_code=status.HTTP_303_SEE_OTHER)


# -- officer left the force --------------------------------------------------------------------

def _parse_date(form: dict[str, str], name: str, noun: str) -> tuple[date | None, str]:
    parts = [form.get(f"{name}-{p}", "").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return None, f"Enter {noun}"
    if not all(parts):
        return None, f"{noun.capitalize()} must include a day, month and year"
    try:
        if len(parts[2]) != 4:
            raise ValueError
        value = date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None, f"{noun.capitalize()} must be a real date"
    if value > date.today():
        return None, f"{noun.capitalize()} must be today or in the past"
    return value, ""


def _open_case_or_redirect(request: Request, case_id: int) -> actions.CaseFile | Response:
    file = _file(case_id)
    if file.case.state.is_terminal:
        flash(request, "This case is already closed.", "important")
        return RedirectResponse(f"/cases/{case_id}", status_code=status.HTTP_303_SEE_OTHER)
    return file


@router.get("/cases/{case_id}/officer-left", include_in_schema=False)
async def officer_left_page(request: Request, case_id: int, user: PsdUser) -> Response:
    file = _open_case_or_redirect(request, case_id)
    if isinstance(file, Response):
        return file
    return render(request, "officer_left.html", {"file": file, "values": {}, "error": ""})


@router.post("/cases/{case_id}/officer-left", include_in_schema=False)
async def officer_left(request: Request, case_id: int, user: PsdUser) -> Response:
    form = await request.form()
    check_csrf(request, form)
    file = _open_case_or_redirect(request, case_id)
    if isinstance(file, Response):
        return file
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    left_on, error = _parse_date(values, "left_on", "the date the officer left")
    if left_on is None:
        return render(request, "officer_left.html",
                      {"file": file, "values": values, "error": error,
                       "errors": [("left_on-day", error)]},
                      status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        case, settled = await actions.officer_left(case_id, left_on, actor=user.name)
    except actions.CaseClosed as exc:
        flash(request, str(exc), "important")
    else:
        flash(request, f"{case.reference} is discontinued: the officer left the force. "
                       f"{SETTLED[settled]}")
    return RedirectResponse(f"/cases/{case_id}", status_code=status.HTTP_303_SEE_OTHER)


# -- cancel ------------------------------------------------------------------------------------

@router.get("/cases/{case_id}/cancel", include_in_schema=False)
async def cancel_page(request: Request, case_id: int, user: PsdUser) -> Response:
    file = _open_case_or_redirect(request, case_id)
    if isinstance(file, Response):
        return file
    return render(request, "cancel.html", {"file": file, "reason": "", "error": ""})


@router.post("/cases/{case_id}/cancel", include_in_schema=False)
async def cancel(request: Request, case_id: int, user: PsdUser) -> Response:
    form = await request.form()
    check_csrf(request, form)
    file = _open_case_or_redirect(request, case_id)
    if isinstance(file, Response):
        return file
    reason = str(form.get("reason", "")).strip()
    error = ("Enter the reason for cancelling" if not reason else
             "The reason must be 3 characters or more" if len(reason) < 3 else
             "The reason must be 500 characters or fewer" if len(reason) > 500 else "")
    if error:
        return render(request, "cancel.html",
                      {"file": file, "reason": reason, "error": error,
                       "errors": [("reason", error)]},
                      status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        case, settled = await actions.cancel(case_id, reason, actor=user.name)
    except actions.CaseClosed as exc:
        flash(request, str(exc), "important")
    else:
        flash(request, f"{case.reference} is cancelled. {SETTLED[settled]}")
    return RedirectResponse(f"/cases/{case_id}", status_code=status.HTTP_303_SEE_OTHER)


# -- the PDR discussion (reg 70(6)) -----------------------------------------------------------

def _may_record_pdr(user: User) -> bool:
    """The officer's line manager (the reviewer) or PSD records the PDR discussion."""
    return user.is_psd or user.has(REVIEWER)


@router.post("/cases/{case_id}/pdr-discussed", include_in_schema=False)
async def pdr_discussed(request: Request, case_id: int, user: PageUser) -> Response:
    form = await request.form()
    check_csrf(request, form)
    if not _may_record_pdr(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only PSD or the reviewer may record this.")
    file = _file(case_id)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    discussed_on, error = _parse_date(values, "pdr", "the date of the PDR discussion")
    if discussed_on is not None:
        try:
            record_pdr_discussion(case_id, discussed_on, actor=user.email or user.name)
        except PdrNotRecorded as exc:
            error = str(exc)
        else:
            flash(request, f"The PDR discussion on {discussed_on:%d %B %Y} is recorded.")
            return RedirectResponse(f"/cases/{case_id}", status_code=status.HTTP_303_SEE_OTHER)
    return render(request, "case.html", {"file": file, "routes": ROUTES, "origins": ORIGINS,
                                         "pdr_values": values, "pdr_error": error,
                                         "errors": [("pdr-day", error)]},
                  status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# -- JSON API ----------------------------------------------------------------------------------

class OfficerLeftIn(BaseModel):
    left_on: date = Field(description="The date the officer left the force (not in the future)")


class CancelIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="Why the referral is withdrawn")


def _api_closed(exc: actions.CaseClosed) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


@api.post("/{case_id}/officer-left")
async def api_officer_left(case_id: int, body: OfficerLeftIn, user: ApiPsd) -> dict[str, Any]:
    """The officer left the force (PSD): the case is discontinued and its run ends."""
    if body.left_on > date.today():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            {"field": "left_on", "loc": ["body", "left_on"], "type": "value_error",
             "msg": "The date the officer left must be today or in the past"}])
    try:
        _, settled = await actions.officer_left(case_id, body.left_on, actor=user.name)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case with id {case_id}") from exc
    except actions.CaseClosed as exc:
        raise _api_closed(exc) from exc
    return {**case_json(case_id), "flow_run": settled}


@api.post("/{case_id}/cancel")
async def api_cancel(case_id: int, body: CancelIn, user: ApiPsd) -> dict[str, Any]:
    """Withdraw the referral (PSD): the case is cancelled and its run ends."""
    try:
        _, settled = await actions.cancel(case_id, body.reason.strip(), actor=user.name)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case with id {case_id}") from exc
    except actions.CaseClosed as exc:
        raise _api_closed(exc) from exc
    return {**case_json(case_id), "flow_run": settled}


class PdrDiscussedIn(BaseModel):
    discussed_on: date = Field(description="The date the report was discussed at the officer's "
                                           "PDR (not in the future, not before the report)")


@api.post("/{case_id}/pdr-discussed")
async def api_pdr_discussed(case_id: int, body: PdrDiscussedIn, user: ApiUser) -> dict[str, Any]:
    """Record that the report was discussed at the officer's PDR (reg 70(6); PSD or reviewer)."""
    if not _may_record_pdr(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only PSD or the reviewer may record this.")
    try:
        record_pdr_discussion(case_id, body.discussed_on, actor=user.email or user.name)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case with id {case_id}") from exc
    except PdrNotRecorded as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            {"field": "discussed_on", "loc": ["body", "discussed_on"], "type": "value_error",
             "msg": str(exc)}]) from exc
    return case_json(case_id)
