"""The FOI return (seed 002) against a seeded period: the boundary days are in, the days either
side out, an officer who left reads No, a summary that names the officer is held back and
listed, and the counts are those of the seeded cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from infra.db import session_scope
from tasks.foi import FoiReturn, foi_return, identifying, to_csv, write
from tasks.history_import import import_cases
from tests.unit.test_history_import import HEADER, case_line

FROM, TO, AS_OF = date(1995, 4, 1), date(1996, 4, 1), date(1996, 6, 30)


@pytest.fixture(scope="module")
def seeded() -> dict[str, str]:
    """Seven past cases around the period 1 Apr 1995 - 1 Apr 1996.

    The references are fixed, so a second module seeding the same period in the session's DB
    (tests/integration/test_portal_foi.py) re-imports the same file, which changes nothing."""
    t = "f0i95a"
    ref = {k: f"FOI-{t}-{k}" for k in "ABCDEFG"}
    a_collar, b_collar, g_collar = f"A{t}", f"B{t}", f"G{t}"
    lines = [
        case_line(ref["A"], a_collar, concern_reported_on="1995-03-20", referred_on="1995-04-01",
                  closed_on="1995-07-01"),
        case_line(ref["B"], b_collar, officer_name="DC Robin Quayle",
                  concern_reported_on="1996-03-01", referred_on="1996-04-01",
                  origin="conduct_matter", route="reg_42_1_b_panel_direction",
                  sexual_conduct="yes", employment_status="left", left_on="1996-01-31",
                  outcome="open", closed_on=""),
        case_line(ref["C"], f"C{t}", concern_reported_on="1995-03-01", referred_on="1995-03-31",
                  closed_on="1995-06-01"),
        case_line(ref["D"], f"D{t}", concern_reported_on="1996-03-01", referred_on="1996-04-02",
                  closed_on="1996-06-01"),
        case_line(ref["E"], a_collar, concern_reported_on="1995-05-10", referred_on="1995-06-01",
                  origin="internal", route="severity_assessment", closed_on="1995-09-01",
                  public_summary="PC Example was late to a briefing"),
        case_line(ref["F"], f"F{t}", concern_reported_on="1995-06-10", referred_on="1995-07-01",
                  outcome="cancelled", closed_on="1995-07-02"),
        case_line(ref["G"], g_collar, officer_name="Sgt Kim Varga",
                  concern_reported_on="1995-08-01", referred_on="1995-09-01",
                  origin="recordable_conduct_matter", employment_status="left",
                  left_on="1997-01-01", closed_on="1995-12-01"),
    ]
    with session_scope() as session:
        import_cases(session, "\n".join([HEADER, *lines]))
    return ref


@pytest.fixture
def foi(seeded: dict[str, str]) -> FoiReturn:
    with session_scope() as session:
        return foi_return(session, FROM, TO, AS_OF)


def test_rows_are_the_cases_referred_in_the_period_boundary_days_included(
        foi: FoiReturn, seeded: dict[str, str]) -> None:
    assert [r.values() for r in foi.rows] == [
        [seeded["A"], "1995-03-20", "PC", "Spoke discourteously to a member of the public",
         "Yes"],
        [seeded["G"], "1995-08-01", "CM", "Spoke discourteously to a member of the public",
         "Yes"],  # left only after the as-of day
        [seeded["B"], "1996-03-01", "CM", "Spoke discourteously to a member of the public",
         "No"],  # left before it
    ]


def test_a_summary_that_names_the_officer_is_held_back_and_listed(
        foi: FoiReturn, seeded: dict[str, str]) -> None:
    assert [(h.reference, h.found) for h in foi.held_back] == [
        (seeded["E"], ("officer's name",))]
    assert "late to a briefing" not in to_csv(foi)


def test_the_counts_the_answer_gives(foi: FoiReturn) -> None:
    # A, B, E, G: C and D fall a day either side, F was cancelled. A and E are one officer.
    assert foi.counts == {
        "cases": 4, "distinct officers": 3, "public complaint (PC)": 1,
        "conduct matter (CM)": 3, "origin: conduct_matter": 1, "origin: public_complaint": 1,
        "origin: recordable_conduct_matter": 1, "origin: internal": 1,
        "route: reg 23(5)(a)": 2, "route: reg 42(1)(b)": 1, "route: other": 1,
        "sexual-conduct related": 1, "held back for redaction": 1,
    }


def test_complainant_details_and_the_collar_number_are_found() -> None:
    case = {"officer_name": "PC Alex Example", "collar_number": "4821",
            "complainant_name": "Ms Jo Bloggs", "complainant_email": "jo.b@mailbox.test",
            "complainant_address": "12 Mill Lane, Leeds LS1 4AB"}
    assert identifying("Officer 4821 was rude to Ms Bloggs at 12 Mill Lane", **case) == (
        "collar number", "complainant's name", "complainant's address")
    assert identifying("Wrote to jo.b@mailbox.test", **case) == ("complainant's email",)
    assert identifying("Officer 48210 was rude to a member of the public", **case) == ()


def test_the_return_is_written_as_csv_with_its_summary_or_as_a_workbook(
        foi: FoiReturn, tmp_path: Path) -> None:
    paths = write(foi, tmp_path / "return.csv")
    assert [p.name for p in paths] == ["return.csv", "return.summary.csv"]
    assert paths[0].read_text().splitlines()[0] == (
        "reference,date_concern_reported,origin,behaviour_summary,still_serving")
    assert "cases,4" in paths[1].read_text().splitlines()

    book = load_workbook(write(foi, tmp_path / "return.xlsx")[0])
    assert book.sheetnames == ["FOI return", "Summary"]
    assert book["FOI return"].max_row == 1 + len(foi.rows)
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert summary["distinct officers"] == 3


def test_the_command_prints_the_counts_and_exits_3_when_a_summary_is_held_back(
        seeded: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from rprp.cli import main

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        code = main(["foi", "--from", "1995-04-01", "--to", "1996-04-01", "--as-of",
                     "1996-06-30", "--out", str(tmp_path / "r.xlsx")])
    finally:
        os.umask(umask)
    out = capsys.readouterr()
    assert code == 3
    assert "distinct officers                3" in out.out
    assert f"{seeded['E']}: officer's name" in out.err
    assert (tmp_path / "r.xlsx").exists()
