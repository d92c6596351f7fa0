"""Trends of the central record (seed 000: "used to establish patterns and trends"): the figures
a board reads, for a period and optionally one unit, live and imported cases together.

Every figure is counted in the database (GROUP BY), never case by case, so the page answers in
well under a second on a decade of history. Each figure is a `Figure`: a small table (its first
column the category, one column per series) that the page draws as a chart, shows as a table
and downloads as CSV. They hold counts only: no name, no reference, no case.

What each counts (said again on the page, under each chart):
- cases are those referred in the period (both days), a referral cancelled before RPRP began
  left out, as in the FOI return and disproportionality monitoring; the unit is the officer's;
- open cases are a snapshot now, whatever their referral date;
- time to report counts reports filed in the period, by the quarter they were filed, in
  working days (England and Wales) from referral: a live case's report when it was filed, an
  imported one's `report_filed_on`;
- deadlines met are live cases' own deadlines that fell due in the period: met means done no
  later than the deadline; done late, marked missed, or still open after it, is not met. The
  import format carries no deadlines, so imported cases are not in this figure;
- non-engagement and referrals back: an imported case's flags, a live case's visit to that
  state (its audit log); escalations: the case's end (UPP, misconduct, vetting);
- action types and learning themes come from live reports only (history has neither);
  learning also counts the multi-agency reflective practice meetings' points (seed 003), by
  the day the meeting was held, when no unit is chosen (a meeting has no officer's unit).
Small counts: figures of one unit, and the figure by unit, show no count below the policy's
smallest count (`RPRP_DISPROPORTIONALITY_MIN_COUNT`, default 5) and none that would let one be
worked out from the others (`suppress_small_counts`).
Pure: the session and `now` come from the caller.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, and_, case, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlmodel import Session, col, func

from models import Action, AuditEvent, Case, Deadline, ImportedCase, LearningItem, Officer
from models.case import Report
from models.enums import (
    TERMINAL_STATES,
    ActionType,
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    Origin,
    Route,
)
from models.learning import MULTI_AGENCY
from models.meetings import Meeting
from tasks.calendar import LONDON, WorkingCalendar, england_and_wales

DEADLINE_KINDS = (DeadlineKind.ACCOUNT, DeadlineKind.DECISION, DeadlineKind.DISCUSSION,
                  DeadlineKind.REPORT)
ESCALATIONS = (CaseState.ESCALATED_UPP, CaseState.ESCALATED_MISCONDUCT,
               CaseState.ESCALATED_VETTING)
IMPORTED_OPEN = "Open in the previous system (imported)"
UNASSIGNED_THEME = "Not yet assigned"
NO_UNIT = "No unit recorded"
GROUPING_MEMORY = "32MB"
SUPPRESSED = "suppressed"
RPRP_LEARNING = "RPRP cases"
MEETING_LEARNING = "multi-agency meetings"
COUNTED = ("cases", "actions", "learning items")

Cell = str | int | float | None


@dataclass(frozen=True)
class Period:
    """What the figures cover: cases referred from `start` to `end` (both days), one unit or
    all."""

    start: date
    end: date
    unit: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the period ends before it starts")


@dataclass
class Figure:
    """One chart's data: `columns[0]` names the category, the rest are its series."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str
    chart: str = "bar"  # bar, stacked or line: how the page draws it
    unit_of_measure: str = "cases"
    # The series the chart draws (all, unless some are context for the table only).
    drawn: tuple[str, ...] = ()

    @property
    def series(self) -> list[str]:
        return self.columns[1:]

    @property
    def chart_series(self) -> list[str]:
        return [s for s in self.series if not self.drawn or s in self.drawn]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows(["" if v is None else v for v in row] for row in self.rows)
        return out.getvalue()


@dataclass
class Trends:
    period: Period
    now: datetime
    figures: list[Figure] = field(default_factory=list)

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)


# -- time ------------------------------------------------------------------------------------

