"""PSD refers a matter: the form (`/referrals/new`) and the JSON API (`/api/referrals`)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from portal import actions
from portal.auth import ApiPsd, ApiUser, PsdUser, require_case
from portal.referral_form import COMPLAINANT_FIELDS, FormState, parse
from portal.run_starter import RunStarter
from portal.web import check_csrf, flash, iso_utc, render
from tasks.action_reviews import review_step
from tasks.discussion_invitation import meeting_text
from tasks.intake import ReferralIn

router = APIRouter()
api = APIRouter(prefix="/api", tags=["referrals"])

FORM_KEY_PREFIX = "form:"
API_KEY_PREFIX = "api:"


def _form_page(request: Request, state: FormState, form_token: str,
               status_code: int = 200) -> Response:
    return render(request, "referral_new.html", {
        "f": state.fields(), "errors": state.summary(), "form_token": form_token,
        "complainant_fields": [f.path for f in COMPLAINANT_FIELDS],
    }, status_code=status_code)


@router.get("/referrals/new", include_in_schema=False)
async def new_referral(request: Request, user: PsdUser) -> Response:
    # A one-time token per form: the idempotency key that makes a double submit one case.
    return _form_page(request, FormState(), secrets.token_urlsafe(24))


@router.post("/referrals/new", include_in_schema=False)
async def submit_referral(request: Request, user: PsdUser) -> Response:
    form = await request.form()
    check_csrf(request, form)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    form_token = values.pop("form_token", "")[:64] or secrets.token_urlsafe(24)
    referral, state = parse(values)
    if referral is None:
        return _form_page(request, state, form_token, status.HTTP_422_UNPROCESSABLE_CONTENT)
    case, created = actions.store_referral(referral, actor=user.name,
                                           idempotency_key=FORM_KEY_PREFIX + form_token)
    assert case.id is not None
    if not created:
        flash(request, f"This referral was already submitted as {case.reference}.", "info")
    elif await actions.start_flow(case.id):
        flash(request, f"Referral received: case {case.reference} has started.")
    else:
        flash(request, f"Referral received as case {case.reference}. Its flow run could not be "
                       "started yet: use Start below when Prefect is available.", "important")
    return RedirectResponse(f"/cases/{case.id}", status_code=status.HTTP_303_SEE_OTHER)


# -- JSON API ----------------------------------------------------------------------------------

def case_json(case_id: int) -> dict[str, Any]:
    file = actions.case_file(case_id)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case with id {case_id}")
    case = file.case
    decision, decision_url = file.pending_decision, file.flow_run_url
    if decision is None and file.open_review is not None:
        decision = review_step(case, file.open_review.number)
        decision_url = file.review_run_url
    return {
        "case_id": case.id,
        "reference": case.reference,
        "state": case.state.value,
        "state_label": case.state.label,
        "closed": case.state.is_terminal,
        "flow_run_id": case.flow_run_id,
        "flow_run_url": file.flow_run_url or None,
        "waiting_for": ({"kind": file.wait.kind, "title": file.wait.title}
                        if file.wait else None),
        "pending_decision": ({"title": decision.title, "key": decision.key,
                              "kind": decision.kind, "prefect_url": decision_url or None}
                             if decision else None),
        "deadlines": [{"kind": d.kind.value, "round": d.round, "due_at": iso_utc(d.due_at),
                       "status": d.status.value, "calendar_version": d.calendar_version}
                      for d in file.deadlines],
        "report": ({"complainant_summary": file.report.complainant_summary,
                    "agreed_on": file.report.agreed_on.isoformat(),
                    "pdr_due_on": file.report.pdr_due_on.isoformat(),
                    "pdr_discussed_on": (file.report.pdr_discussed_on.isoformat()
                                         if file.report.pdr_discussed_on else None),
                    "pdr_recorded_by": file.report.pdr_recorded_by or None}
                   if file.report else None),
        "accounts": [{"version": a.version, "notice_round": a.notice_round,
                      "received_at": iso_utc(a.received_at), "late": a.late}
                     for a in file.accounts],
        "discussion_invitations": [
            {"meeting": i.meeting, "version": i.sequence + 1, "uid": i.uid,
             "starts_at": iso_utc(i.starts_at), "starts_text": meeting_text(i.starts_at),
             "duration_minutes": i.duration_minutes, "format": i.meeting_format.value,
             "place": i.place, "status": i.status.value, "beyond_target": i.beyond_target,
             "outcome": i.outcome.value if i.outcome else None,
             "sent_at": iso_utc(i.created_at)}
            for i in file.invitations],
        "audit": [{"at": iso_utc(e.at), "actor": e.actor, "action": e.action,
                   "from_state": e.from_state, "to_state": e.to_state, "detail": e.detail}
                  for e in file.audit],
    }


def run_starter(request: Request) -> RunStarter:
    """The portal's background starter of flow runs (one per app)."""
    starter: RunStarter | None = getattr(request.app.state, "run_starter", None)
    if starter is None:
        starter = request.app.state.run_starter = RunStarter(actions.start_flow)
    return starter


