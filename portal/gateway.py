"""The identity-aware gateway in front of Prefect: its UI at /prefect/, its API at /prefect/api/.

Only signed-in people get through, and what they may do follows their role (portal/gateway
_policy.py). Prefect itself listens on loopback behind PREFECT_SERVER_API_AUTH_STRING, which
only the gateway, the workers and the sweep hold: the browser never sees it. A resume of a
case's step is taken over here (`submit_decision`): the decider is the signed-in person, the
content is checked by the form's rules before Prefect sees it, confidential fields are sealed
into the case DB, and the submission is recorded so the flow can verify it. A resume of a
reflective practice meeting's run (the Case Review Committee's step) is taken over the same way
(`submit_crc_decision`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prefect.settings import get_current_settings
from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate
from sqlmodel import col, delete

from infra.db import session_scope
from models import DecisionSubmission, SealedText
from portal import gateway_policy as policy
from portal.auth import CRC_CHAIR, OPERATOR, PSD_DECISION_MAKER, User, current_user, login_redirect
from tasks import decisions
from tasks import meeting_decisions as crc
from tasks.people import NotAllowedToDecide, entitlement
from tasks.records import lock_case

log = logging.getLogger("rprp.gateway")

PREFIX = "/prefect"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host", "cookie", "authorization",
              "content-length", "origin", "referer"}
DROPPED_FROM_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "set-cookie",
                         "access-control-allow-origin", "access-control-allow-credentials",
                         "access-control-allow-methods", "access-control-allow-headers"}


@dataclass(frozen=True)
class Upstream:
    """Where Prefect listens and the credentials it wants (from the process's Prefect settings)."""

    base_url: str
    auth_string: str

    @classmethod
    def from_settings(cls) -> Upstream:
        api = get_current_settings().api
        url = (api.url or "http://127.0.0.1:4200/api").rstrip("/")
        secret = api.auth_string.get_secret_value() if api.auth_string else ""
        return cls(url.removesuffix("/api"), secret)

    def headers(self) -> dict[str, str]:
        if not self.auth_string:
            return {}
        token = base64.b64encode(self.auth_string.encode()).decode()
        return {"Authorization": f"Basic {token}"}


def reject(reason: str) -> dict[str, Any]:
    """What Prefect's UI shows as a red toast, keeping its Resume form open as typed."""
    return {"status": "REJECT", "details": {"reason": reason}, "state": None}


RETRIED = {429, 502, 503}


async def _send_with_retries(client: httpx.AsyncClient, method: str, url: str,
                             attempts: int = 5, **kwargs: Any) -> httpx.Response:
    """Prefect on SQLite answers 503 while its database is busy; its own client retries, so
    the gateway does too (a refused write changed nothing, so sending it again is safe)."""
    for attempt in range(attempts):
        response = await client.request(method, url, **kwargs)
        if response.status_code not in RETRIED or attempt + 1 == attempts:
            return response
        await asyncio.sleep(0.5 * 2 ** attempt)
    raise AssertionError("unreachable")


async def _paused_for(client: httpx.AsyncClient, upstream: Upstream, flow_run_id: str,
                      key: str) -> bool:
    response = await _send_with_retries(client, "GET",
                                        f"{upstream.base_url}/api/flow_runs/{flow_run_id}",
                                        headers=upstream.headers())
    if response.status_code != 200:
        return False
    state = response.json().get("state") or {}
    details = state.get("state_details") or {}
    return state.get("type") == "PAUSED" and details.get("pause_key") == key


async def submit_decision(user: User, flow_run_id: str, run_input: Any,
                          client: httpx.AsyncClient,
                          upstream: Upstream | None = None) -> dict[str, Any] | None:
    """Check, seal, record and forward a person's answer to a case step (or a meeting's CRC step).

    Returns Prefect's answer (or a REJECT that changed nothing), or None when the run is neither
    a case's nor a meeting's, so the caller forwards it as it is (operators only).
    """
    upstream = upstream or Upstream.from_settings()
    with session_scope() as session:
        is_case = decisions.case_of_run(session, flow_run_id) is not None
        is_meeting = not is_case and crc.meeting_of_run(session, flow_run_id) is not None
    if is_meeting:
        return await submit_crc_decision(user, flow_run_id, run_input, client, upstream)
    if not is_case:
        return None
    with session_scope() as session:
        step = decisions.step_waiting_on(session, flow_run_id)
        if step is None:
            return reject("This case is not waiting for a person's decision now. Reload the "
                          "page to see where it is.")
        case = lock_case(session, step.case_id)
        try:
            decided_as = entitlement(case, user.email, decision_maker=user.has(PSD_DECISION_MAKER),
                                     reviewer_may=step.reviewer_may, psd_may=step.psd_may)
        except NotAllowedToDecide as exc:
            return reject(str(exc))
    if not await _paused_for(client, upstream, flow_run_id, step.wait.key):
        return reject("This decision is not waiting for an answer at the moment (it may have "
                      "just been answered). Reload the page and try again.")
    data = _hydrated(run_input)
    with session_scope() as session:
        case = lock_case(session, step.case_id)
        forwarded, errors, submission = decisions.take(session, case, step, data, user.email,
                                                       decided_as)
        if forwarded is None or submission is None:
            return reject(decisions.refusal(errors))
        submission_id = submission.id
    tokens = decisions.sealed_tokens(step, forwarded)
    payload = forwarded.model_dump(mode="json")
    asked = await _asked_fields(client, upstream, flow_run_id, step.wait.key)
    if asked is not None:
        payload, unasked = decisions.fit_to_asked(step.form, payload, asked)
        if unasked:
            _withdraw(submission_id, tokens)
            return reject("This step was asked with an earlier version of its form, which has "
                          f"no {', '.join(repr(t) for t in unasked)}. Reload the page and "
                          "answer the form it shows.")
    return await _resume(client, upstream, flow_run_id, payload,
                         withdraw=lambda: _withdraw(submission_id, tokens))


async def _asked_fields(client: httpx.AsyncClient, upstream: Upstream, flow_run_id: str,
                        key: str) -> set[str] | None:
    """The fields of the form the run stored when it paused on `key` (it may be an earlier
    version of the form this code builds); None if it cannot be read, when the answer goes as
    it is and Prefect checks it."""
    response = await _send_with_retries(
        client, "GET", f"{upstream.base_url}/api/flow_runs/{flow_run_id}/input/"
        f"suspended-{key}-schema", headers=upstream.headers())
    if response.status_code != 200:
        return None
    try:
        properties = json.loads(response.text).get("properties")
    except (ValueError, AttributeError):
        return None
    return set(properties) if isinstance(properties, dict) else None


async def submit_crc_decision(user: User, flow_run_id: str, run_input: Any,
                              client: httpx.AsyncClient, upstream: Upstream) -> dict[str, Any]:
    """The Case Review Committee's answer on a reflective practice meeting's run: only the CRC
    decides; a plan holding a recorded name is refused here, so no Prefect record ever holds it;
    the plan is sealed into the case DB and Prefect gets its token; the decider is this person."""
    if not user.has(CRC_CHAIR):
        return reject("Only the Case Review Committee (role crc-chair) decides on a "
                      "reflective practice meeting's learning.")
    with session_scope() as session:
        meeting = crc.meeting_of_run(session, flow_run_id)
        step = crc.step_waiting_on(session, meeting) if meeting is not None else None
    if step is None or not await _paused_for(client, upstream, flow_run_id, step.key):
        return reject("This meeting is not waiting for the Case Review Committee's decision "
                      "now (it may have just been answered). Reload the page to see where it is.")
    data = _hydrated(run_input)
    with session_scope() as session:
        meeting = crc.meeting_of_run(session, flow_run_id)
        assert meeting is not None
        forwarded, errors, submission = crc.take(session, meeting, step, data, user.email)
        if forwarded is None or submission is None:
            return reject(decisions.refusal(errors))
        submission_id = submission.id
    assert submission_id is not None

    def withdraw() -> None:
        with session_scope() as session:
            crc.withdraw(session, submission_id)

    return await _resume(client, upstream, flow_run_id, forwarded, withdraw=withdraw)


def _hydrated(run_input: Any) -> Any:
    """The Resume form's answer as Prefect would read it; None if it was not sent properly."""
    try:
        return hydrate(run_input if isinstance(run_input, dict) else {},
                       HydrationContext(raise_on_error=True))
    except Exception:  # noqa: BLE001  (any hydration failure: the form was not sent properly)
        return None


async def _resume(client: httpx.AsyncClient, upstream: Upstream, flow_run_id: str,
                  run_input: Any, withdraw: Callable[[], None]) -> dict[str, Any]:
    """Forward a checked, recorded answer to Prefect; if Prefect does not take it, `withdraw`
    forgets what was recorded for it, so the next attempt starts clean."""
    for delay in (*FORM_NOT_SAVED_YET_RETRIES, None):
        response = await _send_with_retries(
            client, "POST", f"{upstream.base_url}/api/flow_runs/{flow_run_id}/resume",
            json={"run_input": run_input}, headers=upstream.headers())
        result = response.json() if response.headers.get("content-type", "").startswith(
            "application/json") else {}
        if delay is None or not _form_not_saved_yet(result):
            break
        await asyncio.sleep(delay)
    if response.status_code not in (200, 201) or result.get("status") != "ACCEPT":
        withdraw()
        if response.status_code in (200, 201) and result.get("status"):
            return dict(result)
        log.warning("Prefect refused a resume: HTTP %s", response.status_code)
        return reject("Prefect did not take the decision. Reload the page and try again.")
    return dict(result)


# Prefect suspends a run a moment before it saves the form's schema, and refuses an answer in
# between ("Run input schema not found"); with the fork server a person (or a script) can answer
# inside that moment. The answer is checked and recorded already: ask again shortly, for up to
# about five seconds, before giving up.
FORM_NOT_SAVED_YET_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.2, 2.0)