class month_of(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it is
    """'YYYY-MM' of a date or an instant, worked out by the database: cheaper per case than
    extracting the year and the month apart (SQLite parses the date once, not twice)."""

    type = String()
    inherit_cache = True


@compiles(month_of)
def _month_of(element: month_of, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM')"


@compiles(month_of, "sqlite")
def _month_of_sqlite(element: month_of, compiler: Any, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 7)"


class quarter_of_day(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it is
    """'YYYY Qn' (as `quarter_key` writes it) of a date, worked out by the database: a figure by
    quarter then groups a third as many rows as by month."""

    type = String()
    inherit_cache = True


@compiles(quarter_of_day)
def _quarter_of_day(element: quarter_of_day, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY \"Q\"Q')"


@compiles(quarter_of_day, "sqlite")
def _quarter_of_day_sqlite(element: quarter_of_day, compiler: Any, **kw: Any) -> str:
    day = compiler.process(element.clauses, **kw)
    return f"substr({day}, 1, 4) || ' Q' || ((CAST(substr({day}, 6, 2) AS INTEGER) + 2) / 3)"


class not_indexed(FunctionElement[int]):  # noqa: N801 - reads as the SQL it writes
    """A join key SQLite may not look up by index (`+column`, SQLite's way of saying so): it
    then reads the other side of the join in order and looks this side up by primary key.
    SQLite's planner, given a decade of cases and a table that was empty at the last ANALYZE,
    otherwise reads all the cases to probe the small table once for each. Elsewhere the column
    itself (PostgreSQL plans hash joins)."""

    type = Integer()
    inherit_cache = True


@compiles(not_indexed)
def _not_indexed(element: not_indexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(not_indexed, "sqlite")
def _not_indexed_sqlite(element: not_indexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def quarter_of(month: str) -> str:
    """'2024 Q2' of '2024-05'."""
    return quarter_key(int(month[:4]), int(month[5:7]))


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def quarter_key(year: int, month: int) -> str:
    return f"{year:04d} Q{(month - 1) // 3 + 1}"


def months(start: date, end: date) -> list[str]:
    keys, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        keys.append(month_key(y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return keys


def quarters(start: date, end: date) -> list[str]:
    return list(dict.fromkeys(quarter_key(int(k[:4]), int(k[5:])) for k in months(start, end)))


@lru_cache(maxsize=4)
def _working_day_index(calendar: WorkingCalendar) -> dict[date, int]:
    """Working days from the calendar's first day to each day: a difference of two is the
    working days between them, without walking the days each time."""
    index, day, count = {}, date(calendar.first_year, 1, 1), 0
    last = date(calendar.last_year, 12, 31)
    while day <= last:
        count += calendar.is_working_day(day)
        index[day] = count
        day += timedelta(days=1)
    return index


def working_days(start: date, end: date, calendar: WorkingCalendar | None = None) -> int:
    """Working days in (start, end], as `WorkingCalendar.working_days_between` counts them."""
    index = _working_day_index(calendar or england_and_wales())
    return max(index[end] - index[start], 0)


def report_working_days(referred: date | None, filed: date | None,
                        calendar: WorkingCalendar | None = None) -> int | None:
    """An imported report's working days from referral, stored with it at import; None when
    a day is missing or outside the calendar's years (the report is then left out of the
    time-to-report figure rather than guessed)."""
    if referred is None or filed is None:
        return None
    try:
        return working_days(referred, filed, calendar)
    except KeyError:  # a day outside the calendar's years
        return None


def median(histogram: Counter[int]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count)."""
    n = sum(histogram.values())
    if not n:
        return None
    lower, upper = _nth(histogram, (n + 1) // 2), _nth(histogram, n // 2 + 1)
    return (lower + upper) / 2


def percentile(histogram: Counter[int], p: float) -> int | None:
    """Nearest rank: the smallest value with at least p% of the cases at or below it."""
    n = sum(histogram.values())
    return _nth(histogram, max(1, math.ceil(p / 100 * n))) if n else None


def _nth(histogram: Counter[int], rank: int) -> int:
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise ValueError("rank beyond the count")


def _int(value: Any) -> int:
    return int(value)


# -- the cases a figure counts ---------------------------------------------------------------

def _in_scope(period: Period, *, referred: bool = True) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [col(Case.state) != CaseState.CANCELLED]
    if referred:
        where += [col(Case.referred_on) >= period.start, col(Case.referred_on) <= period.end]
    if period.unit:
        where.append(func.lower(col(Officer.unit)) == period.unit.strip().lower())
    return where


def _cases(*columns: Any, period: Period, officer: bool = False,
           imported: bool = False) -> Any:
    """SELECT columns FROM cases, joined to their officer (when a unit is chosen or read) and
    their import row only where the figure needs them: each join costs a lookup per case."""
    query = sa_select(*columns).select_from(Case)
    if officer or period.unit:
        # Every unit: read the cases in order and look each officer up (SQLite would otherwise
        # walk the officers and fetch each one's cases by index, twice as slow). One unit:
        # from its officers to their cases, by index.
        key = col(Case.officer_id) if period.unit else not_indexed(col(Case.officer_id))
        query = query.join(Officer, col(Officer.id) == key)
    if imported:
        query = query.join(ImportedCase, col(ImportedCase.case_id) == col(Case.id),
                           isouter=True)
    return query


def _value(value: Any) -> str:
    return str(getattr(value, "value", value))


def referral_counts(session: Session, period: Period) -> Counter[tuple[str, str, str]]:
    """Cases referred, by (month, origin, route): one scan for both referral charts."""
    month = month_of(col(Case.referred_on))
    counts: Counter[tuple[str, str, str]] = Counter()
    for m, origin, route, n in session.execute(
            _cases(month, col(Case.origin), col(Case.route), func.count(), period=period)
            .where(*_in_scope(period)).group_by(month, col(Case.origin), col(Case.route))):
        counts[(str(m), _value(origin), _value(route))] += _int(n)
    return counts


def _monthly(period: Period, counts: Counter[tuple[str, str, str]], part: int,
             values: Sequence[str]) -> list[list[Cell]]:
    by: Counter[tuple[str, str]] = Counter()
    for key, n in counts.items():
        by[(key[0], key[part])] += n
    return [[m, *(by[(m, v)] for v in values)] for m in months(period.start, period.end)]


def referrals_by_origin(session: Session, period: Period,
                        counts: Counter[tuple[str, str, str]] | None = None) -> Figure:
    counts = referral_counts(session, period) if counts is None else counts
    origins = [o.value for o in Origin]
    return Figure("referrals-by-origin", "Referrals per month by origin",
                  ["month", *(Origin(o).label for o in origins)],
                  _monthly(period, counts, 1, origins),
                  "Cases referred each month, by where the matter came from.", chart="stacked")


def referrals_by_route(session: Session, period: Period,
                       counts: Counter[tuple[str, str, str]] | None = None) -> Figure:
    counts = referral_counts(session, period) if counts is None else counts
    routes = [r.value for r in Route]
    return Figure("referrals-by-route", "Referrals per month by route",
                  ["month", *(_short_route(Route(r)) for r in routes)],
                  _monthly(period, counts, 2, routes),
                  "Cases referred each month, by the statutory route of the referral.",
                  chart="stacked")


def _short_route(route: Route) -> str:
    return {Route.SEVERITY_ASSESSMENT: "Severity assessment (reg 14)",
            Route.DURING_INVESTIGATION: "During an investigation (reg 21(4))",
            Route.REG_23_5_A_NO_CASE_TO_ANSWER: "End of investigation (reg 23(5)(a))",
            Route.SCH3_PARA_24_6: "Schedule 3 para 24(6)",
            Route.REG_42_1_B_PANEL_DIRECTION: "Panel direction (reg 42(1)(b))",
            Route.LINE_MANAGEMENT_CONCERN: "Line manager's concern"}[route]


def open_by_state(session: Session, period: Period) -> Figure:
    imported = col(ImportedCase.case_id).is_not(None)
    counts: Counter[str] = Counter()
    for state, is_imported, n in session.execute(
            _cases(col(Case.state), imported, func.count(), period=period, imported=True)
            .where(*_in_scope(period, referred=False),
                   col(Case.state).not_in([s.value for s in TERMINAL_STATES]))
            .group_by(col(Case.state), imported)):
        counts[IMPORTED_OPEN if is_imported else CaseState(state).label] += _int(n)
    order = [CaseState(s).label for s in CaseState if s not in TERMINAL_STATES]
    rows: list[list[Cell]] = [[label, counts[label]] for label in [*order, IMPORTED_OPEN]
                              if counts[label]]
    return Figure("open-by-state", "Cases open now, by state", ["state", "cases"], rows,
                  "Every case open today, whatever its referral date (the period does not "
                  "apply); an imported open case is still handled in the previous system.")


def time_to_report(session: Session, period: Period,
                   calendar: WorkingCalendar | None = None) -> Figure:
    """Median and 90th percentile, per quarter the report was filed, of the working days from
    referral: an imported report's as the import worked them out (England and Wales), a live
    report's with `calendar`."""
    histograms: dict[str, Counter[int]] = {q: Counter() for q in quarters(period.start,
                                                                          period.end)}
    filed = col(ImportedCase.report_filed_on)
    # An imported report's working days were worked out once, at import (the history does
    # not change): the database counts (quarter, working days) rather than sending every case.
    quarter, days = quarter_of_day(filed), col(ImportedCase.report_working_days)
    imported = (_cases(quarter, days, func.count(), period=period)
                .join(ImportedCase, col(ImportedCase.case_id) == col(Case.id))
                .where(*_in_scope(period, referred=False), filed >= period.start,
                       filed <= period.end, days.is_not(None))
                .group_by(quarter, days))
    for key, elapsed, n in session.execute(imported):
        if key in histograms:
            histograms[key][max(int(elapsed), 0)] += _int(n)
    pairs: Counter[tuple[date, date]] = Counter()
    # Live reports: their filing instant, read as a London day (few rows: live casework).
    start = datetime.combine(period.start, datetime.min.time(), LONDON).astimezone(UTC)
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(),
                           LONDON).astimezone(UTC)
    live = (_cases(col(Case.referred_on), col(Report.submitted_at), func.count(),
                   period=period, imported=True)
            .join(Report, not_indexed(col(Report.case_id)) == col(Case.id))
            .where(*_in_scope(period, referred=False), col(ImportedCase.case_id).is_(None),
                   col(Report.submitted_at) >= start, col(Report.submitted_at) < end)
            .group_by(col(Case.referred_on), col(Report.submitted_at)))
    for referred, submitted, n in session.execute(live):
        pairs[(_day(referred), _london_day(submitted))] += _int(n)
    by_day = _working_day_index(calendar or england_and_wales())
    for (referred, day), n in pairs.items():
        key = quarter_key(day.year, day.month)
        if key in histograms:
            histograms[key][max(by_day[day] - by_day[referred], 0)] += n
    rows: list[list[Cell]] = [[q, sum(h.values()), median(h), percentile(h, 90)]
                              for q, h in histograms.items()]
    return Figure("time-to-report", "Working days from referral to report, per quarter",
                  ["quarter", "reports", "median working days", "90th percentile"], rows,
                  "Reports filed in each quarter: the working days (England and Wales) from "
                  "referral to the report. The median is the middle report's figure; the 90th "
                  "percentile is the figure nine in ten reports took no longer than.",
                  chart="line", unit_of_measure="working days",
                  drawn=("median working days", "90th percentile"))


def deadlines_met(session: Session, period: Period, now: datetime, min_count: int = 1) -> Figure:
    """Share of live cases' deadlines met, per quarter they fell due, by kind; a share of fewer
    than `min_count` deadlines is suppressed (it would tell how each of them went)."""
    start = datetime.combine(period.start, datetime.min.time(), LONDON).astimezone(UTC)
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(),
                           LONDON).astimezone(UTC)
    on_time = and_(col(Deadline.status) == DeadlineStatus.MET,
                   col(Deadline.met_at) <= col(Deadline.due_at))
    due = or_(col(Deadline.status).in_([DeadlineStatus.MET, DeadlineStatus.MISSED]),
              and_(col(Deadline.status) == DeadlineStatus.OPEN, col(Deadline.due_at) < now))
    met = case((on_time, 1), else_=0)
    month = month_of(col(Deadline.due_at))
    query = (sa_select(month, col(Deadline.kind), met, func.count()).select_from(Deadline)
             .join(Case, col(Case.id) == col(Deadline.case_id))
             .join(Officer, col(Officer.id) == col(Case.officer_id))
             .where(*_in_scope(period, referred=False),
                    col(Deadline.kind).in_([k.value for k in DEADLINE_KINDS]), due,
                    col(Deadline.due_at) >= start, col(Deadline.due_at) < end)
             .group_by(month, col(Deadline.kind), met))
    totals: Counter[tuple[str, str]] = Counter()
    kept: Counter[tuple[str, str]] = Counter()
    for m, kind, was_met, n in session.execute(query):
        key = (quarter_of(str(m)), DeadlineKind(kind).value)
        totals[key] += _int(n)
        kept[key] += _int(n) if was_met else 0
    rows: list[list[Cell]] = []
    for q in quarters(period.start, period.end):
        row: list[Cell] = [q]
        for kind in DEADLINE_KINDS:
            total = totals[(q, kind.value)]
            if 0 < total < min_count:
                row.append(SUPPRESSED)
            else:
                row.append(round(100 * kept[(q, kind.value)] / total, 1) if total else None)
        rows.append(row)
    return Figure("deadlines-met", "Share of deadlines met, per quarter (%)",
                  ["quarter", *(k.label for k in DEADLINE_KINDS)], rows,
                  "Live cases' deadlines that fell due in each quarter: met means done no "
                  "later than the deadline; done late, marked missed, or still open after it "
                  "is not met. Imported cases are not counted: the import format has no "
                  "deadlines. Empty where nothing fell due.", chart="line",
                  unit_of_measure="% met")


def _live_visits(session: Session, period: Period, states: Iterable[CaseState]) -> Any:
    """Per quarter of referral and state, the live cases that were ever in that state."""
    month = month_of(col(Case.referred_on))
    return session.execute(
        _cases(month, col(AuditEvent.to_state), func.count(func.distinct(col(Case.id))),
               period=period, imported=True)
        .join(AuditEvent, not_indexed(col(AuditEvent.case_id)) == col(Case.id))
        .where(*_in_scope(period), col(ImportedCase.case_id).is_(None),
               col(AuditEvent.to_state).in_([s.value for s in states]))
        .group_by(month, col(AuditEvent.to_state)))


OutcomeKey = tuple[str, CaseState, bool, bool, str]


def outcome_counts(session: Session, period: Period) -> Counter[OutcomeKey]:
    """Cases referred, by (quarter, state, imported non-engagement and referred-back flags,
    unit): one scan for the outcome charts and the units."""
    quarter = quarter_of_day(col(Case.referred_on))
    ne, rb, unit = (col(ImportedCase.non_engagement), col(ImportedCase.referred_back),
                    col(Officer.unit))
    counts: Counter[OutcomeKey] = Counter()
    for q, state, non_engaged, back, unit_name, n in session.execute(
            _cases(quarter, col(Case.state), ne, rb, unit, func.count(), period=period,
                   officer=True, imported=True)
            .where(*_in_scope(period)).group_by(quarter, col(Case.state), ne, rb, unit)):
        counts[(str(q), CaseState(state), bool(non_engaged), bool(back),
                unit_name or "")] += _int(n)
    return counts


def outcomes(session: Session, period: Period,
             by_case: Counter[OutcomeKey] | None = None) -> tuple[Figure, Figure]:
    """Non-engagement and escalations, and referrals back, per quarter of referral."""
    by_case = outcome_counts(session, period) if by_case is None else by_case
    counts: Counter[tuple[str, str]] = Counter()
    for (q, state, non_engaged, was_back, _), n in by_case.items():
        counts[(q, "referred")] += n
        if state in ESCALATIONS:
            counts[(q, state.value)] += n
        if non_engaged:
            counts[(q, CaseState.NON_ENGAGEMENT_REVIEW.value)] += n
        if was_back:
            counts[(q, CaseState.REFERRED_BACK.value)] += n
    for m, state, n in _live_visits(session, period, (CaseState.NON_ENGAGEMENT_REVIEW,
                                                     CaseState.REFERRED_BACK)):
        counts[(quarter_of(str(m)), str(state))] += _int(n)
    qs = quarters(period.start, period.end)
    escalation = Figure(
        "non-engagement-and-escalations", "Non-engagement and escalations from RPRP, per "
        "quarter of referral",
        ["quarter", "referred", "non-engagement", "escalated: UPP", "escalated: misconduct",
         "escalated: vetting"],
        [[q, counts[(q, "referred")], counts[(q, CaseState.NON_ENGAGEMENT_REVIEW.value)],
          *(counts[(q, s.value)] for s in ESCALATIONS)] for q in qs],
        "Of the cases referred in each quarter: those where the officer did not engage (a "
        "live case that went to the non-engagement review; an imported case so flagged), and "
        "those that ended in unsatisfactory performance procedures, misconduct proceedings "
        "or the Vetting Regulations.",
        drawn=("non-engagement", "escalated: UPP", "escalated: misconduct", "escalated: vetting"))
    back = Figure(
        "referrals-back", "Referrals back to the appropriate authority, per quarter of referral",
        ["quarter", "referred", "referred back"],
        [[q, counts[(q, "referred")], counts[(q, CaseState.REFERRED_BACK.value)]] for q in qs],
        "Of the cases referred in each quarter, those referred back to the appropriate "
        "authority (a live case that went to that state; an imported case so flagged).",
        drawn=("referred back",))
    return escalation, back


def action_types(session: Session, period: Period) -> Figure:
    counts = Counter({ActionType(t): _int(n) for t, n in session.execute(
        _cases(col(Action.type), func.count(), period=period)
        .join(Action, not_indexed(col(Action.case_id)) == col(Case.id))
        .where(*_in_scope(period)).group_by(col(Action.type)))})
    return Figure("action-types", "Action types agreed", ["action type", "actions"],
                  [[t.label, counts[t]] for t in ActionType],
                  "Actions agreed in the reports of cases referred in the period (live cases: "
                  "the import format has no actions).", unit_of_measure="actions")


def _learning_items(session: Session, period: Period, category: Any,
                    meeting_category: Any) -> Counter[tuple[str, str]]:
    """Learning items by (category, source): RPRP's from the reports of cases referred in the
    period, the meetings' (multi-agency) by the day the meeting was held, with no unit chosen."""
    counts: Counter[tuple[str, str]] = Counter()
    for key, n in session.execute(
            _cases(category, func.count(), period=period)
            .join(LearningItem, not_indexed(col(LearningItem.case_id)) == col(Case.id))
            .where(*_in_scope(period)).group_by(category)):
        counts[(str(key or ""), RPRP_LEARNING)] += _int(n)
    if not period.unit:
        held = func.coalesce(col(Meeting.held_on), col(Meeting.meeting_on))
        of_meeting = meeting_category(held)
        for key, n in session.execute(
                sa_select(of_meeting, func.count()).select_from(LearningItem)
                .join(Meeting, col(Meeting.id) == col(LearningItem.meeting_id))
                .where(col(LearningItem.origin) == MULTI_AGENCY, held >= period.start,
                       held <= period.end)
                .group_by(of_meeting)):
            counts[(str(key or ""), MEETING_LEARNING)] += _int(n)
    return counts


_SOURCES_NOTE = ("RPRP's items are the lessons in the reports of cases referred in the period "
                 "(live cases: history has no register); the multi-agency meetings' are the "
                 "learning points the Case Review Committee considered, by the day the meeting "
                 "was held, and are left out when a unit is chosen (a meeting has no unit).")


def learning_themes(session: Session, period: Period) -> Figure:
    theme = col(LearningItem.theme)
    counts = _learning_items(session, period, theme, lambda held: theme)
    themes = sorted({t for t, _ in counts},
                    key=lambda t: (-(counts[(t, RPRP_LEARNING)] + counts[(t, MEETING_LEARNING)]),
                                   t))
    return Figure("learning-themes", "Learning themes",
                  ["theme", RPRP_LEARNING, MEETING_LEARNING],
                  [[t or UNASSIGNED_THEME, counts[(t, RPRP_LEARNING)],
                    counts[(t, MEETING_LEARNING)]] for t in themes],
                  "Learning register items by theme. " + _SOURCES_NOTE, chart="stacked",
                  unit_of_measure="learning items")


def learning_per_quarter(session: Session, period: Period) -> Figure:
    """The register's new learning per quarter: RPRP's force lessons and the multi-agency
    meetings' points side by side, so a board sees both kinds of learning arrive."""
    counts = _learning_items(session, period, month_of(col(Case.referred_on)), month_of)
    by_quarter: Counter[tuple[str, str]] = Counter()
    for (month, source), n in counts.items():
        by_quarter[(quarter_of(month), source)] += n
    return Figure("learning-per-quarter", "Learning items per quarter, RPRP and multi-agency",
                  ["quarter", RPRP_LEARNING, MEETING_LEARNING],
                  [[q, by_quarter[(q, RPRP_LEARNING)], by_quarter[(q, MEETING_LEARNING)]]
                   for q in quarters(period.start, period.end)],
                  "Learning register items per quarter (RPRP: of the case's referral; "
                  "multi-agency: of the meeting). " + _SOURCES_NOTE, chart="stacked",
                  unit_of_measure="learning items")


def by_unit(session: Session, period: Period,
            by_case: Counter[OutcomeKey] | None = None) -> Figure:
    by_case = outcome_counts(session, period) if by_case is None else by_case
    counts: Counter[tuple[str, str]] = Counter()
    for (_, state, _, _, unit), n in by_case.items():
        counts[(unit, "referred")] += n
        counts[(unit, "open")] += n if state not in TERMINAL_STATES else 0
        counts[(unit, "escalated")] += n if state in ESCALATIONS else 0
    units = sorted({u for u, _ in counts}, key=lambda u: (-counts[(u, "referred")], u))
    return Figure("by-unit", "Referrals by unit", ["unit", "referred", "still open", "escalated"],
                  [[u or NO_UNIT, counts[(u, "referred")], counts[(u, "open")],
                    counts[(u, "escalated")]] for u in units],
                  "Cases referred in the period, by the officer's unit: how many, how many are "
                  "still open, how many were escalated.", chart="bar")


def suppress_small_counts(figure: Figure, min_count: int) -> Figure:
    """The figure with every count below `min_count` (but not zero) shown as `SUPPRESSED`, and
    with it whatever would let it be worked out: where a column or a row (whose total another
    figure shows) would hold only one suppressed count, its next smallest is suppressed too.
    A time to report of suppressed reports goes with them. Shares (deadlines met) are
    suppressed where they are counted, with their denominators."""
    if min_count <= 1:
        return figure
    counted = (range(1, len(figure.columns)) if figure.unit_of_measure in COUNTED
               else range(1, 2) if figure.key == "time-to-report" else range(0))
    rows = [list(row) for row in figure.rows]
    cells = {(i, j) for i in range(len(rows)) for j in counted
             if isinstance(rows[i][j], int)}
    hidden = {(i, j) for i, j in cells if 0 < int(rows[i][j] or 0) < min_count}
    lines = ([[(i, j) for j in counted if (i, j) in cells] for i in range(len(rows))]
             + [[(i, j) for i in range(len(rows)) if (i, j) in cells] for j in counted])
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(c in hidden for c in line) == 1:
                shown = [c for c in line if c not in hidden]
                if shown:
                    # The smallest count that is not zero, else a zero.
                    hidden.add(min(shown, key=lambda c: (rows[c[0]][c[1]] == 0,
                                                          rows[c[0]][c[1]])))
                    changed = True
    for i, j in hidden:
        rows[i][j] = SUPPRESSED
        if figure.key == "time-to-report":
            rows[i][2:] = [SUPPRESSED] * (len(rows[i]) - 2)
    note = figure.note
    if hidden or figure.key == "deadlines-met":
        note += (f" Counts below {min_count}, and any that would let one be worked out, are "
                 f"shown as \"{SUPPRESSED}\".")
    return Figure(figure.key, figure.title, figure.columns, rows, note, figure.chart,
                  figure.unit_of_measure, figure.drawn)


def _builders(calendar: WorkingCalendar | None,
              min_count: int) -> dict[str, Callable[[Session, Period, datetime], Figure]]:
    return {
        "referrals-by-origin": lambda s, p, now: referrals_by_origin(s, p),
        "referrals-by-route": lambda s, p, now: referrals_by_route(s, p),
        "open-by-state": lambda s, p, now: open_by_state(s, p),
        "time-to-report": lambda s, p, now: time_to_report(s, p, calendar),
        "deadlines-met": lambda s, p, now: deadlines_met(s, p, now, _smallest(p, min_count)),
        "non-engagement-and-escalations": lambda s, p, now: outcomes(s, p)[0],
        "referrals-back": lambda s, p, now: outcomes(s, p)[1],
        "action-types": lambda s, p, now: action_types(s, p),
        "learning-themes": lambda s, p, now: learning_themes(s, p),
        "learning-per-quarter": lambda s, p, now: learning_per_quarter(s, p),
        "by-unit": lambda s, p, now: by_unit(s, p),
    }


FIGURE_KEYS = tuple(_builders(None, 1))


def _smallest(period: Period, min_count: int) -> int:
    """Suppression applies to one unit's figures (a unit can be a handful of officers); the
    whole force's figures are shown as they are, except the figure by unit."""
    return min_count if period.unit else 1


def _protected(figure: Figure, period: Period, min_count: int) -> Figure:
    smallest = min_count if figure.key == "by-unit" else _smallest(period, min_count)
    return suppress_small_counts(figure, smallest)


def _room_to_group(session: Session) -> None:
    """On PostgreSQL, memory enough (for this transaction only) to group a decade's cases in a
    hash rather than sorting them on disk: 0.8 s -> 0.3 s for the outcome counts of 100,000."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{GROUPING_MEMORY}'"))


def figure(session: Session, key: str, period: Period, now: datetime, *, min_count: int,
           calendar: WorkingCalendar | None = None) -> Figure:
    """One figure by its key (a chart's image or CSV needs only its own), its small counts
    suppressed as on the page."""
    builders = _builders(calendar, min_count)
    if key not in builders:
        raise KeyError(key)
    _room_to_group(session)
    return _protected(builders[key](session, period, now), period, min_count)


def trends(session: Session, period: Period, now: datetime, *, min_count: int,
           calendar: WorkingCalendar | None = None) -> Trends:
    """Every figure of the trends page, for the period and unit, small counts suppressed
    (`min_count=1` shows every count)."""
    _room_to_group(session)
    referred, by_case = referral_counts(session, period), outcome_counts(session, period)
    escalation, back = outcomes(session, period, by_case)
    figures = [
        referrals_by_origin(session, period, referred),
        referrals_by_route(session, period, referred),
        open_by_state(session, period), time_to_report(session, period, calendar),
        deadlines_met(session, period, now, _smallest(period, min_count)), escalation, back,
        action_types(session, period), learning_themes(session, period),
        learning_per_quarter(session, period), by_unit(session, period, by_case)]
    return Trends(period, now, [_protected(f, period, min_count) for f in figures])


def units(session: Session) -> list[str]:
    """The units cases were referred from: the page's choice of unit."""
    return [u for (u,) in session.execute(
        sa_select(col(Officer.unit)).where(col(Officer.unit) != "").distinct()
        .order_by(col(Officer.unit)))]


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _london_day(value: Any) -> date:
    instant = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
    return instant.astimezone(LONDON).date()
