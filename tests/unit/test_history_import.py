"""History import: a valid file is stored as records (no run, no email), a file with bad rows is
refused whole with every problem named, and the same file twice changes nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import func, select

from infra.db import session_scope
from models import (
    Case,
    Deadline,
    ImportedCase,
    MonitoringRecord,
    Officer,
    Outbox,
    WorkforceHeadcount,
)
from models.enums import CaseState, EmploymentStatus
from rprp.cli import main
from tasks.history_import import (
    CASE_COLUMNS,
    ImportRefused,
    import_cases,
    import_workforce,
    is_imported,
)
from tasks.orchestration import ImportedRecordError, start_case_flow, wake_case

HEADER = ",".join(CASE_COLUMNS)


def case_line(reference: str, collar: str, **values: str) -> str:
    row = {
        "reference": reference, "concern_reported_on": "2021-05-04", "referred_on": "2021-06-01",
        "origin": "public_complaint", "route": "reg_23_5_a_no_case_to_answer",
        "allegation_category": "Use of police powers", "rprp_reason": "Communication",
        "public_summary": "Spoke discourteously to a member of the public", "sexual_conduct": "no",
        "collar_number": collar, "officer_name": "PC Alex Example", "rank": "constable",
        "probationer": "no", "unit": "North BCU", "employment_status": "serving", "left_on": "",
        "ethnicity": "Black", "sex": "", "age_band": "25-34", "outcome": "closed_complete",
        "closed_on": "2021-08-02", "non_engagement": "no", "referred_back": "",
        "report_filed_on": "2021-07-20",
    } | values
    return ",".join(row[c] for c in CASE_COLUMNS)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def count(model: type) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_valid_file_is_stored_as_records_with_monitoring_apart() -> None:
    t = tag()
    text = "\n".join([HEADER, case_line(f"OLD-{t}-1", f"C{t}"),
                      case_line(f"OLD-{t}-2", f"D{t}", outcome="open", closed_on="",
                                employment_status="left", left_on="2022-01-31",
                                origin="conduct_matter", sexual_conduct="yes")]) + "\n"
    outbox, deadlines = count(Outbox), count(Deadline)
    with session_scope() as session:
        result = import_cases(session, text)
    assert (result.added, result.unchanged) == (2, 0)

    with session_scope() as session:
        first = session.exec(select(ImportedCase).where(
            ImportedCase.reference == f"OLD-{t}-1")).one()
        case = session.get(Case, first.case_id)
        assert case is not None and case.state is CaseState.CLOSED_COMPLETE
        assert case.flow_run_id is None and case.closed_at is not None
        assert first.report_filed_on is not None and first.referred_back is None
        # Counted at import for the trends: 1 June -> 20 July 2021, seven weeks, no holiday.
        assert first.report_working_days == 35
        monitoring = session.get(MonitoringRecord, first.case_id)
        assert monitoring is not None
        assert (monitoring.ethnicity, monitoring.sex, monitoring.age_band) == (
            "Black", "not_stated", "25-34")
        second = session.exec(select(ImportedCase).where(
            ImportedCase.reference == f"OLD-{t}-2")).one()
        open_case = session.get(Case, second.case_id)
        assert open_case is not None and open_case.state is CaseState.REFERRAL_RECEIVED
        assert open_case.sexual_conduct
        officer = session.get(Officer, open_case.officer_id)
        assert officer is not None and officer.employment_status is EmploymentStatus.LEFT
        assert is_imported(session, second.case_id)
    # Records, not live cases: no email queued, no deadline set.
    assert (count(Outbox), count(Deadline)) == (outbox, deadlines)


def test_a_file_with_bad_rows_reports_each_and_stores_nothing() -> None:
    t = tag()
    text = "\n".join([
        HEADER,
        case_line(f"OLD-{t}-1", f"E{t}"),
        case_line(f"OLD-{t}-2", f"F{t}", referred_on="2021-13-01", origin="rumour"),
        case_line(f"OLD-{t}-3", f"G{t}", outcome="closed_nfa", closed_on="", sexual_conduct="y"),
        case_line(f"OLD-{t}-1", f"H{t}", left_on="2021-01-01"),
    ])
    cases = count(Case)
    with pytest.raises(ImportRefused) as refused, session_scope() as session:
        import_cases(session, text)
    assert [str(p) for p in refused.value.problems] == [
        "row 3, referred_on: '2021-13-01' is not a date (YYYY-MM-DD)",
        "row 3, origin: 'rumour' is not one of conduct_matter, public_complaint, "
        "recordable_conduct_matter, internal",
        "row 4, closed_on: is required when the outcome is 'closed_nfa'",
        "row 4, sexual_conduct: 'y' is not yes or no",
        "row 5, left_on: is given but employment_status is not 'left'",
        "row 5, reference: 'OLD-" + t + "-1' is also on row 2",
    ]
    assert count(Case) == cases
    with session_scope() as session:
        assert session.exec(select(Officer).where(Officer.collar_number == f"E{t}")).first() \
            is None


def test_a_missing_column_is_refused_before_any_row() -> None:
    with pytest.raises(ImportRefused) as refused, session_scope() as session:
        import_cases(session, "reference,referred_on\nX,2021-01-01\n")
    assert "row 1, origin: column is missing from the header" in [
        str(p) for p in refused.value.problems]


def test_the_same_file_twice_changes_nothing() -> None:
    t = tag()
    text = "\n".join([HEADER, case_line(f"OLD-{t}-1", f"J{t}"),
                      case_line(f"OLD-{t}-2", f"J{t}")])
    with session_scope() as session:
        assert import_cases(session, text).added == 2
    cases, officers = count(Case), count(Officer)
    with session_scope() as session:
        result = import_cases(session, text)
    assert (result.added, result.unchanged) == (0, 2)
    assert (count(Case), count(Officer)) == (cases, officers)


def test_workforce_headcounts_are_idempotent_and_checked() -> None:
    year = 1900 + int(tag(), 16) % 90
    text = (f"as_of,characteristic,group,headcount\n{year}-03-31,ethnicity,Black,1234\n"
            f"{year}-03-31,ethnicity,White,20000\n")
    with session_scope() as session:
        assert import_workforce(session, text).added == 2
    with session_scope() as session:
        again = import_workforce(session, text)
    assert (again.added, again.unchanged, again.updated) == (0, 2, 0)
    with session_scope() as session:
        corrected = import_workforce(session, text.replace("1234", "1240"))
    assert corrected.updated == 1
    with session_scope() as session:
        row = session.exec(select(WorkforceHeadcount).where(
            WorkforceHeadcount.as_of == date(year, 3, 31),
            WorkforceHeadcount.group == "Black")).one()
        assert row.headcount == 1240

    bad = (f"as_of,characteristic,group,headcount\n{year}-04-31,ethnicity,Black,10\n"
           f"{year}-03-31,height,Tall,-1\n")
    with pytest.raises(ImportRefused) as refused, session_scope() as session:
        import_workforce(session, bad)
    assert [str(p) for p in refused.value.problems] == [
        f"row 2, as_of: '{year}-04-31' is not a date (YYYY-MM-DD)",
        "row 3, characteristic: 'height' is not one of ethnicity, sex, age_band, disability, "
        "religion, sexual_orientation",
        "row 3, headcount: cannot be negative",
    ]


def test_no_flow_run_is_started_or_woken_for_an_imported_case() -> None:
    t = tag()
    with session_scope() as session:
        import_cases(session, "\n".join([HEADER, case_line(f"OLD-{t}", f"K{t}", outcome="open",
                                                           closed_on="")]))
        imported = session.exec(select(ImportedCase).where(
            ImportedCase.reference == f"OLD-{t}")).one()
        case = session.get(Case, imported.case_id)
        assert case is not None
        case.wake_requested = True  # as if something had flagged it for the sweep
        session.add(case)
    # Refused before Prefect is asked (no server runs in the unit tests).
    with pytest.raises(ImportedRecordError):
        asyncio.run(start_case_flow(imported.case_id))
    assert asyncio.run(wake_case(imported.case_id)) is False
    with session_scope() as session:
        case = session.get(Case, imported.case_id)
        assert case is not None and case.flow_run_id is None and not case.wake_requested


def test_the_command_prints_each_bad_row_and_exits_non_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    umask = os.umask(0o022)  # the command sets its own; give the session's back after
    os.umask(umask)
    try:
        command_runs(tmp_path, capsys)
    finally:
        os.umask(umask)


def command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = tag()
    good = tmp_path / "cases.csv"
    good.write_text("\n".join([HEADER, case_line(f"OLD-{t}", f"L{t}")]) + "\n",
                    encoding="utf-8")
    assert main(["import", "cases", str(good)]) == 0
    assert "Imported 1 case(s); 0 already held, unchanged" in capsys.readouterr().out
    assert main(["import", "cases", str(good)]) == 0
    assert "Imported 0 case(s); 1 already held, unchanged" in capsys.readouterr().out

    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([HEADER, case_line(f"NEW-{t}", f"M{t}", rank="colonel")]),
                   encoding="utf-8")
    assert main(["import", "cases", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: row 2, rank: 'colonel' is not one of constable" in err
    assert "nothing was imported" in err


def _planner_statistics() -> object:
    """When PostgreSQL last analysed rprp_case, or how many SQLite statistics rows it has."""
    with session_scope() as session:
        bind = session.get_bind()
        with bind.connect() as connection:
            if bind.dialect.name == "postgresql":
                return connection.exec_driver_sql(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'rprp_case'"
                ).scalar()
            return connection.exec_driver_sql(
                "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'rprp_case'").scalar()


def test_the_command_refreshes_the_planner_statistics_after_storing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A decade of cases planned as the handful the database held before is seconds per page:
    `rprp import` runs ANALYZE once it has stored something (and not when it stored nothing)."""
    with session_scope() as session:
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            with bind.connect() as connection:
                connection.exec_driver_sql("ANALYZE")  # so that sqlite_stat1 exists
                connection.exec_driver_sql("DELETE FROM sqlite_stat1")
                connection.commit()
    before = _planner_statistics()
    t = tag()
    good = tmp_path / "cases.csv"
    good.write_text("\n".join([HEADER, case_line(f"STAT-{t}", f"S{t}")]) + "\n",
                    encoding="utf-8")
    assert main(["import", "cases", str(good)]) == 0
    after = _planner_statistics()
    assert after and after != before
    assert main(["import", "cases", str(good)]) == 0  # stores nothing: no ANALYZE
    assert _planner_statistics() == after
    capsys.readouterr()
