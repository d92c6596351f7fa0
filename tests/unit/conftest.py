"""Unit-test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Argon2 at its cheapest parameters: the unit tests prove what is hashed and checked, not
    how slowly (the product's own parameters are argon2-cffi's defaults, used everywhere else)."""
    from portal import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher.from_parameters(CHEAPEST))
    yield
