"""Figure 7, the central record at force scale: a decade of history for a large force (100,000
generated cases by default) imported into an empty case DB, then the FOI export, the
disproportionality answer and the trends page (its figures and their charts) timed on it.

Targets (issue 13): import < 60 s, FOI export < 3 s, disproportionality < 1 s, trends < 1 s.
The case DB is its own (a SQLite file, or a fresh PostgreSQL database), never the settings' one.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

TARGETS = {"import": 60.0, "foi": 3.0, "disproportionality": 1.0, "trends": 1.0}
FIRST_DAY, LAST_DAY = date(2015, 1, 1), date(2024, 12, 31)
UNITS = [f"{area} {kind}" for area in ("North", "South", "East", "West")
         for kind in ("Response", "Neighbourhood", "CID")]
ETHNICITIES = (("White", 80), ("Asian", 7), ("Black", 4), ("Mixed", 3), ("Other", 2),
               ("not_stated", 4))
OUTCOMES = (("closed_complete", 70), ("closed_nfa", 10), ("escalated_upp", 4),
            ("escalated_misconduct", 2), ("escalated_vetting", 1), ("discontinued", 3),
            ("open", 10))
ORIGINS = ("conduct_matter", "public_complaint", "recordable_conduct_matter", "internal")
ROUTES = ("severity_assessment", "during_investigation", "reg_23_5_a_no_case_to_answer",
          "sch3_para_24_6", "reg_42_1_b_panel_direction", "line_management_concern")


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def cases_csv(n: int, seed: int = 13) -> str:
    """N plausible past cases over a decade: about three per officer, every unit, outcomes,
    flags and report dates in proportions a force might see."""
    from tasks.history_import import CASE_COLUMNS

    rng = random.Random(seed)
    span = (LAST_DAY - FIRST_DAY).days
    officers = max(1, n // 3)
    lines = [",".join(CASE_COLUMNS)]
    for i in range(n):
        officer = rng.randrange(officers)
        reported = FIRST_DAY + timedelta(days=rng.randrange(span - 200))
        referred = reported + timedelta(days=rng.randrange(1, 40))
        outcome = _pick(rng, OUTCOMES)
        closed = referred + timedelta(days=rng.randrange(30, 160))
        filed = referred + timedelta(days=rng.randrange(15, 120))
        has_report = outcome in ("closed_complete", "closed_nfa")
        left = rng.random() < 0.1
        row = {
            "reference": f"HIST-{i:07d}", "concern_reported_on": reported.isoformat(),
            "referred_on": referred.isoformat(), "origin": rng.choice(ORIGINS),
            "route": rng.choice(ROUTES), "allegation_category": "Discreditable conduct",
            "rprp_reason": "Communication",
            "public_summary": "Spoke discourteously to a member of the public during a stop",
            "sexual_conduct": "yes" if rng.random() < 0.03 else "no",
            "collar_number": f"B{officer:06d}", "officer_name": f"PC Officer{officer} Sample",
            "rank": "constable", "probationer": "no", "unit": UNITS[officer % len(UNITS)],
            "employment_status": "left" if left else "serving",
            "left_on": (closed + timedelta(days=30)).isoformat() if left else "",
            "ethnicity": _pick(rng, ETHNICITIES), "sex": rng.choice(("female", "male")),
            "age_band": rng.choice(("18-24", "25-34", "35-44", "45-54", "55+")),
            "outcome": outcome, "closed_on": "" if outcome == "open" else closed.isoformat(),
            "non_engagement": "yes" if rng.random() < 0.05 else "no",
            "referred_back": "yes" if rng.random() < 0.03 else "no",
            "report_filed_on": filed.isoformat() if has_report else "",
        }
        lines.append(",".join(row[c] for c in CASE_COLUMNS))
    return "\n".join(lines) + "\n"


def workforce_csv() -> str:
    lines = ["as_of,characteristic,group,headcount"]
    for year in range(FIRST_DAY.year, LAST_DAY.year + 1):
        for group, share in ETHNICITIES:
            lines.append(f"{year}-03-31,ethnicity,{group},{share * 1500}")
    return "\n".join(lines) + "\n"


def _timed(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "n": repeats}


def run(url: str, n: int, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Import `n` cases into the empty case DB at `url`, then time the three answers."""
    from sqlmodel import Session

    from infra.db import engine_for
    from infra.migrations import upgrade_to_head
    from portal.charts import figure_svg
    from tasks.disproportionality import disproportionality
    from tasks.foi import foi_return, to_csv
    from tasks.history_import import import_cases, import_workforce, refresh_statistics
    from tasks.trends import Period, trends

    upgrade_to_head(url)
    engine = engine_for(url)
    log(f"central record: generating {n:,} cases ...")
    text = cases_csv(n)

    def in_session(fn: Callable[[Session], Any]) -> Callable[[], Any]:
        def go() -> Any:
            with Session(engine, expire_on_commit=False) as session:
                result = fn(session)
                session.commit()
                return result
        return go

    log("central record: importing ...")
    started = time.perf_counter()
    imported = in_session(lambda s: import_cases(s, text))()
    in_session(refresh_statistics)()  # as `rprp import cases` does after storing
    import_seconds = time.perf_counter() - started
    in_session(lambda s: import_workforce(s, workforce_csv()))()
    log(f"central record: {imported.added:,} cases imported in {import_seconds:.1f} s")
    now = datetime.now(UTC)
    decade = Period(FIRST_DAY, LAST_DAY)

    def foi(session: Session) -> int:
        return len(to_csv(foi_return(session, FIRST_DAY, LAST_DAY, LAST_DAY)))

    def dp(session: Session) -> Any:
        return disproportionality(session, characteristic="ethnicity", period_from=FIRST_DAY,
                                  period_to=LAST_DAY, min_count=5).as_json()

    def page(session: Session) -> int:
        return len(trends(session, decade, now, min_count=5).figures)

    figures = in_session(lambda s: trends(s, decade, now, min_count=5).figures)()

    def charts() -> int:
        return sum(len(figure_svg(f)) for f in figures)

    def page_unit(session: Session) -> int:
        return len(trends(session, Period(FIRST_DAY, LAST_DAY, UNITS[0]), now,
                          min_count=5).figures)

    log("central record: timing the FOI export, disproportionality and trends ...")
    timings = {
        "foi": _timed(in_session(foi), repeats),
        "disproportionality": _timed(in_session(dp), repeats),
        "trends": _timed(in_session(page), repeats),
        "trends_one_unit": _timed(in_session(page_unit), repeats),
        "trends_charts": _timed(charts, repeats),
    }
    engine.dispose()
    out: dict[str, Any] = {"cases": n, "added": imported.added,
                           "import_seconds": round(import_seconds, 2), "targets": TARGETS,
                           "timings": timings}
    out["met"] = {"import": import_seconds < TARGETS["import"],
                  **{k: timings[k]["median"] < TARGETS[k]
                     for k in ("foi", "disproportionality", "trends")}}
    for what, t in timings.items():
        log(f"central record: {what} median {t['median']:.2f} s")
    return out
