"""The RPRP web portal: PSD referrals, case pages, the officer's account link, the outbox.

    uvicorn --factory portal.app:create_app      (or: rprp portal)
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.db import get_engine
from portal import (
    account,
    auth,
    cases,
    foi,
    gateway,
    learning,
    learning_board,
    meetings,
    outbox,
    referrals,
    reports,
    sso,
    users,
)
from portal.referral_form import NOUNS, api_errors
from portal.sessions import ServerSessionMiddleware
from portal.validation import field_errors
from portal.web import HERE, render

log = logging.getLogger("rprp.portal")

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
TITLES = {400: "There is a problem with the request", 401: "Sign in required",
          403: "You cannot do this", 404: "Page not found", 405: "Page not found",
          409: "This cannot be done now"}


def create_app(mail_dir: Path | None = None) -> FastAPI:
    """The portal app; `mail_dir` overrides where the outbox page reads the SMTP sink from."""
    app = FastAPI(
        title="RPRP portal",
        summary="Reflective Practice Review Process: referrals and case status",
        version="1.0",
        docs_url=None, redoc_url=None,  # offline: no CDN for Swagger UI; /openapi.json is served
        lifespan=gateway.lifespan,
    )
    app.state.mail_dir = mail_dir
    users.bootstrap_users()
    app.add_middleware(ServerSessionMiddleware)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        headers = response.headers
        if request.url.path.startswith(gateway.PREFIX + "/"):
            return response  # Prefect's UI and API, with Prefect's own headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Officers' links carry a token: never send it on as a Referer.
        headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (auth, sso, referrals, cases, account, outbox, foi, reports, meetings,
                   learning_board, learning, gateway):  # the board's /learning/board first
        app.include_router(module.router)
    app.include_router(referrals.api)
    app.include_router(cases.api)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Liveness and the case database."""
        try:
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001
            log.error("health check: case DB unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "error", "database": "unavailable"},
                                status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.exception_handler(auth.LoginRequired)
    async def login_required(request: Request, exc: auth.LoginRequired) -> Response:
        return auth.login_redirect(exc.next_path)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc.errors(), NOUNS if request.url.path == "/api/referrals"
                              else None)
        return JSONResponse({"detail": api_errors(errors)},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=exc.headers)
        title = TITLES.get(exc.status_code, "Sorry, there is a problem")
        message = exc.detail if isinstance(exc.detail, str) else ""
        if exc.status_code in (404, 405):
            message = "If you typed the web address, check it is correct."
        return render(request, "error.html", {"title": title, "message": message},
                      status_code=exc.status_code,
                      headers=dict(exc.headers) if exc.headers else None)

    return app
