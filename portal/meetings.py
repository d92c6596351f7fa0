"""Reflective practice meetings in the portal (seed 003).

Two doors. Invitees outside the force open `/meetings/invitation/<token>`, a signed link naming
one invitee of one meeting: it shows that meeting only and takes their reply (attendance for the
whole meeting, or a decline naming a colleague) and their contribution to the record. The
facilitator and the business unit sign in (role `rpm-facilitator`, or PSD) and work on
`/meetings/new` (the request: the child, the purpose, the invitees with their agency, role and
manager) and `/meetings/<id>`: the meeting held, the learning log, the chair's sign-off, the CRC summary, the
learning shared, cancel or escalate. Each change wakes the meeting's run, which does the rest.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from infra.db import session_scope
from models import utc_now
from models.meetings import Meeting, MeetingAction, MeetingInvitee
from portal.auth import CRC_CHAIR, RPM_FACILITATOR, User, require_user
from portal.web import check_csrf, flash, render
from tasks import meetings as rules
from tasks.links import InvalidToken
from tasks.meeting_links import read_invitee_token
from tasks.meeting_orchestration import start_meeting_flow, wake_meeting

router = APIRouter(include_in_schema=False)
log = logging.getLogger("rprp.portal.meetings")
NO_STORE = {"Cache-Control": "no-store"}
WAKE_TIMEOUT = 20.0


def require_facilitator(user: Annotated[User, Depends(require_user)]) -> User:
    if not (user.has(RPM_FACILITATOR) or user.is_psd):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only a meeting facilitator or the business unit can do this.")
    return user


Facilitator = Annotated[User, Depends(require_facilitator)]


def require_crc(user: Annotated[User, Depends(require_user)]) -> User:
    if not (user.has(CRC_CHAIR) or user.has(RPM_FACILITATOR) or user.is_psd):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only the Case Review Committee or the business unit can read this.")
    return user


CaseReviewCommittee = Annotated[User, Depends(require_crc)]


async def wake(meeting_id: int) -> None:
    """Tell the meeting's run its record changed; a failure leaves it for the next change."""
    try:
        await asyncio.wait_for(wake_meeting(meeting_id), WAKE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        log.warning("meeting %s not woken: %s", meeting_id, type(exc).__name__)


def _opened(token: str) -> tuple[int, int]:
    try:
        meeting_id, invitee_id = read_invitee_token(token, utc_now())
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    with session_scope() as session:
        invitee = session.get(MeetingInvitee, invitee_id)
        if invitee is None or invitee.meeting_id != meeting_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "This link is not valid.")
    return meeting_id, invitee_id


def _invitation_page(request: Request, token: str, error: str = "",
                     status_code: int = 200) -> Response:
    meeting_id, invitee_id = _opened(token)
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        invitee = session.get(MeetingInvitee, invitee_id)
        context = {"meeting": meeting, "invitee": invitee, "token": token, "error": error,
                   "prompts": rules.REFLECTIVE_PROMPTS,
                   "title": "A reflective practice meeting you are invited to"}
    return render(request, "meeting_invitation.html", context, status_code=status_code,
                  headers=NO_STORE, public=True)


@router.get("/meetings/invitation/{token}")
async def invitation(request: Request, token: str) -> Response:
    return _invitation_page(request, token)


@router.post("/meetings/invitation/{token}")
async def reply(request: Request, token: str) -> Response:
    """Confirm (for the whole meeting), decline naming a colleague, or contribute."""
    meeting_id, invitee_id = _opened(token)
    form = await request.form()
    answer = str(form.get("answer", ""))
    now = utc_now()
    try:
        with session_scope() as session:
            if answer == "confirm":
                rules.confirm_attendance(session, meeting_id, invitee_id, now,
                                         whole_meeting=form.get("whole_meeting") == "yes")
            elif answer == "decline":
                rules.decline_attendance(session, meeting_id, invitee_id, now,
                                         colleague=rules.Invitation(
                                             name=str(form.get("colleague_name", "")),
                                             email=str(form.get("colleague_email", "")),
                                             agency=str(form.get("colleague_agency", "")),
                                             role=str(form.get("colleague_role", "")),
                                             manager_email=str(form.get("colleague_manager", ""))))
            elif answer == "contribute":
                rules.contribute(session, meeting_id, invitee_id,
                                 str(form.get("contribution", "")), now)
            else:
                raise rules.MeetingRefused("Choose whether you will attend.")
    except rules.MeetingRefused as refused:
        return _invitation_page(request, token, str(refused), status.HTTP_400_BAD_REQUEST)
    await wake(meeting_id)
    return RedirectResponse(f"/meetings/invitation/{token}", status.HTTP_303_SEE_OTHER)


