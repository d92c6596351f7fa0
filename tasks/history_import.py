"""History import: past cases and workforce headcounts from the force's previous system.

Every row is checked before anything is stored; one bad row and nothing is written, and every
problem is reported by row, field and reason. Re-importing the same file changes nothing: a
case is known by its `reference`, a headcount by (as_of, characteristic, group). Imported cases
are records, not live cases: they get no flow run, no deadline and no email.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any, TypeVar

from sqlalchemy import Enum as SAEnum
from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlalchemy import text as sql_text
from sqlmodel import Session, SQLModel, col, select

from models import Case, ImportedCase, MonitoringRecord, Officer, WorkforceHeadcount, utc_now
from models.enums import CaseState, EmploymentStatus, Origin, Rank, ReviewerBasis, Route
from tasks.calendar import england_and_wales
from tasks.trends import report_working_days

CASE_COLUMNS = (
    "reference", "concern_reported_on", "referred_on", "origin", "route",
    "allegation_category", "rprp_reason", "public_summary", "sexual_conduct", "collar_number",
    "officer_name", "rank", "probationer", "unit", "employment_status", "left_on", "ethnicity",
    "sex", "age_band", "outcome", "closed_on", "non_engagement", "referred_back",
    "report_filed_on",
)
WORKFORCE_COLUMNS = ("as_of", "characteristic", "group", "headcount")
CHARACTERISTICS = ("ethnicity", "sex", "age_band", "disability", "religion",
                   "sexual_orientation")
# What the previous system recorded of a case's end; `open` is still being handled there.
OUTCOMES = ("open", "closed_complete", "closed_nfa", "escalated_upp", "escalated_misconduct",
            "escalated_vetting", "discontinued", "cancelled")
REQUIRED_CASE_FIELDS = ("reference", "concern_reported_on", "referred_on", "origin", "route",
                        "collar_number", "officer_name", "rank", "outcome")
IMPORT_ACTOR = "history-import"
# What a live case would have set that an imported one never has.
LIVE_ONLY_DEFAULTS: dict[str, Any] = {
    "idempotency_key": None, "aa_decision_maker": IMPORT_ACTOR, "aa_decision_maker_role": "",
    "reviewer_name": "", "reviewer_email": "", "reviewer_rank_or_grade": "",
    "reviewer_basis": ReviewerBasis.LINE_MANAGER, "reviewer_aa_opinion": "",
    "complainant_name": None, "complainant_email": None, "complainant_address": None,
    "complainant_review_body": None, "flow_run_id": None, "notice_round": 1,
    "transition_count": 0, "rejected_inputs": 0, "step_answers": 0,
    "account_deadline_missed": False, "wake_requested": False, "closed_reason": "",
}
NOT_STATED = "not_stated"


@dataclass(frozen=True)
class RowProblem:
    """One reason a row cannot be stored: row 2 is the first after the header."""

    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.reason}"


class ImportRefused(Exception):
    """The file has problems; nothing was stored."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


@dataclass
class ImportResult:
    added: int = 0
    unchanged: int = 0
    updated: int = 0


E = TypeVar("E", bound=StrEnum)