def wants_async(prefer: str | None) -> bool:
    """RFC 7240 `Prefer: respond-async` (among other preferences, any case)."""
    return any(part.split("=", 1)[0].strip().lower() == "respond-async"
               for item in (prefer or "").split(",") for part in item.split(";")[:1])


@api.post("/referrals", status_code=status.HTTP_201_CREATED,
          responses={200: {"description": "The same referral was already received: "
                                          "the existing case"},
                     202: {"description": "With `Prefer: respond-async`: the case is stored "
                                          "and its flow run is being started; `Location` (GET "
                                          "/api/referrals/{id}) shows its flow_run_id once it "
                                          "has one"},
                     422: {"description": "Invalid referral: one error per field path"}})
async def create_referral(
    request: Request,
    referral: ReferralIn,
    user: ApiPsd,
    idempotency_key: Annotated[str | None, Header(
        max_length=96, description="Repeat a request with the same key to get the same case")
    ] = None,
    prefer: Annotated[str | None, Header(
        description="`respond-async`: answer as soon as the case is stored (202), and start "
                    "its flow run in the background")] = None,
) -> JSONResponse:
    """Refer a matter into RPRP (PSD). Stores the case, then starts its flow run: before
    answering (201, with the run's id), or with `Prefer: respond-async` after (202)."""
    key = API_KEY_PREFIX + idempotency_key.strip() if idempotency_key else None
    # In a thread: the event loop serves the other clients (and the background starts) while
    # this one's transaction is with the database.
    case, created = await asyncio.to_thread(actions.store_referral, referral, actor=user.name,
                                            idempotency_key=key)
    assert case.id is not None
    flow_run_id = case.flow_run_id
    body = {"case_id": case.id, "reference": case.reference, "flow_run_id": flow_run_id,
            "state": case.state.value}
    if wants_async(prefer):
        if flow_run_id is None:
            run_starter(request).soon(case.id)
        location = f"/api/referrals/{case.id}"
        return JSONResponse(
            body | {"status_url": location},
            status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
            headers={"Location": location, "Preference-Applied": "respond-async"})
    if flow_run_id is None:  # new, or an earlier attempt found Prefect unreachable
        flow_run_id = await actions.start_flow(case.id)
    return JSONResponse(
        body | {"flow_run_id": flow_run_id, "state": actions.load_case(case.id).state.value},
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@api.get("/referrals/{case_id}")
async def get_referral(case_id: int, user: ApiUser, request: Request) -> dict[str, Any]:
    """A case's state, deadlines, pending decision (with its Prefect UI link) and audit trail:
    PSD for any case, a reviewer for their own. A live case still without a flow run (its
    background start was cut short) has its run started again: asking is enough."""
    try:
        require_case(user, case_id)
    except HTTPException as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No case with id {case_id}") from exc
    body = case_json(case_id)
    if body["flow_run_id"] is None and not body["closed"] \
            and not actions.is_imported_record(case_id):
        run_starter(request).soon(case_id)
    return body