# -- the facilitator's and the business unit's page ----------------------------------------------

INVITEE_ROWS = 6
INVITEE_FIELDS = ("name", "email", "agency", "role", "manager")
REQUEST_FIELDS = ("child_name", "child_date_of_birth", "family_names", "requested_by_name",
                  "requested_by_agency", "requested_by_email", "facilitator_name",
                  "facilitator_email", "purpose", "meeting_on", "place")


async def start(meeting_id: int) -> bool:
    """Start the meeting's run; if Prefect cannot be reached the meeting stays requested, and
    the page says so (starting again later is safe: one run per meeting)."""
    try:
        await asyncio.wait_for(start_meeting_flow(meeting_id), WAKE_TIMEOUT)
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("meeting %s run not started: %s", meeting_id, type(exc).__name__)
        return False


def _invitations(form: dict[str, str]) -> list[rules.Invitation]:
    """The invitee rows that have anything typed in them (an incomplete row is refused)."""
    found: list[rules.Invitation] = []
    for n in range(1, INVITEE_ROWS + 1):
        row = {f: form.get(f"invitee_{f}_{n}", "").strip() for f in INVITEE_FIELDS}
        if any(row.values()):
            found.append(rules.Invitation(row["name"], row["email"], row["agency"], row["role"],
                                          row["manager"]))
    return found


def _request_page(request: Request, user: User, values: dict[str, str], error: str = "",
                  status_code: int = 200) -> Response:
    defaults = {"facilitator_name": user.display_name or user.name,
                "facilitator_email": user.email}
    return render(request, "meeting_request.html", {
        "values": {**defaults, **values}, "error": error, "rows": range(1, INVITEE_ROWS + 1),
        "title": "Request a reflective practice meeting"}, status_code=status_code)


@router.get("/meetings/new")
async def request_form(request: Request, user: Facilitator) -> Response:
    return _request_page(request, user, {})


@router.post("/meetings/new")
async def request_new_meeting(request: Request, user: Facilitator) -> Response:
    """Record the meeting and its invitees, then start its run (which sends the invitations).
    A refusal stores nothing and shows the form again as typed, with the reason."""
    form = await request.form()
    check_csrf(request, form)
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    now = utc_now()
    try:
        born = _date(values.get("child_date_of_birth", ""), "The child's date of birth")
        planned = values.get("meeting_on", "").strip()
        with session_scope() as session:
            meeting = rules.request_with_invitees(
                session, now, invitations=_invitations(values),
                child_name=values.get("child_name", ""), child_date_of_birth=born,
                family_names=values.get("family_names", ""),
                requested_by_name=values.get("requested_by_name", ""),
                requested_by_agency=values.get("requested_by_agency", ""),
                requested_by_email=values.get("requested_by_email", ""),
                facilitator_name=values.get("facilitator_name", ""),
                facilitator_email=values.get("facilitator_email", ""),
                purpose=values.get("purpose", ""),
                meeting_on=_date(planned, "The planned date") if planned else None,
                place=values.get("place", ""))
            meeting_id = meeting.id
    except rules.MeetingRefused as refused:
        return _request_page(request, user, values, str(refused), status.HTTP_400_BAD_REQUEST)
    assert meeting_id is not None
    if await start(meeting_id):
        flash(request, "The meeting is recorded; its invitations are being sent.")
    else:
        flash(request, "The meeting is recorded, but its run could not be started: ask an "
                       "operator (it starts once, whenever it is retried).", "error")
    return RedirectResponse(f"/meetings/{meeting_id}", status.HTTP_303_SEE_OTHER)


@router.get("/meetings")
async def meetings_list(request: Request, user: Facilitator) -> Response:
    with session_scope() as session:
        rows = session.exec(select(Meeting).order_by(col(Meeting.id).desc())).all()
    return render(request, "meetings.html", {"meetings": rows,
                                             "title": "Reflective practice meetings"})


