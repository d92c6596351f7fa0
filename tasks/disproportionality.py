"""Disproportionality monitoring (seed 004): at each stage, each group's rate and its relative
rate index (RRI) against a reference group, with a Katz 95% interval, small counts suppressed.

Stages: `referred` (cases referred in the period per 1,000 of the group's headcount, from the
latest workforce snapshot on or before the period's end); `escalated`, `non_engagement` and
`referred_back` (of the group's cases referred in the period, the share that ended in UPP,
misconduct or vetting, or had that flag). The figures name no one and no case: only counts.

Suppression: a count below `min_count` (but not zero) is suppressed, and so is one whose
complement (denominator minus count, in the share stages) is; where a stage has exactly one
suppressed group, the next smallest is suppressed too, so it cannot be worked out by
subtraction; a group suppressed at `referred` is suppressed at every stage (its case count is
their denominator); when the reference group is suppressed no RRI is shown in that stage (each
RRI would give its rate away). "Not stated" is always its own group, never the reference.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from models import AuditEvent, Case, ImportedCase, MonitoringRecord, WorkforceHeadcount
from models.enums import CaseState

CHARACTERISTICS = ("ethnicity", "sex", "age_band", "disability", "religion",
                   "sexual_orientation")
STAGES = ("referred", "escalated", "non_engagement", "referred_back")
NOT_STATED = "Not stated"
ESCALATED = frozenset({CaseState.ESCALATED_UPP, CaseState.ESCALATED_MISCONDUCT,
                       CaseState.ESCALATED_VETTING})
Z95 = 1.96
PER = 1000  # referral rates are per 1,000 of the group's headcount


@dataclass(frozen=True)
class CaseFacts:
    """What monitoring needs of a case: its group and what happened, nothing else; `cases`
    says how many cases share exactly these facts."""

    group: str
    escalated: bool
    non_engagement: bool
    referred_back: bool
    cases: int = 1


@dataclass
class GroupFigures:
    group: str
    count: int | None
    denominator: int | None
    rate: float | None
    rri: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    suppressed: bool = False


@dataclass
class StageFigures:
    stage: str
    groups: list[GroupFigures] = field(default_factory=list)


@dataclass
class Disproportionality:
    characteristic: str
    reference_group: str | None
    period_from: date
    period_to: date
    min_count: int
    not_stated_share: float | None
    stages: list[StageFigures]

    def as_json(self) -> dict[str, Any]:
        return {"characteristic": self.characteristic, "reference_group": self.reference_group,
                "from": self.period_from.isoformat(), "to": self.period_to.isoformat(),
                "min_count": self.min_count, "not_stated_share": self.not_stated_share,
                "stages": [{"stage": s.stage, "groups": [asdict(g) for g in s.groups]}
                           for s in self.stages]}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        columns = ["group", "count", "denominator", "rate", "rri", "ci_low", "ci_high",
                   "suppressed"]
        writer.writerow(["stage", *columns])
        for stage in self.stages:
            for g in stage.groups:
                values = asdict(g)
                writer.writerow([stage.stage, *("" if values[c] is None else values[c]
                                                for c in columns)])
        return out.getvalue()


def normalise_group(value: str | None) -> str:
    """Unknown, empty and `not_stated` are one group: "Not stated"."""
    text = (value or "").strip()
    return NOT_STATED if text.lower().replace("_", " ") in {"", "not stated"} else text


def katz_interval(a: int, n1: int, c: int, n2: int) -> tuple[float, float, float] | None:
    """RRI of a/n1 against c/n2 with its 95% interval on the log scale; None where undefined
    (no events in either group, an empty denominator, or more events than the denominator, as
    when a long period has more referrals than a small group has officers: Katz's variance
    would be negative)."""
    if min(a, c, n1, n2) <= 0 or a > n1 or c > n2:
        return None
    rri = (a / n1) / (c / n2)
    half = Z95 * math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    return rri, math.exp(math.log(rri) - half), math.exp(math.log(rri) + half)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def default_reference(characteristic: str, sizes: dict[str, int]) -> str | None:
    """White for ethnicity (where present), otherwise the largest group; never "Not stated"."""
    candidates = {g: n for g, n in sizes.items() if g != NOT_STATED}
    if characteristic == "ethnicity" and "White" in candidates:
        return "White"
    return max(sorted(candidates), key=lambda g: candidates[g]) if candidates else None


def _primary(count: int, denominator: int | None, min_count: int, share: bool) -> bool:
    small = 0 < count < min_count
    rest = (denominator - count) if share and denominator is not None else None
    return small or (rest is not None and 0 < rest < min_count)


def _stage(stage: str, counts: dict[str, int], denominators: dict[str, int | None],
           groups: list[str], reference: str | None, min_count: int, share: bool,
           carried: set[str]) -> tuple[StageFigures, set[str]]:
    """One stage's figures, and the groups suppressed in it."""
    suppressed = {g for g in groups
                  if g in carried or _primary(counts[g], denominators[g], min_count, share)}
    own = suppressed - carried
    if len(own) == 1:
        # One hidden cell could be found by subtraction: hide the next smallest with it.
        others = sorted((counts[g], g != reference, g) for g in groups if g not in suppressed)
        others = [o for o in others if o[0] > 0] or others
        if others:
            suppressed.add(sorted(others, key=lambda o: (o[0], not o[1]))[0][2])
    figures = StageFigures(stage)
    ref_shown = reference is not None and reference not in suppressed
    for g in groups:
        d = denominators[g]
        rate = counts[g] / d * (PER if not share else 1) if d else None
        if g in suppressed:
            figures.groups.append(GroupFigures(g, None, None if g in carried else d, None,
                                               suppressed=True))
            continue
        row = GroupFigures(g, counts[g], d, _round(rate))
        if ref_shown and reference is not None and d:
            ref_d = denominators[reference]
            interval = katz_interval(counts[g], d, counts[reference], ref_d or 0)
            if interval is not None:
                row.rri, row.ci_low, row.ci_high = (_round(v) for v in interval)
            elif counts[g] == 0 and counts[reference] > 0 and ref_d:
                row.rri = 0.0  # no events: the ratio is 0, its interval undefined
        figures.groups.append(row)
    return figures, suppressed


