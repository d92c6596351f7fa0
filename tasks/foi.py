"""The FOI return of seed 002: each officer-case given RPRP, referred in a period, with the
counts the answer gives, and nothing identifying leaving the force.

Before a row is exported its summary is checked against the officer's name and collar number
and the complainant's name, email and address in the same case; a summary that still holds one
is held back and listed for PSD to fix. Pure: a session and the dates come from the caller.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

from sqlalchemy import String, cast
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from models import Case, ImportedCase, Officer
from models.enums import CaseState, EmploymentStatus, Origin, Route
from tasks.identifiers import TITLES as RANKS
from tasks.identifiers import mentions, name_parts

COLUMNS = ("reference", "date_concern_reported", "origin", "behaviour_summary", "still_serving")
# Titles and ranks in a recorded name are not what identifies the person.
TITLES = RANKS | {"constable", "sergeant", "inspector", "officer"}


@dataclass(frozen=True)
class FoiRow:
    reference: str
    date_concern_reported: date
    origin: str
    behaviour_summary: str
    still_serving: str

    def values(self) -> list[str]:
        return [self.reference, self.date_concern_reported.isoformat(), self.origin,
                self.behaviour_summary, self.still_serving]


@dataclass(frozen=True)
class HeldBack:
    """A case whose summary still identifies someone: PSD fixes its public summary first."""

    reference: str
    case_id: int
    found: tuple[str, ...]  # what it holds ("officer's name", ...), never the value itself


@dataclass
class FoiReturn:
    period_from: date
    period_to: date
    as_of: date
    rows: list[FoiRow] = field(default_factory=list)
    held_back: list[HeldBack] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> list[tuple[str, int]]:
        """The counts as (what, how many), in the order the FOI answer reads them."""
        return list(self.counts.items())


@lru_cache(maxsize=65536)
def _name_parts(name: str | None) -> tuple[str, ...]:
    """Cached and case-folded: an officer's name recurs across their cases, and a decade is
    checked at once."""
    return tuple(p.casefold() for p in name_parts(name, min_length=3, titles=TITLES))


def _mentioned(folded: str, needle: str) -> bool:
    """`mentions`, after a substring test that rules out almost every summary in C."""
    return bool(needle) and needle.casefold() in folded and mentions(folded, needle)


def identifying(summary: str, *, officer_name: str, collar_number: str,
                complainant_name: str | None = None, complainant_email: str | None = None,
                complainant_address: str | None = None) -> tuple[str, ...]:
    """What in the case the summary still names: the officer's or complainant's name (or any
    part of it), the collar number, the complainant's email or address (or a line of it)."""
    folded = summary.casefold()
    found: list[str] = []
    if any(_mentioned(folded, p) for p in _name_parts(officer_name)):
        found.append("officer's name")
    if _mentioned(folded, collar_number):
        found.append("collar number")
    if complainant_name and any(_mentioned(folded, p) for p in _name_parts(complainant_name)):
        found.append("complainant's name")
    if complainant_email and _mentioned(folded, complainant_email):
        found.append("complainant's email")
    if complainant_address:
        address = complainant_address
        lines = [address.strip(), *(p.strip() for p in re.split(r"[,\n]", address))]
        if any(len(line) >= 4 and _mentioned(folded, line) for line in lines):
            found.append("complainant's address")
    return tuple(found)


COUNTED_ROUTES = (Route.REG_23_5_A_NO_CASE_TO_ANSWER.value, Route.REG_42_1_B_PANEL_DIRECTION.value)


def still_serving(status: EmploymentStatus, left_on: date | None, as_of: date) -> bool:
    """Serving on `as_of`: not recorded as left, or left only after that day."""
    if status is EmploymentStatus.SERVING:
        return left_on is None or left_on > as_of
    return left_on is not None and left_on > as_of


