"""The officer's account page, opened by the signed link in the notice email.

Officers never sign in: the token opens their own case's account page and nothing else, and the
account is taken only with a one-time code emailed to the officer (portal.account_code), so a
link seen by someone else is not enough. A bad token (tampered, expired, unknown case) gets a
403 page that shows nothing about any case.
The account text goes to the case DB only: it is never logged and never sent to Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from infra.db import session_scope
from infra.settings import get_settings
from models import Account, AuditEvent, Case, Deadline, Officer
from models.enums import CaseState, DeadlineKind
from portal import account_code, actions
from portal.web import render
from tasks.casework import AccountNotAccepted, decline_account, record_account
from tasks.links import InvalidToken, read_account_token

router = APIRouter(include_in_schema=False)

# States in which tasks.casework.record_account takes an account (late ones until the
# reviewer has decided); checked here only to decide whether to show the form.
ACCEPTING = (CaseState.AWAITING_ACCOUNT, CaseState.NO_ACCOUNT, CaseState.FACT_FINDING_DECISION)
MAX_CHARS = 20000
NO_STORE = {"Cache-Control": "no-store"}


@dataclass
class Notice:
    case: Case
    officer: Officer
    notice_round: int
    deadline: Deadline | None
    accounts: list[Account]
    declined_at: datetime | None = None

    @property
    def accepting(self) -> bool:
        return self.notice_round == self.case.notice_round and self.case.state in ACCEPTING

    @property
    def may_decline(self) -> bool:
        """Declining is offered while the account is awaited, not once the case moved on."""
        return (self.notice_round == self.case.notice_round
                and self.case.state is CaseState.AWAITING_ACCOUNT)

    @property
    def declined(self) -> bool:
        return self.declined_at is not None

    @property
    def closed_message(self) -> str:
        if self.notice_round != self.case.notice_round:
            return ("This link is for an earlier notice. Use the link in the latest email you "
                    "were sent.")
        return ("This case has moved past the account stage, so an account can no longer be "
                "added here. If you want to say more, speak to your reviewer.")


def _notice(token: str) -> Notice | None:
    try:
        case_id, notice_round = read_account_token(token)
    except InvalidToken:
        return None
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is None or notice_round < 1 or notice_round > case.notice_round:
            return None
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        deadline = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT,
            Deadline.round == notice_round)).first()
        accounts = list(session.exec(select(Account).where(
            Account.case_id == case_id, Account.notice_round == notice_round)
            .order_by(col(Account.id))))
        for account in accounts:
            session.expunge(account)
            account.text = ""  # the page never shows the account back
        declined = session.exec(select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "account_declined",
            AuditEvent.detail == f"notice round {notice_round}")).first()
        return Notice(case, officer, notice_round, deadline, accounts,
                      declined.at if declined else None)


def _refused(request: Request) -> Response:
    return render(request, "account_refused.html", status_code=status.HTTP_403_FORBIDDEN,
                  headers=NO_STORE, public=True)


CODE_MESSAGES = {
    "sent": "We have emailed a code to {email}. It works once, for {minutes} minutes.",
    "wait": "We sent a code to {email} less than a minute ago: check your email (and its junk "
            "folder) before asking for another.",
    "failed": "We could not send the code just now. Try again in a few minutes.",
}


def _page(request: Request, notice: Notice, *, text: str = "", error: str = "",
          code_error: str = "", code_status: str = "", status_code: int = 200) -> Response:
    template = "account.html" if notice.accepting else "account_closed.html"
    email = account_code.masked(notice.officer.email)
    code_message = CODE_MESSAGES.get(code_status, "").format(
        email=email, minutes=get_settings().account_code_minutes)
    errors = ([("account-code", code_error)] if code_error else []) + (
        [("account", error)] if error else [])
    return render(request, template, {
        "notice": notice, "text": text, "error": error, "max_chars": MAX_CHARS,
        "code_error": code_error, "code_message": code_message, "code_kind": code_status,
        "masked_email": email, "errors": errors, "token": request.path_params.get("token", ""),
    }, status_code=status_code, headers=NO_STORE, public=True)


@router.get("/account/{token}")
async def account_form(request: Request, token: str, code: str = "") -> Response:
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    return _page(request, notice, code_status=code if code in CODE_MESSAGES else "")


@router.post("/account/{token}/code")
async def send_code(request: Request, token: str) -> Response:
    """Email the officer a one-time code for this notice."""
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    form = await request.form()
    if not notice.accepting:
        return _page(request, notice, status_code=status.HTTP_409_CONFLICT)
    assert notice.case.id is not None
    try:
        code = account_code.issue(notice.case.id, notice.notice_round)
    except account_code.TooSoon:
        outcome = "wait"
    else:
        sent = await account_code.send(notice.officer.email, notice.case.reference, code)
        outcome = "sent" if sent else "failed"
    page = f"/account/{token}/decline" if form.get("back") == "decline" else f"/account/{token}"
    return RedirectResponse(f"{page}?code={outcome}#code",
                            status_code=status.HTTP_303_SEE_OTHER)


@router.post("/account/{token}")
async def give_account(request: Request, token: str) -> Response:
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    form = await request.form()
    text = str(form.get("account", ""))
    if not notice.accepting:
        return _page(request, notice, status_code=status.HTTP_409_CONFLICT)
    assert notice.case.id is not None
    error = code_error = ""
    if not text.strip():
        error = "Enter your account"
    elif len(text.strip()) > MAX_CHARS:
        error = f"Your account must be {MAX_CHARS:,} characters or fewer"
    accepted = None
    if not error:
        try:
            accepted = account_code.check(notice.case.id, notice.notice_round,
                                          str(form.get("code", "")))
        except account_code.CodeRefused as exc:
            code_error = str(exc)
    if accepted is not None:
        try:
            _, wake_needed = record_account(notice.case.id, notice.notice_round, text,
                                            via=account_code.VIA)
        except AccountNotAccepted:
            refreshed = _notice(token) or notice
            return _page(request, refreshed, status_code=status.HTTP_409_CONFLICT)
        except ValueError as exc:  # the rules on length; the message never holds the text
            error = str(exc)
        else:
            account_code.use(accepted)
            if wake_needed:
                await actions.wake_after_account(notice.case.id)
            return RedirectResponse(f"/account/{token}/received",
                                    status_code=status.HTTP_303_SEE_OTHER)
    return _page(request, notice, text=text, error=error, code_error=code_error,
                 status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.get("/account/{token}/received")
async def account_received(request: Request, token: str) -> Response:
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    if not notice.accounts:
        return RedirectResponse(f"/account/{token}", status_code=status.HTTP_303_SEE_OTHER)
    latest = notice.accounts[-1]
    return render(request, "account_received.html",
                  {"notice": notice, "account": latest, "now": datetime.now()},
                  headers=NO_STORE, public=True)


@router.get("/account/{token}/decline")
async def decline_form(request: Request, token: str, code: str = "") -> Response:
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    return _decline_page(request, notice, code_status=code if code in CODE_MESSAGES else "")


def _decline_page(request: Request, notice: Notice, *, error: str = "", code_error: str = "",
                  code_status: str = "", status_code: int = 200) -> Response:
    """Declining is the officer's alone too: it takes the same one-time code as the account."""
    if not notice.may_decline and not notice.declined:
        return _page(request, notice, status_code=status_code)
    email = account_code.masked(notice.officer.email)
    errors = ([("confirm", error)] if error else []) + (
        [("account-code", code_error)] if code_error else [])
    return render(request, "account_decline.html", {
        "notice": notice, "error": error, "code_error": code_error, "errors": errors,
        "masked_email": email, "code_kind": code_status,
        "code_message": CODE_MESSAGES.get(code_status, "").format(
            email=email, minutes=get_settings().account_code_minutes),
    }, status_code=status_code, headers=NO_STORE, public=True)


