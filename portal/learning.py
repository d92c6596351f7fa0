"""The organisational learning register's pages: the register with its filters (theme, unit,
status, period), an item's page with its history, and a CSV export.

PSD and analysts read the register; an owner reads and updates their own items. PSD assigns an
item (theme, unit, owner, target) and reviews it. Only PSD see which case an item came from: the
register itself names no officer or complainant.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, func, select

from infra.db import session_scope
from models.learning import LearningItem
from portal.auth import ANALYST, PageUser, User
from portal.web import check_csrf, flash, render
from tasks import learning_register as register
from tasks.calendar import LONDON

router = APIRouter(include_in_schema=False)
CSV_FIELDS = ("reference", "theme", "unit", "owner", "target_on", "status", "text",
              "status_reason", "closing_note", "created_at", "updated_at", "origin")


@dataclass(frozen=True)
class Filters:
    theme: str = ""
    unit: str = ""
    status: str = ""
    since: date | None = None  # created on or after
    until: date | None = None  # created on or before


def _readers_only(user: User) -> None:
    if not (user.is_psd or user.has(ANALYST)):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only Professional Standards and analysts can read the register.")


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def filters_of(request: Request) -> Filters:
    q = request.query_params
    return Filters(theme=q.get("theme", "").strip(), unit=q.get("unit", "").strip(),
                   status=q.get("status", "").strip(), since=_date(q.get("since")),
                   until=_date(q.get("until")))


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def listed(session: Session, f: Filters, owner: str | None = None) -> list[LearningItem]:
    """The items the filters choose, newest first; `owner` limits them to one owner's."""
    query = select(LearningItem)
    if f.theme:
        query = query.where(LearningItem.theme == f.theme)
    if f.unit:
        query = query.where(func.lower(LearningItem.unit).contains(f.unit.lower()))
    if f.status:
        query = query.where(LearningItem.status == f.status)
    if f.since:
        query = query.where(LearningItem.created_at >= _start(f.since))
    if f.until:
        query = query.where(LearningItem.created_at < _start(date.fromordinal(
            f.until.toordinal() + 1)))
    if owner is not None:
        query = query.where(func.lower(LearningItem.owner) == owner.lower())
    return list(session.exec(query.order_by(LearningItem.id.desc())))  # type: ignore[union-attr]


@router.get("/learning")
async def register_page(request: Request, user: PageUser) -> Response:
    f = filters_of(request)
    with session_scope() as session:
        if user.is_psd or user.has(ANALYST):
            items = listed(session, f)
        else:
            items = listed(session, f, owner=user.email)
            if not user.email:
                items = []
    return render(request, "learning.html", {
        "learning_items": items, "filters": f, "themes": register.themes(),
        "statuses": [s.value for s in register.LearningStatus],
        "reference": register.item_reference, "own_only": not (user.is_psd
                                                               or user.has(ANALYST))})


@router.get("/learning.csv")
async def register_csv(request: Request, user: PageUser) -> Response:
    _readers_only(user)
    with session_scope() as session:
        items = listed(session, filters_of(request))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for item in items:
        writer.writerow([register.item_reference(item), item.theme, item.unit, item.owner,
                         item.target_on.isoformat() if item.target_on else "", item.status,
                         item.text, item.status_reason, item.closing_note,
                         item.created_at.isoformat(), item.updated_at.isoformat(),
                         item.origin])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="learning-register.csv"'})


def _visible(session: Session, user: User, item_id: int) -> LearningItem:
    """404 for an item this person may not read, as for cases."""
    item = session.get(LearningItem, item_id)
    if item is None or not (user.is_psd or user.has(ANALYST)
                            or register.may_update(item, user.email, is_psd=False)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such learning item.")
    return item


@router.get("/learning/{item_id}")
async def item_page(request: Request, item_id: int, user: PageUser) -> Response:
    with session_scope() as session:
        item = _visible(session, user, item_id)
        events = register.history(session, item_id)
    return render(request, "learning_item.html", {
        "item": item, "events": events, "reference": register.item_reference(item),
        "themes": register.themes(), "statuses": [s.value for s in register.LearningStatus],
        "may_assign": user.is_psd,
        "may_update": register.may_update(item, user.email, user.is_psd),
        "case_id": item.case_id if user.is_psd else None})


@router.post("/learning/{item_id}")
async def update_item(request: Request, item_id: int, user: PageUser) -> Response:
    """PSD's assignment, or a status change by PSD or the item's owner; a refusal changes
    nothing and says why."""
    form = await request.form()
    check_csrf(request, form)
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    now = datetime.now(UTC)
    try:
        with session_scope() as session:
            item = _visible(session, user, item_id)
            if not register.may_update(item, user.email, user.is_psd):
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    "Only PSD and the item's owner can update it.")
            if values.get("action") == "assign":
                if not user.is_psd:
                    raise HTTPException(status.HTTP_403_FORBIDDEN,
                                        "Only Professional Standards assign learning items.")
                target = values.get("target_on", "")
                if target and _date(target) is None:
                    raise register.LearningRefused("Give the target date as YYYY-MM-DD")
                register.assign(session, item_id, user.email, now,
                                theme=values.get("theme") or None, unit=values.get("unit"),
                                owner=values.get("owner"), target_on=_date(target),
                                text=values.get("text") or None)
            else:
                register.change_status(session, item_id, user.email, now,
                                       values.get("status", ""), values.get("reason", ""))
    except register.LearningRefused as refused:
        flash(request, str(refused), "important")
    else:
        flash(request, "The learning item was updated.")
    return RedirectResponse(f"/learning/{item_id}", status_code=status.HTTP_303_SEE_OTHER)
