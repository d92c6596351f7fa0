"""Backups that restore: the case DB, Prefect's database and the keys, taken and put back together.

A case lives in two databases and one key: the case DB (the system of record), Prefect's database
(the flow runs, and the paused steps waiting for people) and the signing key (without which every
account link already emailed stops working). Restoring one without the others leaves cases that
cannot move, so `rprp backup` writes all of them into one archive and `rprp restore` puts all of
them back, or nothing.

The archive is a gzipped tar, readable by its owner only, holding:

- `manifest.json`: when it was taken, by which RPRP and Prefect, each database's kind and the
  case DB's schema revision, and a SHA-256 for every other member;
- `cases.db` / `prefect.db` (SQLite's online backup: a consistent copy while the stack runs) or
  `cases.pgdump` / `prefect.pgdump` (`pg_dump --format=custom`, one consistent snapshot each);
- `secret.key`, the signing key (from `RPRP_SECRET_KEY` or the data dir's key file), and
  `prefect-api-auth.key`, the Prefect server's credentials, when `rprp up` made them.

Prefect's database is copied first and the case DB second, so the case DB is never behind
Prefect's: a decision taken between the two copies is in the record even if its flow run is
restored still waiting for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from infra.settings import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SIGNING_KEY = "secret.key"
PREFECT_AUTH = "prefect-api-auth.key"  # rprp.stack.PREFECT_AUTH_FILE, without importing the stack
PG_TIMEOUT = 3600  # seconds: a force's decade of cases dumps in minutes, not hours


class BackupError(Exception):
    """What is wrong, in words an operator can act on; nothing has been changed."""


@dataclass(frozen=True)
class Database:
    """One of the two databases: what it is called in the archive, and where it lives."""

    name: str  # "cases" or "prefect"
    url: str  # a SQLAlchemy URL: sqlite:///path or postgresql[+driver]://...

    @property
    def kind(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql", "postgres")) else "sqlite"

    @property
    def member(self) -> str:
        return f"{self.name}.pgdump" if self.kind == "postgresql" else f"{self.name}.db"

    @property
    def path(self) -> Path:
        """The SQLite file (for the SQLite kind only)."""
        database = make_url(self.url).database
        if self.kind != "sqlite" or not database:
            raise BackupError(f"the {self.name} database URL names no SQLite file: {self.url}")
        return Path(database)


def databases(settings: Settings, prefect_database_url: str = "") -> tuple[Database, Database]:
    """Prefect's database and the case DB, where `rprp up` keeps them with these settings
    (Prefect's: `RPRP_PREFECT_DATABASE_URL`, or SQLite under `<data dir>/prefect`)."""
    prefect_url = prefect_database_url or (
        f"sqlite:///{settings.resolved_data_dir / 'prefect' / 'prefect.db'}")
    return Database("prefect", prefect_url), Database("cases", settings.case_database_url)


# --- taking a backup -------------------------------------------------------------------------------

def take_backup(settings: Settings, out: Path, prefect_database_url: str = "") -> dict[str, Any]:
    """Write the archive to `out` (refusing to overwrite one) and return its manifest."""
    out = out.expanduser().resolve()
    if out.exists():
        raise BackupError(f"{out} already exists: choose a new file name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory")
    prefect, cases = databases(settings, prefect_database_url)
    for database in (prefect, cases):
        if database.kind == "sqlite" and not database.path.exists():
            raise BackupError(f"the {database.name} database {database.path} does not exist: "
                              "is RPRP_DATA_DIR (or RPRP_DATABASE_URL) the installation's?")
    with tempfile.TemporaryDirectory(prefix="rprp-backup-") as work:
        staging = Path(work)
        for database in (prefect, cases):  # Prefect's first: the record is never behind it
            _copy_out(database, staging / database.member)
        (staging / SIGNING_KEY).write_text(settings.signing_key)
        auth = settings.resolved_data_dir / PREFECT_AUTH
        if auth.exists():
            shutil.copyfile(auth, staging / PREFECT_AUTH)
        manifest = _manifest(staging, prefect, cases)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                for name in [MANIFEST, *manifest["files"]]:
                    archive.add(staging / name, arcname=name, recursive=False)
            os.replace(partial, out)  # a crash mid-write leaves no archive that looks whole
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def _copy_out(database: Database, target: Path) -> None:
    if database.kind == "sqlite":
        source = sqlite3.connect(f"file:{database.path}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)  # page by page, consistent even while the stack writes
        finally:
            copy.close()
            source.close()
        return
    _pg("pg_dump", database, ["--format=custom", "--no-owner", "--no-privileges",
                              f"--file={target}"])


def _manifest(staging: Path, prefect: Database, cases: Database) -> dict[str, Any]:
    from importlib.metadata import version

    files = sorted(p.name for p in staging.iterdir() if p.name != MANIFEST)
    return {
        "format": FORMAT,
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rprp_version": version("rprp"),
        "prefect_version": version("prefect"),
        "databases": {
            db.name: {"kind": db.kind, "member": db.member} for db in (prefect, cases)},
        "case_db_revision": _revision(cases, staging / cases.member),
        "files": files,
        "sha256": {name: _sha256(staging / name) for name in files},
    }


def _revision(cases: Database, copy: Path) -> str | None:
    """The case DB's Alembic revision, read from the live database (the copy for SQLite)."""
    from sqlalchemy import create_engine, text

    from infra.db import normalise_url

    url = f"sqlite:///{copy}" if cases.kind == "sqlite" else normalise_url(cases.url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - a database never migrated has no revision to report
        return None
    finally:
        engine.dispose()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- restoring it ----------------------------------------------------------------------------------

def read_manifest(archive: Path) -> dict[str, Any]:
    """The archive's manifest, after checking the archive is whole (every checksum matches)."""
    with _unpacked(archive) as (manifest, _):
        return manifest


def restore_backup(settings: Settings, archive: Path, prefect_database_url: str = "",
                   replace: bool = False, keep_current_key: bool = False) -> dict[str, Any]:
    """Put the archive's databases and keys back where these settings keep them.

    Everything is checked before anything is written: the archive whole, each target of the
    archive's kind, empty (or `replace`), no `rprp up` running on the data dir, the schema not
    newer than this code's, and the signing key the one in use. Then Prefect's database, the
    case DB and the keys are restored; if one fails, the others are put back as they were.
    """
    from infra.migrations import known_revisions

    prefect, cases = databases(settings, prefect_database_url)
    with _unpacked(archive) as (manifest, staging):
        _refuse_if_stack_running(settings.resolved_data_dir)
        for database in (prefect, cases):
            kind = manifest["databases"][database.name]["kind"]
            if kind != database.kind:
                raise BackupError(
                    f"the backup's {database.name} database is {kind} but this installation's "
                    f"is {database.kind}: point {_setting(database)} at a {kind} database")
            if not replace and not _is_empty(database):
                raise BackupError(
                    f"the {database.name} database ({_shown(database)}) already holds data: "
                    "restore into a new, empty one, or pass --replace to overwrite it")
        revision = manifest.get("case_db_revision")
        if revision and revision not in known_revisions():
            raise BackupError(f"the backup's case DB is at schema revision {revision}, which this "
                              "version of RPRP does not know: restore it with the version that "
                              f"took it (RPRP {manifest.get('rprp_version')}) or a newer one")
        backed_up_key = (staging / SIGNING_KEY).read_text().strip()
        if settings.secret_key and settings.secret_key != backed_up_key and not keep_current_key:
            raise BackupError(
                "RPRP_SECRET_KEY is set and is not the backup's signing key, so account links "
                "emailed before the backup would stop working: unset it (the backup's key is "
                "restored to the data dir) or set it to the backup's key; --keep-current-key "
                "restores anyway")
        done: list[tuple[Database, Path | None]] = []
        try:
            for database in (prefect, cases):
                previous = None
                if not _is_empty(database):  # only with `replace`: kept until the end
                    previous = staging / f"previous-{database.member}"
                    _copy_out(database, previous)
                _copy_in(database, staging / database.member)
                done.append((database, previous))
        except BaseException:
            for database, previous in reversed(done):  # each as the restore found it
                if previous is None:
                    _empty(database)
                else:
                    _copy_in(database, previous)
            raise
        _restore_keys(settings, staging, keep_current_key)
        return manifest


@contextmanager
def _unpacked(archive: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    archive = archive.expanduser()
    if not archive.is_file():
        raise BackupError(f"{archive} is not a file")
    with tempfile.TemporaryDirectory(prefix="rprp-restore-") as work:
        staging = Path(work)
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                names = tar.getnames()
                if MANIFEST not in names:
                    raise BackupError(f"{archive} is not an RPRP backup: it has no {MANIFEST}")
                tar.extractall(staging, filter="data")  # no links, no paths outside `staging`
        except (tarfile.TarError, EOFError, OSError) as error:
            raise BackupError(f"{archive} cannot be read as an RPRP backup: {error}") from None
        try:
            manifest = json.loads((staging / MANIFEST).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise BackupError(f"{archive}: its manifest is not valid JSON ({error})") from None
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{archive}: backup format {manifest.get('format')!r} is not "
                              f"this version's ({FORMAT})")
        for name, digest in manifest.get("sha256", {}).items():
            member = staging / name
            if not member.is_file():
                raise BackupError(f"{archive} is incomplete: {name} is missing")
            if _sha256(member) != digest:
                raise BackupError(f"{archive} is damaged: {name} does not match its checksum")
        for needed in (SIGNING_KEY, *(d["member"] for d in manifest["databases"].values())):
            if needed not in manifest.get("sha256", {}):
                raise BackupError(f"{archive} is incomplete: it holds no {needed}")
        yield manifest, staging


def _refuse_if_stack_running(data_dir: Path) -> None:
    """`rprp up` holds an exclusive lock on its data dir while it runs (rprp.stack._take_lock)."""
    import fcntl

    lock_path = data_dir / "rprp-up.lock"
    if not lock_path.exists():
        return
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BackupError(f"rprp up is running on {data_dir}: stop it (Ctrl-C) and every "
                              "worker and portal using these databases, then restore") from None
        fcntl.flock(lock, fcntl.LOCK_UN)


def _is_empty(database: Database) -> bool:
    if database.kind == "sqlite":
        path = database.path
        if not path.exists():
            return True
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        return int(tables) == 0
    count = _psql(database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    return count.strip() == "0"


def _copy_in(database: Database, copy: Path) -> None:
    if database.kind == "sqlite":
        target = database.path
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = target.with_name(target.name + ".restoring")
        shutil.copyfile(copy, staged)
        staged.chmod(0o600)
        for stale in (target.with_name(target.name + "-wal"),
                      target.with_name(target.name + "-shm")):
            stale.unlink(missing_ok=True)  # another database's log must not replay onto this one
        os.replace(staged, target)
        return
    # The dump as SQL, run by psql in one transaction after emptying the schema: a failure
    # part-way leaves the database exactly as it was.
    if shutil.which("pg_restore") is None or shutil.which("psql") is None:
        raise BackupError("pg_restore and psql are needed: PostgreSQL's client tools "
                          "(Debian: apt-get install postgresql-client)")
    url, env = _connection(database)
    errors = tempfile.TemporaryFile()
    as_sql = subprocess.Popen(["pg_restore", "--no-owner", "--no-privileges", "--file=-",
                               str(copy)], stdout=subprocess.PIPE, stderr=errors, env=env)
    loaded = subprocess.run(
        ["psql", *_libpq_args(url), "--no-password", f"--dbname={url.database or ''}", "-q",
         "-v", "ON_ERROR_STOP=1", "--single-transaction",
         "-c", "DROP SCHEMA IF EXISTS public CASCADE", "-c", "CREATE SCHEMA public",
         "-f", "-"], stdin=as_sql.stdout, env=env, capture_output=True, text=True,
        timeout=PG_TIMEOUT, check=False)
    assert as_sql.stdout is not None
    as_sql.stdout.close()
    code = as_sql.wait(timeout=PG_TIMEOUT)
    errors.seek(0)
    unreadable = errors.read().decode(errors="replace").strip()
    errors.close()
    if code != 0:
        raise BackupError(f"pg_restore could not read the {database.name} dump: {unreadable}")
    if loaded.returncode != 0:
        raise BackupError(f"restoring the {database.name} database ({_shown(database)}) "
                          f"failed, and it is as it was: {loaded.stderr.strip()}")


def _empty(database: Database) -> None:
    """Back to the empty database the restore found (what `replace` agreed to lose)."""
    if database.kind == "sqlite":
        database.path.unlink(missing_ok=True)
        return
    _psql(database, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")


def _restore_keys(settings: Settings, staging: Path, keep_current_key: bool) -> None:
    data_dir = settings.resolved_data_dir
    names = [PREFECT_AUTH] + ([] if keep_current_key else [SIGNING_KEY])
    for name in names:
        if (staging / name).exists():
            target = data_dir / name
            staged = target.with_name(name + ".restoring")
            shutil.copyfile(staging / name, staged)
            staged.chmod(0o600)
            os.replace(staged, target)


# --- PostgreSQL's own tools ------------------------------------------------------------------------

def _connection(database: Database) -> tuple[URL, dict[str, str]]:
    """The URL's parts as libpq options, the password in the environment (never in argv)."""
    url = make_url(database.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    for key, value in (url.query or {}).items():
        if key == "sslmode":
            env["PGSSLMODE"] = str(value)
    return url, env


def _libpq_args(url: URL) -> list[str]:
    args = []
    if url.host:
        args.append(f"--host={url.host}")
    if url.port:
        args.append(f"--port={url.port}")
    if url.username:
        args.append(f"--username={url.username}")
    return args


def _pg(tool: str, database: Database, args: list[str]) -> None:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed: PostgreSQL's client tools are needed "
                          "(Debian: apt-get install postgresql-client)")
    url, env = _connection(database)
    done = subprocess.run([tool, *_libpq_args(url), "--no-password",
                           f"--dbname={url.database or ''}", *args], env=env,
                          capture_output=True, text=True, timeout=PG_TIMEOUT, check=False)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed for the {database.name} database ({_shown(database)}):"
                          f" {done.stderr.strip()}")


def _psql(database: Database, sql: str) -> str:
    if shutil.which("psql") is None:
        raise BackupError("psql is not installed: PostgreSQL's client tools are needed "
                          "(Debian: apt-get install postgresql-client)")
    url, env = _connection(database)
    done = subprocess.run(
        ["psql", *_libpq_args(url), "--no-password", f"--dbname={url.database or ''}", "-Atq",
         "-v", "ON_ERROR_STOP=1", "-c", sql], env=env, capture_output=True, text=True,
        timeout=120, check=False)
    if done.returncode != 0:
        raise BackupError(f"cannot reach the {database.name} database ({_shown(database)}): "
                          f"{done.stderr.strip()}")
    return done.stdout


def _shown(database: Database) -> str:
    if database.kind == "sqlite":
        return str(database.path)
    return make_url(database.url).render_as_string(hide_password=True)


def _setting(database: Database) -> str:
    return "RPRP_PREFECT_DATABASE_URL" if database.name == "prefect" else "RPRP_DATABASE_URL"


def describe(manifest: dict[str, Any]) -> str:
    """One paragraph about a backup, for the commands' output."""
    out = io.StringIO()
    kinds = ", ".join(f"{name}: {d['kind']}" for name, d in manifest["databases"].items())
    out.write(f"taken {manifest['taken_at']} by RPRP {manifest['rprp_version']} (Prefect "
              f"{manifest['prefect_version']}); databases {kinds}; case DB schema "
              f"{manifest.get('case_db_revision') or 'unknown'}; files: "
              f"{', '.join(manifest['files'])}")
    return out.getvalue()
