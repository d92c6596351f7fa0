"""Alembic, driven from code: `rprp up`, the portal and the tests all upgrade the same way."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from infra.db import normalise_url
from infra.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def known_revisions() -> set[str]:
    """Every schema revision this code's migrations know (a backup from newer code has another)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {script.revision for script in scripts.walk_revisions()}