def measure(facts: Iterable[CaseFacts], headcounts: dict[str, int], *, characteristic: str,
            period_from: date, period_to: date, min_count: int,
            reference: str | None = None) -> Disproportionality:
    """The figures for these cases against these headcounts (pure: no database)."""
    if characteristic not in CHARACTERISTICS:
        raise ValueError(f"'{characteristic}' is not one of {', '.join(CHARACTERISTICS)}")
    cases = list(facts)
    referred: Counter[str] = Counter()
    for c in cases:
        referred[c.group] += c.cases
    headcounts = {normalise_group(g): n for g, n in headcounts.items()}
    groups = sorted(set(referred) | set(headcounts), key=lambda g: (g == NOT_STATED, g))
    if reference is not None:
        reference = normalise_group(reference)
        if reference == NOT_STATED:
            raise ValueError('"Not stated" cannot be the reference group')
        if reference not in groups:
            raise ValueError(f"'{reference}' is not a group of {characteristic} here")
    else:
        reference = default_reference(characteristic, headcounts or dict(referred))
    counts = {g: referred[g] for g in groups}

    stages: list[StageFigures] = []
    first, carried = _stage("referred", counts, {g: headcounts.get(g) for g in groups}, groups,
                            reference, min_count, False, set())
    stages.append(first)
    for stage in STAGES[1:]:
        flagged: Counter[str] = Counter()
        for c in cases:
            if getattr(c, stage):
                flagged[c.group] += c.cases
        figures, _ = _stage(stage, {g: flagged[g] for g in groups},
                            {g: counts[g] for g in groups}, groups, reference, min_count, True,
                            carried)
        stages.append(figures)
    total = sum(referred.values())
    share = (_round(counts.get(NOT_STATED, 0) / total)
             if total and NOT_STATED not in carried else None)
    return Disproportionality(characteristic, reference, period_from, period_to, min_count,
                              share, stages)


