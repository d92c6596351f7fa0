"""Browser tests: Playwright drives Debian's Chromium against the real portal, a real Prefect
server with its UI, the project's deployments, a real process worker and the SMTP sink.

The portal runs under uvicorn in a background thread on a free loopback port, and
RPRP_PORTAL_URL points at it before the worker starts, so the links in the emails the worker
sends open this portal. The Prefect server, its UI calling the portal's gateway, the worker and
the SMTP sink are the ones every test of this process shares (tests/support/fixtures.py).
The browser may reach 127.0.0.1/localhost only; every other request is aborted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.users import use_sign_ins

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

PSD = ("psd.e2e", "psd-e2e-password")
# Reviewers sign in with the email the case record names (tests.support.cases.REVIEWER).
REVIEWER = ("sgt.reviewer@force.example", "reviewer-e2e-password")
OTHER_REVIEWER = ("sgt.other@force.example", "other-e2e-password")
USERS = (f"{PSD[0]}:{PSD[1]}:psd,{REVIEWER[0]}:{REVIEWER[1]}:reviewer,"
         f"{OTHER_REVIEWER[0]}:{OTHER_REVIEWER[1]}:reviewer")


def _wait_for(url: str, timeout: float, process: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"process for {url} exited early:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


# -- screenshots on failure ---------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


# -- the portal --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def portal_url(case_database: str) -> str:
    """Where the portal listens: chosen by `case_database` before anything else starts, so the
    worker's emails and the Prefect UI link to this portal."""
    from infra.settings import reset_settings

    url = os.environ["RPRP_PORTAL_URL"]
    os.environ["RPRP_PORTAL_USERS"] = USERS
    reset_settings()
    return url


@pytest.fixture(autouse=True)
def sign_ins(portal_url: str) -> None:
    """The browser tests' users, with these passwords, before each test: the integration tests
    in the same process sign in as the sample case's reviewer too, with passwords of their own."""
    use_sign_ins(USERS)


@pytest.fixture(scope="session")
def portal(portal_url: str, mail_sink) -> Iterator[str]:  # type: ignore[no-untyped-def]
    import uvicorn

    from portal.app import create_app

    port = urlsplit(portal_url).port
    config = uvicorn.Config(create_app(mail_dir=mail_sink.directory), host="127.0.0.1",
                            port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    _wait_for(f"{portal_url}/healthz", 30)
    yield portal_url
    server.should_exit = True
    thread.join(timeout=10)


# -- the Prefect UI ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def prefect_ui(prefect_api: str, portal_url: str) -> str:
    """Where people open the Prefect UI: the portal's gateway."""
    return f"{portal_url}/prefect"


# -- the browser --------------------------------------------------------------------------------

async def _local_only(route) -> None:  # type: ignore[no-untyped-def]
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        await route.continue_()
    else:
        await route.abort()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                   args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def new_page(browser, portal: str,  # type: ignore[no-untyped-def]
                   request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Awaitable]]:
    """A page in a fresh browser context (its own cookies): one per person in the test."""
    contexts = []

    async def make():  # type: ignore[no-untyped-def]
        context = await browser.new_context(base_url=portal, viewport={"width": 1280,
                                                                       "height": 900})
        context.set_default_timeout(30_000)
        await context.route("**/*", _local_only)
        contexts.append(context)
        return await context.new_page()

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for c, context in enumerate(contexts):
            for p, page in enumerate(context.pages):
                with contextlib.suppress(Exception):
                    await page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{c}-{p}.png"),
                                          full_page=True)
    for context in contexts:
        await context.close()
