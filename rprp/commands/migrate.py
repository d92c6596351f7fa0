"""`rprp migrate`: upgrade the case DB through Alembic (safe to run on every start)."""

from __future__ import annotations

from infra.db import create_schema
from infra.settings import get_settings


def run(argv: list[str]) -> int:
    create_schema()
    print(f"case database at head: {get_settings().case_database_url}")
    return 0
