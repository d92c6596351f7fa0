"""`rprp users` as people run it (the real command, its own SQLite case DB in a fresh data
dir), the file modes of what the product creates, and the refusal to listen beyond loopback
with development defaults."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import reset_settings
from rprp.cli import main

PASSWORD = "correct-horse-battery"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data dir whose default SQLite file is the case DB, as on a new machine."""
    directory = tmp_path / "data"
    monkeypatch.setenv("RPRP_DATA_DIR", str(directory))
    monkeypatch.setenv("RPRP_DATABASE_URL", "")
    monkeypatch.setenv("RPRP_PORTAL_USERS", "")
    reset_settings()
    umask = os.umask(0o022)
    yield directory
    os.umask(umask)
    monkeypatch.undo()
    reset_settings()


def rprp(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
         stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_list_disable_and_reset_password(data: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from portal import users

    run = lambda *args, stdin="": rprp(capsys, monkeypatch, *args, stdin=stdin)  # noqa: E731
    code, out, err = run("users", "add", "dana@force.example", "--role", "reviewer", "--name",
                         "Sgt Dana", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert out.strip() == "Added dana@force.example (reviewer)" and PASSWORD not in out + err
    assert users.verify("dana@force.example", PASSWORD) is not None

    assert run("users", "add", "dana@force.example", "--role", "psd", "--password-stdin",
               stdin=PASSWORD + "\n")[::2] == (
        1, "rprp users: there is already a user 'dana@force.example'\n")
    code, _, err = run("users", "add", "x@force.example", "--role", "boss",
                       "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1 and err.count("\n") == 1 and "unknown role 'boss'" in err
    code, _, err = run("users", "add", "y@force.example", "--role", "psd", "--password-stdin",
                       stdin="short\n")
    assert code == 1 and "12 characters or more" in err
    with pytest.raises(SystemExit, match="use --password-stdin"):
        run("users", "add", "z@force.example", "--role", "psd")  # no terminal to ask on

    out = run("users", "list")[1]
    assert "dana@force.example" in out and "password" in out and "Sgt Dana" in out
    assert "x@force.example" not in out and "y@force.example" not in out

    assert run("users", "disable", "dana@force.example")[0] == 0
    assert users.verify("dana@force.example", PASSWORD) is None
    assert "disabled" in run("users", "list")[1]
    assert run("users", "enable", "dana@force.example")[0] == 0
    code, out, err = run("users", "reset-password", "dana@force.example", "--password-stdin",
                         stdin="another-long-password\n")
    assert code == 0, err
    assert users.verify("dana@force.example", PASSWORD) is None
    assert users.verify("dana@force.example", "another-long-password") is not None
    assert run("users", "disable", "nobody@force.example")[::2] == (
        1, "rprp users: there is no user 'nobody@force.example'\n")


def test_what_the_product_creates_is_for_its_user_only(data: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from infra.settings import get_settings

    assert rprp(capsys, monkeypatch, "users", "list")[0] == 0  # under umask 022 before
    assert mode(data) == 0o700
    assert mode(data / "cases.db") == 0o600
    os.umask(0o022)
    monkeypatch.setenv("RPRP_SECRET_KEY", "")
    reset_settings()
    assert get_settings().signing_key
    assert mode(data / "secret.key") == 0o600
    # A database an older version left world-readable is tightened on the next start.
    (data / "cases.db").chmod(0o644)
    assert rprp(capsys, monkeypatch, "users", "list")[0] == 0
    assert mode(data / "cases.db") == 0o600


def test_rprp_up_beyond_loopback_refuses_demo_users_and_env_passwords(
        data: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RPRP_PORTAL_USERS", "psd:psd-password:psd")
    code, _, err = rprp(capsys, monkeypatch, "up", "--host", "10.1.2.3")
    assert code == 2
    assert "run with --no-demo-users" in err and "unset it and manage sign-ins" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_needs_none_of_it(data: Path, host: str) -> None:
    from rprp.exposure import refusals

    assert refusals(host, demo_users=True) == []


def test_a_demo_password_still_in_use_is_named(data: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from infra.db import create_schema
    from portal.users import DEMO_USERS, ensure_demo_users, reset_password
    from rprp.exposure import refusals

    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "admin:a-long-secret")
    monkeypatch.setenv("RPRP_SECRET_KEY", "a-force-secret-key-from-a-vault")
    reset_settings()
    create_schema()
    ensure_demo_users()
    for demo in DEMO_USERS[1:]:
        reset_password(demo.username, "a-private-password-" + demo.username)
    psd = DEMO_USERS[0].username
    assert refusals("0.0.0.0") == [
        f"user {psd} still has its published password: `rprp users reset-password {psd}` "
        f"or `rprp users disable {psd}`"]
    reset_password(psd, "a-private-password-psd")
    assert refusals("0.0.0.0") == []