@router.get("/meetings/{meeting_id}/summary")
async def crc_summary_page(request: Request, meeting_id: int,
                           user: CaseReviewCommittee) -> Response:
    """What the Case Review Committee reads before deciding: the Appendix 3 summary only (the
    child's age, the date, the chair's role, the learning), never the record's names."""
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        summary = rules.crc_summary(session, meeting_id)
        context = {"reference": meeting.reference, "state": meeting.state, "summary": summary,
                   "crc_choice": meeting.crc_choice, "crc_plan": meeting.crc_plan,
                   "title": f"Summary of learning {meeting.reference}"}
    return render(request, "meeting_summary.html", context)


@router.get("/meetings/{meeting_id}")
async def meeting_page(request: Request, meeting_id: int, user: Facilitator,
                       error: str = "") -> Response:
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        context = {
            "meeting": meeting, "invitees": rules.invitees(session, meeting_id),
            "log": rules.learning_log(session, meeting),
            "timeline": rules.timeline(session, meeting_id),
            "actions": session.exec(select(MeetingAction).where(
                MeetingAction.meeting_id == meeting_id).order_by(col(MeetingAction.id))).all(),
            "summary": rules.crc_summary(session, meeting_id), "error": error,
            "prompts": rules.REFLECTIVE_PROMPTS, "title": f"Meeting {meeting.reference}"}
    return render(request, "meeting.html", context)


def _date(value: object, what: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise rules.MeetingRefused(f"{what} must be a date (YYYY-MM-DD).") from exc


def _action_id(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise rules.MeetingRefused("Choose an action of this meeting.") from exc


@router.post("/meetings/{meeting_id}")
async def meeting_step(request: Request, meeting_id: int, user: Facilitator) -> Response:
    """One facilitator or business-unit step, named by the form's `step`."""
    form = await request.form()
    check_csrf(request, form)
    step, now, actor = str(form.get("step", "")), utc_now(), user.email
    try:
        with session_scope() as session:
            meeting = rules.get_meeting(session, meeting_id)
            if step == "held":
                rules.hold_meeting(session, meeting, _date(form.get("held_on"), "The date"),
                                   now, actor=actor)
            elif step == "log":
                rules.save_log(session, meeting, now, actor=actor, **{
                    name: str(form.get(name, "")) for name in rules.LOG_FIELDS})
            elif step == "timeline":
                rules.add_timeline_entry(session, meeting, _date(form.get("on"), "The date"),
                                         str(form.get("what_happened", "")),
                                         str(form.get("learning_point", "")), now, actor=actor)
            elif step == "action":
                rules.add_action(session, meeting, str(form.get("description", "")),
                                 str(form.get("owner", "")), _date(form.get("due_on"), "The due date"),
                                 now, actor=actor, owner_email=str(form.get("owner_email", "")))
            elif step == "action_done":
                rules.complete_action(session, meeting, _action_id(form.get("action_id")), now,
                                      actor=actor)
            elif step == "sign":
                rules.sign_off_record(session, meeting, str(form.get("chair", "")),
                                      _date(form.get("signed_on"), "The date"), now)
            elif step == "summary":
                rules.save_crc_summary(session, meeting, chair=str(form.get("chair", "")),
                                       learning_to_share=str(form.get("learning", "")), now=now)
            elif step == "disseminated":
                rules.disseminate_learning(session, meeting, str(form.get("how", "")), now,
                                           actor=actor)
            elif step == "cancel":
                rules.cancel_meeting(session, meeting, str(form.get("reason", "")), now,
                                     actor=actor)
            elif step == "escalate":
                rules.escalate(session, meeting, str(form.get("reason", "")), now, actor=actor)
            else:
                raise rules.MeetingRefused("Unknown step.")
    except rules.MeetingRefused as refused:
        flash(request, str(refused), "error")
        return RedirectResponse(f"/meetings/{meeting_id}", status.HTTP_303_SEE_OTHER)
    await wake(meeting_id)
    flash(request, "Saved.")
    return RedirectResponse(f"/meetings/{meeting_id}", status.HTTP_303_SEE_OTHER)
