"""Trends figures against values worked out by hand for a seeded unit: imported and live cases
together, a report across the Easter bank holidays, deadlines met, late, missed and still open,
flags from history and visits in the audit log, and a case of another unit left out."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import pytest

from infra.db import session_scope
from models import Action, AuditEvent, Case, Deadline, LearningItem, Officer
from models.case import Report
from models.enums import (
    ActionType,
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    Origin,
    Rank,
    ReviewerBasis,
    Route,
)
from models.learning import MULTI_AGENCY
from models.meetings import Meeting
from tasks.calendar import england_and_wales
from tasks.history_import import import_cases
from tasks.trends import (
    IMPORTED_OPEN,
    SUPPRESSED,
    Figure,
    Period,
    Trends,
    median,
    percentile,
    suppress_small_counts,
    trends,
    working_days,
)
from tests.unit.test_history_import import HEADER, case_line

TAG = uuid.uuid4().hex[:8]
UNIT = f"Trends Unit {TAG}"
PERIOD = Period(date(2024, 1, 1), date(2024, 6, 30), UNIT)
NOW = datetime(2024, 6, 25, 9, 0, tzinfo=UTC)


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def live_case(collar: str, referred: date, origin: Origin, route: Route,
              state: CaseState) -> int:
    with session_scope() as session:
        officer = Officer(collar_number=collar, name="PC Lee Live", email="lee@force.example",
                          rank=Rank.CONSTABLE, unit=UNIT)
        session.add(officer)
        session.flush()
        assert officer.id is not None
        case = Case(state=state, route=route, origin=origin, concern_reported_on=referred,
                    referred_on=referred, incident_on=referred, allegation_category="Conduct",
                    rprp_reason="Communication", behaviour_summary="x", public_summary="x",
                    aa_decision_maker="AA", officer_id=officer.id, reviewer_name="Sgt R",
                    reviewer_email="r@force.example", reviewer_basis=ReviewerBasis.LINE_MANAGER)
        session.add(case)
        session.flush()
        assert case.id is not None
        return case.id


@lru_cache(maxsize=1)
def seed() -> None:
    """The unit's cases, once per test session (other layers' tests read them too)."""
    lines = [
        case_line(f"TR-{TAG}-1", f"T{TAG}1", referred_on="2024-01-10",
                  concern_reported_on="2024-01-02", unit=UNIT, report_filed_on="2024-02-09",
                  closed_on="2024-02-20"),
        case_line(f"TR-{TAG}-2", f"T{TAG}2", referred_on="2024-01-20",
                  concern_reported_on="2024-01-02", unit=UNIT, origin="conduct_matter",
                  route="severity_assessment", outcome="escalated_upp", closed_on="2024-03-01",
                  non_engagement="yes", report_filed_on=""),
        case_line(f"TR-{TAG}-3", f"T{TAG}3", referred_on="2024-02-05",
                  concern_reported_on="2024-01-02", unit=UNIT, origin="internal",
                  route="line_management_concern", outcome="open", closed_on="",
                  referred_back="yes", report_filed_on=""),
        # Referred the day before Good Friday; filed after Easter Monday: 4 working days.
        case_line(f"TR-{TAG}-4", f"T{TAG}4", referred_on="2024-03-28",
                  concern_reported_on="2024-03-01", unit=UNIT, report_filed_on="2024-04-05",
                  closed_on="2024-04-10"),
        # Referred before the period, its report filed in it: counted in time to report only.
        case_line(f"TR-{TAG}-5", f"T{TAG}5", referred_on="2023-12-29",
                  concern_reported_on="2023-12-01", unit=UNIT, report_filed_on="2024-01-05",
                  closed_on="2024-01-10"),
        case_line(f"TR-{TAG}-6", f"T{TAG}6", referred_on="2024-01-15",
                  concern_reported_on="2024-01-02", unit=f"Other {TAG}",
                  report_filed_on="2024-01-16", closed_on="2024-01-20"),
    ]
    with session_scope() as session:
        import_cases(session, "\n".join([HEADER, *lines]))
    first = live_case(f"L{TAG}1", date(2024, 4, 2), Origin.CONDUCT_MATTER,
                      Route.DURING_INVESTIGATION, CaseState.ACTIONS_MONITORING)
    second = live_case(f"L{TAG}2", date(2024, 5, 6), Origin.RECORDABLE_CONDUCT_MATTER,
                       Route.SEVERITY_ASSESSMENT, CaseState.ESCALATED_MISCONDUCT)
    with session_scope() as session:
        def deadline(kind: DeadlineKind, due: str, status: DeadlineStatus,
                     met: str | None = None, round: int = 1) -> Deadline:
            return Deadline(case_id=first, kind=kind, round=round, due_at=at(due, 22),
                            calendar_version="test", status=status,
                            met_at=at(met) if met else None)
        session.add_all([
            deadline(DeadlineKind.ACCOUNT, "2024-04-10", DeadlineStatus.MET, "2024-04-09"),
            deadline(DeadlineKind.DECISION, "2024-04-20", DeadlineStatus.MET, "2024-04-22"),
            deadline(DeadlineKind.DISCUSSION, "2024-05-10", DeadlineStatus.MISSED),
            deadline(DeadlineKind.REPORT, "2024-05-15", DeadlineStatus.MET, "2024-05-01"),
            deadline(DeadlineKind.REPORT, "2024-06-20", DeadlineStatus.OPEN, round=2),
            deadline(DeadlineKind.ACCOUNT, "2024-06-28", DeadlineStatus.OPEN, round=2),
            deadline(DeadlineKind.DECISION, "2024-06-01", DeadlineStatus.CANCELLED, round=2),
            Report(case_id=first, issue_summary="i", discussion_summary="d", officer_lessons="o",
                   force_lessons="f", review_period_weeks=12, agreed_on=date(2024, 4, 30),
                   submitted_by="r@force.example", submitted_at=at("2024-05-01", 10),
                   pdr_due_on=date(2024, 8, 1)),
            *(Action(case_id=first, type=t, description="d", owner="o", due_on=date(2024, 7, 1))
              for t in (ActionType.TRAINING, ActionType.TRAINING, ActionType.RESTORATIVE)),
            *(LearningItem(case_id=first, part=p, theme=t, text="lesson")
              for p, t in ((1, "Communication"), (2, "Communication"), (3, ""))),
            *(AuditEvent(case_id=first, actor="t", action="referred_back",
                         to_state=CaseState.REFERRED_BACK.value) for _ in range(2)),
            AuditEvent(case_id=second, actor="t", action="non_engagement",
                       to_state=CaseState.NON_ENGAGEMENT_REVIEW.value),
        ])


@pytest.fixture(scope="module")
def seeded() -> Trends:
    seed()
    with session_scope() as session:
        return trends(session, PERIOD, NOW, min_count=1)


def rows(result: Trends, key: str) -> dict[str, list[object]]:
    return {str(r[0]): r[1:] for r in result.figure(key).rows}


def test_referrals_per_month_by_origin_cover_every_month_of_the_period(seeded: Trends) -> None:
    figure = seeded.figure("referrals-by-origin")
    assert figure.series == [o.label for o in Origin]  # conduct, complaint, recordable, internal
    assert rows(seeded, "referrals-by-origin") == {
        "2024-01": [1, 1, 0, 0], "2024-02": [0, 0, 0, 1], "2024-03": [0, 1, 0, 0],
        "2024-04": [1, 0, 0, 0], "2024-05": [0, 0, 1, 0], "2024-06": [0, 0, 0, 0]}


def test_referrals_by_route(seeded: Trends) -> None:
    by_route = rows(seeded, "referrals-by-route")
    routes = list(Route)
    assert by_route["2024-01"][routes.index(Route.SEVERITY_ASSESSMENT)] == 1
    assert by_route["2024-01"][routes.index(Route.REG_23_5_A_NO_CASE_TO_ANSWER)] == 1
    assert by_route["2024-04"][routes.index(Route.DURING_INVESTIGATION)] == 1
    assert sum(sum(int(v) for v in r) for r in by_route.values()) == 6  # type: ignore[call-overload]


def test_open_cases_by_state_are_a_snapshot_of_the_unit(seeded: Trends) -> None:
    assert rows(seeded, "open-by-state") == {CaseState.ACTIONS_MONITORING.label: [1],
                                             IMPORTED_OPEN: [1]}


def test_working_days_to_report_per_quarter_of_filing(seeded: Trends) -> None:
    # Q1: 10 Jan -> 9 Feb is 22 working days; 29 Dec -> 5 Jan is 4 (New Year's Day off).
    # Q2: 28 Mar -> 5 Apr is 4 (Good Friday, Easter Monday off); live 2 Apr -> 1 May is 21.
    assert rows(seeded, "time-to-report") == {"2024 Q1": [2, 13.0, 22], "2024 Q2": [2, 12.5, 21]}


def test_share_of_live_deadlines_met_per_quarter(seeded: Trends) -> None:
    # Q2: account met; decision late; discussion missed; report met once, then open past due.
    # The account still open but not yet due, and the cancelled decision, are not counted.
    assert rows(seeded, "deadlines-met") == {"2024 Q1": [None, None, None, None],
                                             "2024 Q2": [100.0, 0.0, 0.0, 50.0]}


def test_non_engagement_escalations_and_referrals_back(seeded: Trends) -> None:
    assert rows(seeded, "non-engagement-and-escalations") == {
        "2024 Q1": [4, 1, 1, 0, 0], "2024 Q2": [2, 1, 0, 1, 0]}
    # Two audit events of one referral back count once.
    assert rows(seeded, "referrals-back") == {"2024 Q1": [4, 1], "2024 Q2": [2, 1]}


def test_action_types_and_learning_themes(seeded: Trends) -> None:
    actions = rows(seeded, "action-types")
    assert actions[ActionType.TRAINING.label] == [2]
    assert actions[ActionType.RESTORATIVE.label] == [1]
    assert actions[ActionType.MANAGEMENT_MEETING.label] == [0]
    # One unit chosen: a meeting's learning (no unit) is left out.
    assert rows(seeded, "learning-themes") == {"Communication": [2, 0], "Not yet assigned": [1, 0]}


def test_by_unit_counts_only_the_chosen_unit(seeded: Trends) -> None:
    assert rows(seeded, "by-unit") == {UNIT: [6, 2, 2]}


def test_the_csv_holds_the_table(seeded: Trends) -> None:
    text = seeded.figure("deadlines-met").to_csv()
    assert text.splitlines()[0].startswith("quarter,")
    assert "2024 Q2,100.0,0.0,0.0,50.0" in text.splitlines()
    assert "2024 Q1,,,," in text.splitlines()


def test_working_days_match_the_calendar() -> None:
    calendar = england_and_wales(())
    start = date(2019, 12, 20)
    for offset in range(0, 400, 7):
        end = start + timedelta(days=offset)
        assert working_days(start, end, calendar) == calendar.working_days_between(start, end)


def test_median_and_nearest_rank_percentile() -> None:
    assert median(Counter({1: 1, 2: 1, 3: 1})) == 2
    assert median(Counter({1: 2, 5: 2})) == 3.0
    assert percentile(Counter({v: 1 for v in range(1, 11)}), 90) == 9
    assert percentile(Counter({v: 1 for v in range(1, 12)}), 90) == 10
    assert median(Counter()) is None and percentile(Counter(), 90) is None


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Period(date(2024, 2, 1), date(2024, 1, 1))


def test_one_units_small_counts_are_suppressed_with_what_would_reveal_them() -> None:
    seed()
    with session_scope() as session:
        protected = trends(session, PERIOD, NOW, min_count=5)
    # The unit's 6 referrals show; its 2 open and 2 escalated do not.
    assert rows(protected, "by-unit") == {UNIT: [6, SUPPRESSED, SUPPRESSED]}
    for f in protected.figures:
        if f.unit_of_measure in ("cases", "actions", "learning items"):
            shown = [v for row in f.rows for v in row[1:] if isinstance(v, int)]
            assert all(v == 0 or v >= 5 for v in shown), f.key
    # Two reports a quarter: their count and the days they took are withheld.
    assert rows(protected, "time-to-report") == {"2024 Q1": [SUPPRESSED] * 3,
                                                 "2024 Q2": [SUPPRESSED] * 3}
    # A share of one deadline tells how it went.
    assert rows(protected, "deadlines-met")["2024 Q2"] == [SUPPRESSED] * 4
    assert "shown as \"suppressed\"" in protected.figure("by-unit").note


def test_secondary_suppression_worked_by_hand() -> None:
    figure = Figure("by-unit", "t", ["unit", "referred", "open"],
                    [["North", 40, 20], ["South", 30, 3], ["East", 25, 9]], "n.")
    # South's 3 open is below 5. Each row and column has a total shown elsewhere (the unit's
    # referrals, the force's open cases), so none may hold a single suppressed count: South's
    # row loses its 30; the open column its next smallest, 9; then the referred column, holding
    # only South's, loses 25.
    assert suppress_small_counts(figure, 5).rows == [
        ["North", 40, 20], ["South", SUPPRESSED, SUPPRESSED], ["East", SUPPRESSED, SUPPRESSED]]
    # Nothing below the smallest count: nothing changes, zeros are shown.
    plain = Figure("by-unit", "t", ["unit", "referred"], [["A", 0], ["B", 7]], "n.")
    assert suppress_small_counts(plain, 5).rows == [["A", 0], ["B", 7]]
    assert suppress_small_counts(figure, 1).rows == figure.rows


def test_multi_agency_learning_is_in_the_trends_by_the_meeting_day() -> None:
    theme = f"Information sharing {TAG}"
    with session_scope() as session:
        meeting = Meeting(reference=f"RPM-{TAG}", child_name="Kid Trendsworth",
                          child_date_of_birth=date(1985, 1, 1), requested_by_name="R",
                          requested_by_agency="Health", requested_by_email="r@nhs.example",
                          facilitator_name="F", facilitator_email="f@council.example",
                          purpose="p", meeting_on=date(1991, 2, 10), held_on=date(1991, 2, 12))
        session.add(meeting)
        session.flush()
        session.add_all(LearningItem(meeting_id=meeting.id, origin=MULTI_AGENCY,
                                     source="crc_summary", part=p, theme=theme, text="point")
                        for p in (1, 2))
    period = Period(date(1991, 1, 1), date(1991, 6, 30))
    with session_scope() as session:
        whole = trends(session, period, NOW, min_count=1)
        one_unit = trends(session, Period(period.start, period.end, UNIT), NOW, min_count=1)
    assert rows(whole, "learning-themes")[theme] == [0, 2]
    assert whole.figure("learning-themes").series == ["RPRP cases", "multi-agency meetings"]
    per_quarter = rows(whole, "learning-per-quarter")
    assert int(per_quarter["1991 Q1"][1]) >= 2  # type: ignore[call-overload]
    assert theme not in rows(one_unit, "learning-themes")