def _form_not_saved_yet(result: dict[str, Any]) -> bool:
    details = result.get("details") or {}
    return (result.get("status") == "REJECT" and isinstance(details, dict)
            and details.get("reason") == "Run input schema not found.")


def _withdraw(submission_id: int | None, tokens: list[str]) -> None:
    """Prefect did not take the answer: forget its submission and its sealed text (only
    theirs: another submission of the same step may have been taken a moment before)."""
    with session_scope() as session:
        session.exec(delete(DecisionSubmission).where(
            col(DecisionSubmission.id) == submission_id))
        if tokens:
            session.exec(delete(SealedText).where(col(SealedText.token).in_(tokens)))


# -- the reverse proxy -----------------------------------------------------------------------

router = APIRouter(include_in_schema=False)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One connection pool to Prefect for the portal's life."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0)) as client:
        app.state.gateway_client = client
        yield


def _client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, "gateway_client", None)
    if client is None:  # an app driven without its lifespan (ASGI transport in tests)
        client = request.app.state.gateway_client = httpx.AsyncClient(timeout=60.0)
    return client


def _forward_headers(request: Request, upstream: Upstream) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    headers.update(upstream.headers())
    return headers


def _response_headers(response: httpx.Response, rewritten: bool) -> dict[str, str]:
    dropped = DROPPED_FROM_RESPONSE | ({"content-length", "content-encoding"} if rewritten
                                       else set())
    return {k: v for k, v in response.headers.items() if k.lower() not in dropped}


