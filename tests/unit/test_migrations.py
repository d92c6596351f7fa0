"""Schema changes go through Alembic: the migrations must build exactly the models' schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import models  # noqa: F401  (registers the tables)
from infra.db import get_engine


def test_migrated_database_matches_the_models(case_database: str) -> None:
    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_cases_imported_before_0015_get_their_report_working_days(tmp_path: Path) -> None:
    """The upgrade counts the working days of history imported under 0014, so the trends'
    time to report still counts those reports."""
    from alembic import command

    from infra.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0014")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO officer (collar_number, name, email, rank, probationer, "
            "special_constable, unit, employment_status) "
            "VALUES ('1', 'PC A', '', 'constable', 0, 0, 'U', 'serving')"))
        for case_id, referred, filed in ((1, "2024-03-28", "2024-04-05"),
                                         (2, "2024-01-10", None)):
            connection.execute(text(
                "INSERT INTO rprp_case (id, state, route, origin, concern_reported_on, "
                "referred_on, incident_on, allegation_category, rprp_reason, "
                "behaviour_summary, public_summary, sexual_conduct, aa_decision_maker, "
                "aa_decision_maker_role, officer_id, reviewer_name, reviewer_email, "
                "reviewer_rank_or_grade, reviewer_basis, reviewer_aa_opinion, notice_round, "
                "transition_count, rejected_inputs, step_answers, account_deadline_missed, "
                "wake_requested, closed_reason, created_at, updated_at) VALUES (:id, "
                "'closed_complete', 'severity_assessment', 'conduct_matter', :day, :day, :day, "
                "'', '', '', '', 0, 'history-import', '', 1, '', '', '', 'line_manager', '', 1, "
                "0, 0, 0, 0, 0, '', '2026-01-01', '2026-01-01')"),
                {"id": case_id, "day": referred})
            connection.execute(text(
                "INSERT INTO imported_case (case_id, reference, outcome, report_filed_on, "
                "imported_at) VALUES (:id, :ref, 'closed_complete', :filed, '2026-01-01')"),
                {"id": case_id, "ref": f"OLD-{case_id}", "filed": filed})
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as connection:
        days = dict(connection.execute(text(
            "SELECT case_id, report_working_days FROM imported_case")).tuples().all())
    engine.dispose()
    # 28 March 2024 -> 5 April: Good Friday and Easter Monday are not working days.
    assert days == {1: 4, 2: None}