@dataclass
class _Row:
    """One CSV row being checked: reads typed values and collects what is wrong with them."""

    number: int
    values: dict[str, str]
    problems: list[RowProblem] = field(default_factory=list)

    def text(self, name: str, *, required: bool = False, max_length: int = 500) -> str:
        value = (self.values.get(name) or "").strip()
        if required and not value:
            self.problems.append(RowProblem(self.number, name, "is required"))
        elif len(value) > max_length:
            self.problems.append(RowProblem(self.number, name,
                                            f"is longer than {max_length} characters"))
        return value

    def _parse(self, name: str, required: bool, parse: Callable[[str], Any],
               expected: str) -> Any:
        value = self.text(name, required=required)
        if not value:
            return None
        try:
            return parse(value)
        except ValueError:
            self.problems.append(RowProblem(self.number, name,
                                            f"'{value}' is not {expected}"))
            return None

    def day(self, name: str, *, required: bool = False) -> date | None:
        return self._parse(name, required, _iso_date, "a date (YYYY-MM-DD)")  # type: ignore[no-any-return]

    def flag(self, name: str) -> bool | None:
        return self._parse(name, False, _yes_no, "yes or no")  # type: ignore[no-any-return]

    def choice(self, name: str, enum: type[E], *, required: bool = False) -> E | None:
        value = self.text(name, required=required)
        if not value:
            return None
        member = enum._value2member_map_.get(value)  # a dict lookup: four per row, 100,000s
        if member is None:
            allowed = ", ".join(m.value for m in enum)
            self.problems.append(RowProblem(self.number, name,
                                            f"'{value}' is not one of {allowed}"))
        return member  # type: ignore[return-value]

    def one_of(self, name: str, allowed: Iterable[str], *, required: bool = False) -> str:
        options = tuple(allowed)
        value = self.text(name, required=required)
        if value and value not in options:
            self.problems.append(RowProblem(self.number, name,
                                            f"'{value}' is not one of {', '.join(options)}"))
        return value

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(RowProblem(self.number, name, reason))


def _iso_date(value: str) -> date:
    if len(value) != 10:
        raise ValueError(value)
    return date.fromisoformat(value)


def _yes_no(value: str) -> bool:
    lowered = value.lower()
    if lowered not in {"yes", "no"}:
        raise ValueError(value)
    return lowered == "yes"


