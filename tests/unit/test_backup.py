"""`rprp backup` and `rprp restore` on real databases (SQLite files, and PostgreSQL when the tests
have it): everything comes back together, and anything wrong is refused before a byte changes.
The whole stack restored mid-case and the case finished: tests/integration/test_backup_restore.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from infra.db import normalise_url
from infra.migrations import upgrade_to_head
from infra.settings import Settings
from rprp import backup
from rprp.backup import BackupError, read_manifest, restore_backup, take_backup
from rprp.cli import main
from tests.support.database import create_test_database, drop_test_database

PG_BASE = os.environ.get("RPRP_TEST_DATABASE_URL", "")
KINDS = ["sqlite", "postgresql"] if PG_BASE else ["sqlite"]


@dataclass
class Installation:
    """A data dir with a case DB (migrated, one row in it) and a stand-in Prefect database."""

    settings: Settings
    prefect_url: str

    @property
    def data_dir(self) -> Path:
        return self.settings.resolved_data_dir


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def _write(url: str, *statements: str) -> None:
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def make_installation(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    made: list[str] = []

    def make(name: str, kind: str, filled: bool = True, secret_key: str = "") -> Installation:
        data_dir = tmp_path / name
        if kind == "postgresql":
            suffix = uuid.uuid4().hex[:8]
            cases = create_test_database(PG_BASE, f"rprp_backup_cases_{suffix}")
            prefect = create_test_database(PG_BASE, f"rprp_backup_prefect_{suffix}")
            made.extend([cases, prefect])
            cases, prefect = cases.replace("+psycopg", ""), prefect.replace("+psycopg", "")
        else:
            cases = f"sqlite:///{data_dir / 'cases.db'}"
            prefect = f"sqlite:///{data_dir / 'prefect' / 'prefect.db'}"
        settings = Settings(data_dir=data_dir, database_url=cases, secret_key=secret_key)
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        if filled:
            upgrade_to_head(cases)
            _write(cases, "INSERT INTO portaluser (username, email, display_name, roles, disabled, "
                          "created_at, updated_at) VALUES ('psd@force.example', "
                          "'psd@force.example', 'PSD', 'psd', false, CURRENT_TIMESTAMP, "
                          "CURRENT_TIMESTAMP)")
            if kind == "sqlite":
                (data_dir / "prefect").mkdir(exist_ok=True)
            _write(prefect, "CREATE TABLE flow_run (id varchar(36) PRIMARY KEY, state text)",
                   "INSERT INTO flow_run VALUES ('run-1', 'PAUSED')")
            assert settings.signing_key  # the key file, made as rprp up makes it
            (data_dir / backup.PREFECT_AUTH).write_text("rprp:prefect-password")
        return Installation(settings, prefect if kind == "postgresql" else "")

    yield make
    for url in made:
        drop_test_database(PG_BASE, url)


def _prefect_url(installation: Installation) -> str:
    return backup.databases(installation.settings, installation.prefect_url)[0].url


@pytest.mark.parametrize("kind", KINDS)
def test_a_backup_restores_both_databases_and_the_keys_together(make_installation, tmp_path,
                                                                kind) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", kind)
    archive = tmp_path / "backup.tar.gz"
    manifest = take_backup(source.settings, archive, source.prefect_url)

    assert archive.stat().st_mode & 0o777 == 0o600, "it holds the key: its owner's only"
    assert manifest["databases"]["cases"]["kind"] == kind
    assert manifest["case_db_revision"], "the case DB's schema revision is recorded"
    assert set(manifest["files"]) >= {"secret.key", backup.PREFECT_AUTH}
    assert read_manifest(archive) == manifest

    target = make_installation("target", kind, filled=False)
    restore_backup(target.settings, archive, target.prefect_url)
    assert _rows(target.settings.case_database_url, "SELECT email FROM portaluser") == [
        ("psd@force.example",)]
    assert _rows(_prefect_url(target), "SELECT id, state FROM flow_run") == [("run-1", "PAUSED")]
    assert target.settings.signing_key == source.settings.signing_key
    assert (target.data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (target.data_dir / backup.PREFECT_AUTH).read_text() == "rprp:prefect-password"


def test_backup_and_restore_through_the_command(make_installation, tmp_path, monkeypatch,
                                                capsys) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", "sqlite")
    archive = tmp_path / "cmd.tar.gz"
    monkeypatch.setenv("RPRP_DATA_DIR", str(source.data_dir))
    monkeypatch.setenv("RPRP_DATABASE_URL", source.settings.case_database_url)
    monkeypatch.delenv("RPRP_SECRET_KEY")
    from infra.settings import reset_settings

    reset_settings()
    try:
        assert main(["backup", "--out", str(archive)]) == 0
        assert "backup written" in capsys.readouterr().out
        assert main(["backup", "--out", str(archive)]) == 1  # never over an existing one
        assert "already exists" in capsys.readouterr().err
        assert main(["restore", "--check", str(archive)]) == 0
        assert "whole" in capsys.readouterr().out

        target = make_installation("target", "sqlite", filled=False)
        monkeypatch.setenv("RPRP_DATA_DIR", str(target.data_dir))
        monkeypatch.setenv("RPRP_DATABASE_URL", target.settings.case_database_url)
        reset_settings()
        assert main(["restore", str(archive)]) == 0
        assert "restored from" in capsys.readouterr().out
        assert _rows(target.settings.case_database_url, "SELECT email FROM portaluser")
    finally:
        monkeypatch.undo()
        reset_settings()


def _snapshot(installation: Installation) -> list[object]:
    """Everything a restore could change, to show a refused one changed nothing."""
    rows: list[object] = []
    for url in (installation.settings.case_database_url, _prefect_url(installation)):
        try:
            rows.append(_rows(url, "SELECT count(*) FROM flow_run") if "prefect" in url
                        else _rows(url, "SELECT email FROM portaluser"))
        except Exception as error:  # noqa: BLE001 - an empty database has no such table
            rows.append(type(error).__name__)
    for name in ("secret.key", backup.PREFECT_AUTH):
        path = installation.data_dir / name
        rows.append(path.read_text() if path.exists() else None)
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_that_holds_data_is_not_overwritten_without_replace(
        make_installation, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", kind)
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive, source.prefect_url)
    _write(_prefect_url(source), "INSERT INTO flow_run VALUES ('run-2', 'RUNNING')")
    before = _snapshot(source)
    with pytest.raises(BackupError, match="already holds data.*--replace"):
        restore_backup(source.settings, archive, source.prefect_url)
    assert _snapshot(source) == before

    restore_backup(source.settings, archive, source.prefect_url, replace=True)
    assert _rows(_prefect_url(source), "SELECT id FROM flow_run") == [("run-1",)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_restore_that_fails_part_way_puts_everything_back(
        make_installation, tmp_path, monkeypatch, kind) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", kind)
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive, source.prefect_url)
    _write(_prefect_url(source), "INSERT INTO flow_run VALUES ('run-2', 'RUNNING')")
    before = _snapshot(source)
    real = backup._copy_in

    def fail_on_the_case_db(database: backup.Database, copy: Path) -> None:
        if database.name == "cases" and not copy.name.startswith("previous-"):
            raise BackupError("disk full (simulated)")
        real(database, copy)

    monkeypatch.setattr(backup, "_copy_in", fail_on_the_case_db)
    with pytest.raises(BackupError, match="disk full"):
        restore_backup(source.settings, archive, source.prefect_url, replace=True)
    assert _snapshot(source) == before, "Prefect's database is back as it was, run-2 and all"


def test_a_damaged_or_foreign_archive_is_refused(make_installation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", "sqlite")
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive)
    target = make_installation("target", "sqlite", filled=False)

    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name == "secret.key":
                body = b"another key"
                member.size = len(body)
            import io

            out.addfile(member, io.BytesIO(body))
    with pytest.raises(BackupError, match="damaged: secret.key"):
        restore_backup(target.settings, damaged)

    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as out:
        out.add(archive, arcname="something.tar.gz")
    with pytest.raises(BackupError, match="not an RPRP backup"):
        restore_backup(target.settings, foreign)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(BackupError, match="cannot be read"):
        restore_backup(target.settings, tmp_path / "junk.tar.gz")
    with pytest.raises(BackupError, match="is not a file"):
        restore_backup(target.settings, tmp_path / "missing.tar.gz")
    assert not (target.data_dir / "cases.db").exists(), "nothing was restored"
    assert not (target.data_dir / "secret.key").exists()


def test_refused_while_rprp_up_runs_on_the_data_dir(make_installation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", "sqlite")
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive)
    target = make_installation("target", "sqlite", filled=False)
    with (target.data_dir / "rprp-up.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what rprp up holds while it runs
        with pytest.raises(BackupError, match="rprp up is running"):
            restore_backup(target.settings, archive)
    assert not (target.data_dir / "cases.db").exists()


def test_a_different_signing_key_in_the_environment_is_refused(make_installation,
                                                               tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", "sqlite")
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive)
    target = make_installation("target", "sqlite", filled=False, secret_key="a-newer-key")
    with pytest.raises(BackupError, match="RPRP_SECRET_KEY.*not the backup's signing key"):
        restore_backup(target.settings, archive)
    assert not (target.data_dir / "cases.db").exists()
    restore_backup(target.settings, archive, keep_current_key=True)
    assert not (target.data_dir / "secret.key").exists(), "the current key was kept"
    assert (target.data_dir / "cases.db").exists()


def test_a_backup_from_newer_code_or_another_kind_of_database_is_refused(
        make_installation, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = make_installation("source", "sqlite")
    archive = tmp_path / "b.tar.gz"
    take_backup(source.settings, archive)
    target = make_installation("target", "sqlite", filled=False)

    newer = tmp_path / "newer.tar.gz"
    _rewrite_manifest(archive, newer, case_db_revision="9999_from_the_future")
    with pytest.raises(BackupError, match="revision 9999_from_the_future.*does not know"):
        restore_backup(target.settings, newer)

    other_kind = tmp_path / "pg.tar.gz"
    _rewrite_manifest(archive, other_kind,
                      databases={"prefect": {"kind": "postgresql", "member": "prefect.db"},
                                 "cases": {"kind": "sqlite", "member": "cases.db"}})
    with pytest.raises(BackupError, match="prefect database is postgresql.*"
                                          "RPRP_PREFECT_DATABASE_URL"):
        restore_backup(target.settings, other_kind)
    assert not (target.data_dir / "cases.db").exists()


def _rewrite_manifest(archive: Path, out: Path, **changes: object) -> None:
    import io

    with tarfile.open(archive) as tar, tarfile.open(out, "w:gz") as new:
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name == "manifest.json":
                body = json.dumps({**json.loads(body), **changes}).encode()
                member.size = len(body)
            new.addfile(member, io.BytesIO(body))


def test_the_sqlite_copy_is_taken_while_the_database_is_being_written(make_installation,
                                                                       tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A writer holding an open transaction does not stop the backup, and the copy holds what was
    committed, not what was not (SQLite's online backup, as rprp up's databases are in WAL)."""
    source = make_installation("source", "sqlite")
    prefect = source.data_dir / "prefect" / "prefect.db"
    writer = sqlite3.connect(prefect)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO flow_run VALUES ('uncommitted', 'RUNNING')")
    try:
        take_backup(source.settings, tmp_path / "live.tar.gz")
    finally:
        writer.rollback()
        writer.close()
    target = make_installation("target", "sqlite", filled=False)
    restore_backup(target.settings, tmp_path / "live.tar.gz")
    assert _rows(_prefect_url(target), "SELECT id FROM flow_run") == [("run-1",)]
