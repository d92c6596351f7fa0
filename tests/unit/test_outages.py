"""A step caught by a case-DB outage runs again from the top rather than failing its run."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from flows import outages
from flows.outages import through_database_outages


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "FIRST_PAUSE_SECONDS", 0.0)


def gone() -> OperationalError:
    return OperationalError("INSERT INTO account ...", {"text": "my account"},
                            Exception("terminating connection due to administrator command"))


def test_the_body_runs_again_until_the_database_answers() -> None:
    calls: list[int] = []

    async def body() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise gone()
        return "closed_complete"

    assert asyncio.run(through_database_outages(body, "case 1")) == "closed_complete"
    assert len(calls) == 3


def test_after_the_ceiling_the_error_stands() -> None:
    async def body() -> str:
        raise gone()

    with pytest.raises(OperationalError):
        asyncio.run(through_database_outages(body, "case 1", ceiling=0.0))


def test_any_other_error_fails_at_once() -> None:
    calls: list[int] = []

    async def body() -> str:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        asyncio.run(through_database_outages(body, "case 1"))
    assert len(calls) == 1


def test_what_it_logs_never_holds_what_the_statement_was_writing(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def body() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise gone()
        return "ok"

    with caplog.at_level("WARNING"):
        asyncio.run(through_database_outages(body, "case 7"))
    assert "case 7" in caplog.text and "OperationalError" in caplog.text
    assert "my account" not in caplog.text and "INSERT" not in caplog.text


def test_a_failed_statement_does_not_carry_its_values(tmp_path: object) -> None:
    """The case DB's engines hide a failed statement's parameters, so an error that reaches a
    log or a Prefect state message never holds an account's text."""
    from sqlalchemy import text

    from infra.db import engine_for

    engine = engine_for(f"sqlite:///{tmp_path}/hidden.db")
    with pytest.raises(OperationalError) as caught, engine.connect() as connection:
        connection.execute(text("INSERT INTO no_such_table (account) VALUES (:account)"),
                           {"account": "I was rushing to a call"})
    assert "I was rushing" not in str(caught.value)
    engine.dispose()