def case_facts(session: Session, characteristic: str, period_from: date,
               period_to: date) -> list[CaseFacts]:
    """Each case referred in the period (both days; cancelled referrals left out), by group."""
    if characteristic not in CHARACTERISTICS:
        raise ValueError(f"'{characteristic}' is not one of {', '.join(CHARACTERISTICS)}")
    column = getattr(MonitoringRecord, characteristic)
    in_period = (col(Case.referred_on) >= period_from, col(Case.referred_on) <= period_to,
                 col(Case.state) != CaseState.CANCELLED)
    # Counted in the database by what monitoring reads, not case by case.
    buckets: Counter[tuple[str, bool, bool, bool]] = Counter()
    grouped = session.execute(
        sa_select(col(Case.state), column, col(ImportedCase.non_engagement),
                  col(ImportedCase.referred_back), func.count())
        .join(MonitoringRecord, col(MonitoringRecord.case_id) == col(Case.id), isouter=True)
        .join(ImportedCase, col(ImportedCase.case_id) == col(Case.id), isouter=True)
        .where(*in_period)
        .group_by(col(Case.state), column, col(ImportedCase.non_engagement),
                  col(ImportedCase.referred_back))).all()
    for state, group, non_engagement, referred_back, n in grouped:
        key = (normalise_group(group), CaseState(state) in ESCALATED, bool(non_engagement),
               bool(referred_back))
        buckets[key] += int(n)
    # Live cases: a flag is a visit to the state in the audit log (few cases: moved one by one).
    visits = session.exec(
        select(AuditEvent.case_id, AuditEvent.to_state)
        .join(Case, col(Case.id) == col(AuditEvent.case_id))
        .where(*in_period, col(AuditEvent.to_state).in_(
            [CaseState.NON_ENGAGEMENT_REVIEW.value, CaseState.REFERRED_BACK.value]))
        .distinct()).all()
    visited: dict[int, set[str]] = {}
    for case_id, to_state in visits:
        visited.setdefault(int(case_id), set()).add(str(to_state))
    if visited:
        rows = session.execute(
            sa_select(col(Case.id), col(Case.state), column, col(ImportedCase.non_engagement),
                      col(ImportedCase.referred_back))
            .join(MonitoringRecord, col(MonitoringRecord.case_id) == col(Case.id), isouter=True)
            .join(ImportedCase, col(ImportedCase.case_id) == col(Case.id), isouter=True)
            .where(col(Case.id).in_(list(visited)))).all()
        for case_id, state, group, non_engagement, referred_back in rows:
            before = (normalise_group(group), CaseState(state) in ESCALATED,
                      bool(non_engagement), bool(referred_back))
            states = visited[int(case_id)]
            after = (before[0], before[1],
                     before[2] or CaseState.NON_ENGAGEMENT_REVIEW.value in states,
                     before[3] or CaseState.REFERRED_BACK.value in states)
            buckets[before] -= 1
            buckets[after] += 1
    return [CaseFacts(group, escalated, non_engagement, referred_back, n)
            for (group, escalated, non_engagement, referred_back), n in buckets.items() if n]


def latest_headcounts(session: Session, characteristic: str, on_or_before: date) -> dict[str, int]:
    """The latest workforce snapshot for the characteristic on or before the day, by group."""
    latest = session.exec(select(func.max(WorkforceHeadcount.as_of)).where(
        WorkforceHeadcount.characteristic == characteristic,
        col(WorkforceHeadcount.as_of) <= on_or_before)).one()
    if latest is None:
        return {}
    rows = session.exec(select(WorkforceHeadcount).where(
        WorkforceHeadcount.characteristic == characteristic,
        WorkforceHeadcount.as_of == latest)).all()
    return {r.group: r.headcount for r in rows}


def disproportionality(session: Session, *, characteristic: str, period_from: date,
                       period_to: date, min_count: int,
                       reference: str | None = None) -> Disproportionality:
    if period_to < period_from:
        raise ValueError("the period ends before it starts")
    return measure(case_facts(session, characteristic, period_from, period_to),
                   latest_headcounts(session, characteristic, period_to),
                   characteristic=characteristic, period_from=period_from,
                   period_to=period_to, min_count=min_count, reference=reference)