@router.post("/account/{token}/decline")
async def decline(request: Request, token: str) -> Response:
    """The officer declines to give an account, after confirming it: the case moves on now."""
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    form = await request.form()
    if notice.declined:
        return RedirectResponse(f"/account/{token}/declined",
                                status_code=status.HTTP_303_SEE_OTHER)
    if not notice.may_decline:
        return _page(request, notice, status_code=status.HTTP_409_CONFLICT)
    error = "" if form.get("confirm") == "yes" else "Confirm that you do not want to give an account"
    assert notice.case.id is not None
    accepted, code_error = None, ""
    if not error:
        try:
            accepted = account_code.check(notice.case.id, notice.notice_round,
                                          str(form.get("code", "")))
        except account_code.CodeRefused as exc:
            code_error = str(exc)
    if accepted is None:
        return _decline_page(request, notice, error=error, code_error=code_error,
                             status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        wake_needed = decline_account(notice.case.id, notice.notice_round)
    except AccountNotAccepted:
        refreshed = _notice(token) or notice
        return _page(request, refreshed, status_code=status.HTTP_409_CONFLICT)
    account_code.use(accepted)
    if wake_needed:
        await actions.wake_after_decline(notice.case.id)
    return RedirectResponse(f"/account/{token}/declined", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/account/{token}/declined")
async def declined(request: Request, token: str) -> Response:
    notice = _notice(token)
    if notice is None:
        return _refused(request)
    if not notice.declined:
        return RedirectResponse(f"/account/{token}", status_code=status.HTTP_303_SEE_OTHER)
    return render(request, "account_declined.html", {"notice": notice},
                  headers=NO_STORE, public=True)
