"""Single sign-on in a real browser against a real OpenID Connect provider on loopback
(node-oidc-provider): the provider's groups claim becomes the person's RPRP role, the user is
created on first sign-in, and someone in no mapped group is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import PortalUser
from tests.support.oidc_provider import Provider, oidc_provider

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ACCOUNTS = {
    "sso.reviewer": {"email": "sso.reviewer@force.example", "name": "Sgt Sso Reviewer",
                     "groups": ["All staff", "RPRP Reviewers"]},
    "sso.psd": {"email": "sso.psd@force.example", "name": "Sso PSD",
                "groups": ["RPRP PSD"]},
    "sso.nobody": {"email": "sso.nobody@force.example", "name": "No Role",
                   "groups": ["All staff"]},
}


@pytest.fixture
def sso(portal: str, session_dir: Path) -> Iterator[Provider]:
    with oidc_provider(f"{portal}/login/sso/callback", ACCOUNTS,
                       session_dir / "oidc-provider.log") as provider:
        settings = {"RPRP_OIDC_ISSUER": provider.issuer,
                    "RPRP_OIDC_CLIENT_ID": provider.client_id,
                    "RPRP_OIDC_CLIENT_SECRET": provider.client_secret,
                    "RPRP_OIDC_GROUP_ROLES": "RPRP PSD=psd,RPRP Reviewers=reviewer",
                    "RPRP_OIDC_LABEL": "the force account"}
        os.environ.update(settings)
        reset_settings()
        try:
            yield provider
        finally:
            for key in settings:
                os.environ.pop(key, None)
            reset_settings()


async def sign_in_at_provider(page: Page, login: str) -> None:
    await page.goto("/cases")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_role("button", name="Sign in with the force account").click()
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill("any password")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()  # the provider's consent


def user(username: str) -> PortalUser | None:
    with session_scope() as session:
        return session.exec(select(PortalUser).where(PortalUser.username == username)).first()


async def test_sso_signs_in_with_the_role_its_group_maps_to(new_page, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    page: Page = await new_page()
    await sign_in_at_provider(page, "sso.reviewer")
    await expect(page.get_by_role("heading", name="Cases", exact=True)).to_be_visible()
    await expect(page.get_by_text("Signed in as sso.reviewer@force.example (Reviewer)")) \
        .to_be_visible()
    await expect(page.get_by_role("link", name="New referral")).to_have_count(0)
    record = user("sso.reviewer@force.example")
    assert record is not None
    assert (record.roles, record.oidc_issuer, record.oidc_subject, record.password_hash) == (
        "reviewer", sso.issuer, "sso.reviewer", None)

    psd: Page = await new_page()
    await sign_in_at_provider(psd, "sso.psd")
    await expect(psd.get_by_role("link", name="New referral")).to_be_visible()
    assert user("sso.psd@force.example").roles == "psd"  # type: ignore[union-attr]


async def test_sso_refuses_someone_in_no_mapped_group(new_page, sso: Provider) -> None:  # type: ignore[no-untyped-def]
    page: Page = await new_page()
    await sign_in_at_provider(page, "sso.nobody")
    await expect(page.get_by_text("Your account has no role in RPRP")).to_be_visible()
    assert user("sso.nobody@force.example") is None
    await page.goto("/cases")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
