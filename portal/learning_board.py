"""The monthly learning board's pages: the list of packs, and a month's pack as the board reads
it in its meeting (printable, or saved as a PDF from the browser's print dialogue), where PSD
record the board's decision on each item discussed, in that item's history.

PSD and analysts read the packs, as they read the register; only PSD record decisions. The pack
names no case, officer or complainant: it shows what the register shows, and counts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response

from infra.db import session_scope
from portal.auth import ANALYST, PageUser, User
from portal.web import check_csrf, flash, render
from tasks import learning_board as board
from tasks.learning_board import BoardDecision, BoardRefused, Month

router = APIRouter(include_in_schema=False)


def _readers_only(user: User) -> None:
    if not (user.is_psd or user.has(ANALYST)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only Professional Standards and "
                            "analysts can read the learning board's packs.")


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except BoardRefused:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such board pack.") from None


@router.get("/learning/board")
async def packs_page(request: Request, user: PageUser) -> Response:
    _readers_only(user)
    with session_scope() as session:
        found = [(p, board.figures_of(p)) for p in board.packs(session)]
    return render(request, "learning_board.html", {"packs": found})


@router.get("/learning/board/{month}")
async def pack_page(request: Request, month: str, user: PageUser) -> Response:
    _readers_only(user)
    chosen = _month(month)
    with session_scope() as session:
        pack = board.pack_of(session, chosen)
        if pack is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "There is no such board pack.")
        figures = board.figures_of(pack)
        decided = {item_id: [(board.decision_of(e), e.detail, e.actor, e.at) for e in events]
                   for item_id, events in board.decisions(session, chosen).items()}
    return render(request, "learning_board_pack.html", {
        "pack": pack, "f": figures, "decided": decided, "may_decide": user.is_psd,
        "choices": [d.value for d in BoardDecision]})


@router.post("/learning/board/{month}")
async def record_decision(request: Request, month: str, user: PageUser) -> Response:
    """PSD record the board's decision on one item; a refusal saves nothing and says why."""
    form = await request.form()
    check_csrf(request, form)
    if not user.is_psd:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only Professional Standards record the board's decisions.")
    chosen = _month(month)
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    item = values.get("item_id", "")
    try:
        if not item.isdigit():
            raise BoardRefused("Choose an item of this month's pack")
        with session_scope() as session:
            board.record_decision(session, chosen, int(item), user.email, datetime.now(UTC),
                                  values.get("decision", ""), values.get("note", ""))
    except BoardRefused as refused:
        flash(request, str(refused), "important")
    else:
        flash(request, "The board's decision was recorded in the item's history.")
    return RedirectResponse(f"/learning/board/{chosen.key}#item-{item}",
                            status_code=status.HTTP_303_SEE_OTHER)