def _refused(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "exception_message": message},
                        status_code=status_code)


@router.api_route(PREFIX + "/api/{path:path}", methods=METHODS)
async def prefect_api(path: str, request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return _refused(401, "Sign in to the RPRP portal first.")
    if not policy.may_use_ui(user):
        return _refused(403, policy.NO_CASES)
    upstream = Upstream.from_settings()
    client = _client(request)
    body = await request.body()
    resume_of = policy.resume_target(request.method, path)
    if resume_of is not None:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return JSONResponse(reject("The form was not sent properly: reload the page."))
        run_input = payload.get("run_input") if isinstance(payload, dict) else None
        result = await submit_decision(user, resume_of, run_input, client, upstream)
        if result is not None:
            return JSONResponse(result)
        if not user.has(OPERATOR):
            return _refused(403, policy.NOT_YOURS)
    with session_scope() as session:
        rule = policy.decide(user, request.method, path, body, session)
    if rule.refusal is not None:
        return _refused(rule.status, rule.refusal)
    if rule.empty is not None:
        return JSONResponse(rule.empty)
    url = f"{upstream.base_url}/api/{path}"
    outgoing = client.build_request(request.method, url, params=request.query_params,
                                    content=rule.body if rule.body is not None else body,
                                    headers=_forward_headers(request, upstream))
    response = await client.send(outgoing, stream=True)
    if rule.check is None:
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 headers=_response_headers(response, False),
                                 background=_closer(response))
    await response.aread()
    await response.aclose()
    content = response.content
    if response.status_code == 200:
        with session_scope() as session:
            checked = policy.check_response(rule.check, user, content, session)
        if checked is None:
            return _refused(403, policy.NOT_YOURS)
        content = checked
    return Response(content, status_code=response.status_code,
                    headers=_response_headers(response, True))


@router.api_route(PREFIX, methods=["GET", "HEAD"])
@router.api_route(PREFIX + "/{path:path}", methods=["GET", "HEAD"])
async def prefect_ui(request: Request, path: str = "") -> Response:
    """The Prefect UI's own files, for signed-in people; its settings say the gateway holds the
    credentials, so the UI never asks for them."""
    user = current_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return login_redirect(target)
    if not policy.may_use_ui(user):
        return _refused(403, policy.NO_CASES)
    upstream = Upstream.from_settings()
    client = _client(request)
    url = f"{upstream.base_url}{PREFIX}/{path}"
    outgoing = client.build_request(request.method, url, params=request.query_params,
                                    headers=_forward_headers(request, upstream))
    response = await client.send(outgoing, stream=True)
    if path.rstrip("/").endswith("ui-settings") and response.status_code == 200:
        await response.aread()
        await response.aclose()
        settings = response.json()
        settings["auth"] = None  # the gateway authenticates to Prefect, not the browser
        return JSONResponse(settings, headers={"Cache-Control": "no-store"})
    return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                             headers=_response_headers(response, False),
                             background=_closer(response))


@router.websocket(PREFIX + "/api/{path:path}")
async def prefect_socket(websocket: WebSocket, path: str) -> None:
    """Live events and logs are not passed through: the UI falls back to polling the API,
    which the gateway can limit by role."""
    await websocket.close(code=1008)


def _closer(response: httpx.Response):  # type: ignore[no-untyped-def]
    from starlette.background import BackgroundTask

    return BackgroundTask(response.aclose)
