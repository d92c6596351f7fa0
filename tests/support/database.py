"""A throwaway PostgreSQL database per test session, so runs never see each other's cases."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url


def _admin_dsn(base_url: str) -> str:
    url = make_url(base_url.replace("postgresql+psycopg://", "postgresql://"))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_test_database(base_url: str, name: str) -> str:
    """Create database `name` on the server of base_url; fail loudly if it is unreachable."""
    with psycopg.connect(_admin_dsn(base_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://"))
    return url.set(database=name).render_as_string(hide_password=False)


def drop_test_database(base_url: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_admin_dsn(base_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