def _read(text: str, columns: tuple[str, ...]) -> list[_Row]:
    """The file's rows, or a refusal naming the header's missing or unknown columns."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in columns if c not in header]
    unknown = [c for c in header if c not in columns]
    problems = [RowProblem(1, c, "column is missing from the header") for c in missing]
    problems += [RowProblem(1, c, "is not a column of this import") for c in unknown]
    if problems:
        raise ImportRefused(problems)
    reader.fieldnames = header
    return [_Row(number, {k: v for k, v in values.items() if isinstance(k, str)})
            for number, values in enumerate(reader, start=2)]


@dataclass(frozen=True)
class _CaseRow:
    reference: str
    case: dict[str, Any]
    officer: dict[str, Any]
    monitoring: dict[str, str]
    imported: dict[str, Any]


def _check_case(row: _Row) -> _CaseRow:
    reference = row.text("reference", required=True, max_length=100)
    reported = row.day("concern_reported_on", required=True)
    referred = row.day("referred_on", required=True)
    origin = row.choice("origin", Origin, required=True)
    route = row.choice("route", Route, required=True)
    rank = row.choice("rank", Rank, required=True)
    status = row.choice("employment_status", EmploymentStatus)
    left_on = row.day("left_on")
    outcome = row.one_of("outcome", OUTCOMES, required=True)
    closed_on = row.day("closed_on")
    report_filed_on = row.day("report_filed_on")
    if reported and referred and referred < reported:
        row.problem("referred_on", "is before concern_reported_on")
    if left_on and status is not EmploymentStatus.LEFT:
        row.problem("left_on", "is given but employment_status is not 'left'")
    if outcome == "open" and closed_on:
        row.problem("closed_on", "is given but the outcome is 'open'")
    if outcome and outcome != "open" and not closed_on:
        row.problem("closed_on", f"is required when the outcome is '{outcome}'")
    if closed_on and referred and closed_on < referred:
        row.problem("closed_on", "is before referred_on")
    summary = row.text("public_summary", max_length=5000)
    # An open case is still handled in the previous system: it waits here, never started.
    state = (CaseState(outcome) if outcome in OUTCOMES and outcome != "open"
             else CaseState.REFERRAL_RECEIVED)
    return _CaseRow(
        reference=reference,
        case={"state": state, "route": route, "origin": origin,
              "concern_reported_on": reported, "referred_on": referred,
              "incident_on": reported,
              "allegation_category": row.text("allegation_category", max_length=200),
              "rprp_reason": row.text("rprp_reason", max_length=500),
              "behaviour_summary": summary, "public_summary": summary,
              "sexual_conduct": bool(row.flag("sexual_conduct")),
              "closed_at": (datetime.combine(closed_on, datetime.min.time(), UTC)
                            if closed_on else None)},
        officer={"collar_number": row.text("collar_number", required=True, max_length=20),
                 "name": row.text("officer_name", required=True, max_length=200),
                 "rank": rank, "probationer": bool(row.flag("probationer")),
                 "unit": row.text("unit", max_length=200),
                 "employment_status": status or EmploymentStatus.SERVING, "left_on": left_on},
        monitoring={name: row.text(name, max_length=60) or NOT_STATED
                    for name in ("ethnicity", "sex", "age_band")},
        imported={"outcome": outcome, "closed_on": closed_on,
                  "non_engagement": row.flag("non_engagement"),
                  "referred_back": row.flag("referred_back"),
                  "report_filed_on": report_filed_on},
    )


def import_cases(session: Session, text: str) -> ImportResult:
    """Store the file's cases not imported before; refuse the whole file if any row is wrong.

    An officer already on the record (by collar number) is kept as the live record has them;
    a case already imported (by reference) is left as it is.
    """
    rows = _read(text, CASE_COLUMNS)
    checked = [_check_case(row) for row in rows]
    problems = [p for row in rows for p in row.problems]
    seen: dict[str, int] = {}
    for row, case in zip(rows, checked, strict=True):
        if case.reference in seen:
            problems.append(RowProblem(row.number, "reference",
                                       f"'{case.reference}' is also on row {seen[case.reference]}"))
        seen.setdefault(case.reference, row.number)
    if problems:
        raise ImportRefused(problems)

    existing = set(session.exec(select(ImportedCase.reference)).all())
    officer_ids = dict(session.execute(
        sa_select(col(Officer.collar_number), col(Officer.id))).tuples().all())
    result = ImportResult()
    fresh = [case for case in checked if case.reference not in existing]
    result.unchanged = len(checked) - len(fresh)
    # A bulk insert per table (officers, cases, then what hangs off a case), never a row at a
    # time and never through ORM objects (a millisecond each), so a decade loads in seconds.
    new_officers: dict[str, dict[str, Any]] = {}
    for case in fresh:
        collar = case.officer["collar_number"]
        if collar not in officer_ids:
            new_officers.setdefault(collar, case.officer | {"email": ""})
    officer_rows = list(new_officers.values())
    officer_ids.update(zip(new_officers, _insert(session, Officer, officer_rows,
                                                 with_ids=True), strict=True))
    if fresh:
        now = utc_now()
        # Counted once here (the history does not change), not on every trends page.
        calendar = england_and_wales()
        for case in fresh:
            case.imported["report_working_days"] = report_working_days(
                case.case["referred_on"], case.imported["report_filed_on"], calendar)
        ids = _insert(session, Case, [
            LIVE_ONLY_DEFAULTS | case.case | {
                "officer_id": officer_ids[case.officer["collar_number"]], "created_at": now,
                "updated_at": now}
            for case in fresh], with_ids=True)
        _insert(session, MonitoringRecord, [case.monitoring | {"case_id": i}
                                            for case, i in zip(fresh, ids, strict=True)])
        _insert(session, ImportedCase, [case.imported | {"case_id": i, "reference": case.reference,
                                                         "imported_at": now}
                                        for case, i in zip(fresh, ids, strict=True)])
    result.added = len(fresh)
    return result


def _insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]], *,
            with_ids: bool = False) -> list[int]:
    """Insert `rows` into the model's table in the session's transaction; with `with_ids`,
    the new rows' ids in order.

    On PostgreSQL by COPY, the ids taken from the table's sequence first: SQLAlchemy's
    multi-row INSERT ... RETURNING spends most of its time in psycopg parsing statements of
    tens of thousands of placeholders (88 s for 100,000 cases, against a few with COPY).
    Elsewhere (SQLite) a Core executemany, which is quick there.
    """
    table = model.__table__  # type: ignore[attr-defined]
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        if with_ids:
            return list(session.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),
                rows).scalars().all())
        session.execute(insert(table), rows)
        return []
    ids: list[int] = []
    if with_ids:
        ids = list(connection.execute(
            sql_text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                 "FROM generate_series(1, :n)"), {"table": table.name, "n": len(rows)}
        ).scalars().all())
        rows = [row | {"id": i} for row, i in zip(rows, ids, strict=True)]
    # Every row carries the same keys (built alike); the columns they leave out get their
    # defaults, and enum columns their values.
    given = [c.name for c in table.columns if c.name in rows[0]]
    left_out = [c for c in table.columns if c.name not in rows[0]
                and (c.default is not None or c.nullable)]
    enums = [i for i, c in enumerate(given) if isinstance(table.c[c].type, SAEnum)]
    names = ", ".join(f'"{c}"' for c in [*given, *(c.name for c in left_out)])
    raw = connection.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(  # type: ignore[attr-defined]
            f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = [row[c] for c in given]
            for i in enums:
                values[i] = _plain(values[i])
            copy.write_row([*values, *(_default(c) for c in left_out)])
    return ids


def _default(column: Any) -> Any:
    """The value SQLAlchemy would have given a column the rows leave out (a callable default,
    such as a timestamp's, is called for each row, as SQLAlchemy does)."""
    default = column.default
    if default is None:
        return None
    return _plain(default.arg if default.is_scalar else default.arg(None))


def _plain(value: Any) -> Any:
    """What the column stores: an enum as its value (the schema's `enum_type`)."""
    return value.value if isinstance(value, Enum) else value


def import_workforce(session: Session, text: str) -> ImportResult:
    """Store the file's headcounts; a snapshot already held with another figure is corrected."""
    rows = _read(text, WORKFORCE_COLUMNS)
    checked: list[tuple[date, str, str, int]] = []
    seen: dict[tuple[date, str, str], int] = {}
    for row in rows:
        as_of = row.day("as_of", required=True)
        characteristic = row.one_of("characteristic", CHARACTERISTICS, required=True)
        group = row.text("group", required=True, max_length=100)
        headcount = row._parse("headcount", True, int, "a whole number")
        if isinstance(headcount, int) and headcount < 0:
            row.problem("headcount", "cannot be negative")
        if as_of and characteristic and group:
            key = (as_of, characteristic, group)
            if key in seen:
                row.problem("group", f"'{group}' on {as_of} is also on row {seen[key]}")
            seen.setdefault(key, row.number)
            if isinstance(headcount, int):
                checked.append((as_of, characteristic, group, headcount))
    problems = [p for row in rows for p in row.problems]
    if problems:
        raise ImportRefused(problems)

    held = {(h.as_of, h.characteristic, h.group): h
            for h in session.exec(select(WorkforceHeadcount)).all()}
    result = ImportResult()
    for as_of, characteristic, group, headcount in checked:
        current = held.get((as_of, characteristic, group))
        if current is None:
            session.add(WorkforceHeadcount(as_of=as_of, characteristic=characteristic,
                                           group=group, headcount=headcount))
            result.added += 1
        elif current.headcount == headcount:
            result.unchanged += 1
        else:
            current.headcount = headcount
            session.add(current)
            result.updated += 1
    return result


IMPORTED_TABLES = (Officer, Case, MonitoringRecord, ImportedCase, WorkforceHeadcount)


def refresh_statistics(session: Session) -> None:
    """Tell the database's planner how big the tables have become, straight after an import.

    Without fresh statistics a database that has just been given a decade of cases plans the
    trends and FOI queries for the handful it held before (PostgreSQL's autovacuum catches up
    only a minute or so later; SQLite never, until ANALYZE runs). Call it after the import
    has committed, in a session of its own; cheap beside the import itself.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        tables = ", ".join(f'"{model.__tablename__}"' for model in IMPORTED_TABLES)
        connection.exec_driver_sql(f"ANALYZE {tables}")
    else:
        connection.exec_driver_sql("ANALYZE")


def is_imported(session: Session, case_id: int) -> bool:
    """True for a case loaded from history: nothing may start or wake a flow run for it."""
    return session.get(ImportedCase, case_id) is not None