def foi_return(session: Session, period_from: date, period_to: date, as_of: date) -> FoiReturn:
    """Every case referred from `period_from` to `period_to` (both days included), except a
    referral cancelled before RPRP began; counts cover every such case, held back or not."""
    if period_to < period_from:
        raise ValueError("the period ends before it starts")
    # Only the columns the return reads: a decade of cases in well under a second.
    # The enum columns as their stored strings (StrEnum values compare equal to them): no
    # enum object made per row and column.
    origin_text, route_text, status_text = (
        cast(col(Case.origin), String), cast(col(Case.route), String),
        cast(col(Officer.employment_status), String))
    query = (sa_select(col(Case.id), origin_text, route_text,
                       col(Case.concern_reported_on), col(Case.public_summary),
                       col(Case.sexual_conduct), col(Case.complainant_name),
                       col(Case.complainant_email), col(Case.complainant_address),
                       col(Officer.id), col(Officer.name), col(Officer.collar_number),
                       status_text, col(Officer.left_on),
                       col(ImportedCase.reference))
             .join(Officer, col(Officer.id) == col(Case.officer_id))
             .join(ImportedCase, col(ImportedCase.case_id) == col(Case.id), isouter=True)
             .where(col(Case.referred_on) >= period_from, col(Case.referred_on) <= period_to,
                    col(Case.state) != CaseState.CANCELLED)
             .order_by(col(Case.referred_on), col(Case.id)))
    result = FoiReturn(period_from, period_to, as_of)
    by_origin: Counter[str] = Counter()
    by_route: Counter[str] = Counter()
    officers: set[int] = set()
    sexual = 0
    for (case_id, origin, route, reported, summary, sexual_conduct, c_name, c_email, c_address,
         officer_id, name, collar, status, left_on, imported_reference) in (
            # Core rows, not ORM ones, fetched at once: a decade of cases without the ORM's
            # per-row loading or a fetch call per row.
            session.connection().execute(query).all()):
        reference = imported_reference or f"RPRP-{case_id:06d}"
        officers.add(officer_id)
        by_origin[origin] += 1
        by_route[route if route in COUNTED_ROUTES else "other"] += 1
        sexual += bool(sexual_conduct)
        found = identifying(summary, officer_name=name, collar_number=collar,
                            complainant_name=c_name, complainant_email=c_email,
                            complainant_address=c_address)
        if found:
            result.held_back.append(HeldBack(reference, case_id, found))
            continue
        result.rows.append(FoiRow(
            reference=reference, date_concern_reported=reported,
            origin="PC" if origin == Origin.PUBLIC_COMPLAINT else "CM",
            behaviour_summary=summary,
            still_serving="Yes" if still_serving(EmploymentStatus(status), left_on, as_of)
            else "No"))
    total = sum(by_origin.values())
    result.counts = {
        "cases": total,
        "distinct officers": len(officers),
        "public complaint (PC)": by_origin[Origin.PUBLIC_COMPLAINT.value],
        "conduct matter (CM)": total - by_origin[Origin.PUBLIC_COMPLAINT.value],
        **{f"origin: {o.value}": by_origin[o.value] for o in Origin},
        "route: reg 23(5)(a)": by_route[Route.REG_23_5_A_NO_CASE_TO_ANSWER.value],
        "route: reg 42(1)(b)": by_route[Route.REG_42_1_B_PANEL_DIRECTION.value],
        "route: other": by_route["other"],
        "sexual-conduct related": sexual,
        "held back for redaction": len(result.held_back),
    }
    return result


def summary_rows(foi: FoiReturn) -> list[list[str]]:
    head = [["period from", foi.period_from.isoformat()], ["period to", foi.period_to.isoformat()],
            ["still serving as of", foi.as_of.isoformat()]]
    return head + [[what, str(n)] for what, n in foi.summary()]


def to_csv(foi: FoiReturn) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.values() for row in foi.rows)
    return out.getvalue()


def summary_csv(foi: FoiReturn) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["measure", "value"], *summary_rows(foi)])
    return out.getvalue()


def to_xlsx(foi: FoiReturn) -> bytes:
    """A workbook: the rows on the first sheet, the counts on a second."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "FOI return"
    sheet.append(list(COLUMNS))
    for row in foi.rows:
        sheet.append([row.reference, row.date_concern_reported, row.origin,
                      row.behaviour_summary, row.still_serving])
    counts = book.create_sheet("Summary")
    counts.append(["measure", "value"])
    for what, value in summary_rows(foi):
        counts.append([what, int(value) if value.isdigit() else value])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write(foi: FoiReturn, path: Path) -> list[Path]:
    """Write the return: .xlsx as one workbook, .csv with a companion `<name>.summary.csv`."""
    if path.suffix.lower() == ".xlsx":
        path.write_bytes(to_xlsx(foi))
        return [path]
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path.name}: the return is written as .csv or .xlsx")
    companion = path.with_name(path.stem + ".summary.csv")
    path.write_text(to_csv(foi), encoding="utf-8")
    companion.write_text(summary_csv(foi), encoding="utf-8")
    return [path, companion]
