"""Disproportionality figures against values worked out by hand, for a seeded data set: rates,
RRIs and Katz intervals, a suppressed cell and the secondary suppression it forces, a reference
group with no cases, and "Not stated" as its own group."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from infra.db import session_scope
from tasks.disproportionality import (
    CaseFacts,
    Disproportionality,
    GroupFigures,
    disproportionality,
    measure,
)
from tasks.history_import import import_cases, import_workforce
from tests.unit.test_history_import import HEADER, case_line

FROM, TO = date(2022, 4, 1), date(2023, 3, 31)
HEADCOUNTS = {"White": 1000, "Black": 200, "Asian": 300, "Mixed": 100, "not_stated": 50}


def facts(group: str, n: int, escalated: int = 0, non_engagement: int = 0) -> list[CaseFacts]:
    return [CaseFacts(group, i < escalated, i < non_engagement, False) for i in range(n)]


CASES = (facts("White", 20, escalated=5, non_engagement=2) + facts("Black", 10, escalated=5)
         + facts("Asian", 3) + facts("Mixed", 6) + facts("Not stated", 8, escalated=2))


def figures(result: Disproportionality, stage: str) -> dict[str, GroupFigures]:
    return {g.group: g for s in result.stages if s.stage == stage for g in s.groups}


@pytest.fixture
def result() -> Disproportionality:
    return measure(CASES, HEADCOUNTS, characteristic="ethnicity", period_from=FROM,
                   period_to=TO, min_count=5)


def test_referral_rates_rri_and_katz_intervals_by_hand(result: Disproportionality) -> None:
    assert result.reference_group == "White"  # the default for ethnicity
    referred = figures(result, "referred")
    assert list(referred) == ["Asian", "Black", "Mixed", "White", "Not stated"]
    # White 20 of 1,000 = 20.0 per 1,000; Black 10 of 200 = 50.0; Not stated 8 of 50 = 160.0.
    white, black, unstated = referred["White"], referred["Black"], referred["Not stated"]
    assert (white.count, white.denominator, white.rate) == (20, 1000, 20.0)
    assert (black.count, black.denominator, black.rate) == (10, 200, 50.0)
    assert (unstated.count, unstated.denominator, unstated.rate) == (8, 50, 160.0)
    # Black: RRI 50/20 = 2.5; se = sqrt(1/10 - 1/200 + 1/20 - 1/1000) = sqrt(0.144) = 0.37947;
    # ln 2.5 = 0.91629 -/+ 1.96 x 0.37947 = 0.74377 -> exp(0.17252) = 1.1883, exp(1.66006) = 5.2596
    assert (black.rri, black.ci_low, black.ci_high) == pytest.approx((2.5, 1.1883, 5.2596),
                                                                       abs=1e-3)
    # White against itself: 1.0; se = sqrt(2 x (1/20 - 1/1000)) = sqrt(0.098) = 0.31305,
    # exp(-/+ 0.61358) = 0.5414, 1.8470.
    assert (white.rri, white.ci_low, white.ci_high) == pytest.approx((1.0, 0.5414, 1.847),
                                                                       abs=1e-3)
    # Not stated: 160/20 = 8.0; se = sqrt(1/8 - 1/50 + 1/20 - 1/1000) = sqrt(0.154) = 0.39243,
    # ln 8 = 2.07944 -/+ 0.76916 -> exp(1.31028) = 3.7072, exp(2.84860) = 17.2636.
    assert (unstated.rri, unstated.ci_low, unstated.ci_high) == pytest.approx(
        (8.0, 3.7072, 17.2636), abs=1e-3)
    # "Not stated" is 8 of the 47 cases referred.
    assert result.not_stated_share == pytest.approx(8 / 47, abs=1e-4)


def test_a_small_count_is_suppressed_with_the_next_smallest(result: Disproportionality) -> None:
    referred = figures(result, "referred")
    # Asian 3 < 5: suppressed. Alone it could be worked out from the total, so Mixed (6, the
    # next smallest) goes with it. Their headcounts are not counts of cases and stay shown.
    assert referred["Asian"] == GroupFigures("Asian", None, 300, None, suppressed=True)
    assert referred["Mixed"] == GroupFigures("Mixed", None, 100, None, suppressed=True)
    # Their case counts are the later stages' denominators: suppressed there too, wholly.
    for stage in ("escalated", "non_engagement", "referred_back"):
        assert figures(result, stage)["Asian"] == GroupFigures("Asian", None, None, None,
                                                               suppressed=True)
        assert figures(result, stage)["Mixed"].denominator is None


def test_escalation_shares_and_the_secondary_suppression_they_force(
        result: Disproportionality) -> None:
    escalated = figures(result, "escalated")
    # Not stated: 2 of 8 < 5, suppressed; then the next smallest shown, Black (5, tied with
    # White but not the reference), goes too. White: 5 of 20 = 0.25, RRI 1.0,
    # se = sqrt(2 x (1/5 - 1/20)) = sqrt(0.3) = 0.54772, exp(-/+ 1.07354) = 0.3418, 2.9257.
    assert escalated["Not stated"].suppressed and escalated["Not stated"].count is None
    assert escalated["Black"].suppressed and escalated["Black"].rate is None
    white = escalated["White"]
    assert (white.count, white.denominator, white.rate) == (5, 20, 0.25)
    assert (white.rri, white.ci_low, white.ci_high) == pytest.approx((1.0, 0.3418, 2.9257),
                                                                       abs=1e-3)


def test_a_suppressed_reference_shows_no_rri(result: Disproportionality) -> None:
    # White non-engagement 2 < 5: suppressed; every RRI would give its rate away.
    stage = figures(result, "non_engagement")
    assert stage["White"].suppressed
    assert all(g.rri is None and g.ci_low is None for g in stage.values())
    # Black's 0 of 10 goes with White's cell (else total - 0 - 0 would show it).
    assert stage["Black"].suppressed
    assert (stage["Not stated"].count, stage["Not stated"].rate) == (0, 0.0)


def test_a_reference_group_with_no_cases_gives_no_ratio() -> None:
    result = measure(facts("Black", 6), {"White": 100, "Black": 50}, characteristic="ethnicity",
                     period_from=FROM, period_to=TO, min_count=5)
    referred = figures(result, "referred")
    assert (referred["White"].count, referred["White"].rate) == (0, 0.0)
    assert (referred["Black"].count, referred["Black"].rate) == (6, 120.0)
    assert all(g.rri is None and g.ci_low is None and g.ci_high is None
               for g in referred.values())


def test_the_reference_defaults_to_the_largest_group_and_is_never_not_stated() -> None:
    result = measure(facts("Female", 6) + facts("not_stated", 9),
                     {"Male": 700, "Female": 300, "Not stated": 900}, characteristic="sex",
                     period_from=FROM, period_to=TO, min_count=5)
    assert result.reference_group == "Male"
    with pytest.raises(ValueError, match="cannot be the reference"):
        measure(CASES, HEADCOUNTS, characteristic="ethnicity", period_from=FROM,
                period_to=TO, min_count=5, reference="Not stated")


def test_the_json_has_the_documented_shape_with_nulls(result: Disproportionality) -> None:
    body = result.as_json()
    assert list(body) == ["characteristic", "reference_group", "from", "to", "min_count",
                          "not_stated_share", "stages"]
    assert [s["stage"] for s in body["stages"]] == ["referred", "escalated", "non_engagement",
                                                    "referred_back"]
    assert body["stages"][0]["groups"][0] == {
        "group": "Asian", "count": None, "denominator": 300, "rate": None, "rri": None,
        "ci_low": None, "ci_high": None, "suppressed": True}
    assert result.as_csv().splitlines()[0] == (
        "stage,group,count,denominator,rate,rri,ci_low,ci_high,suppressed")


def test_figures_from_the_record_use_the_latest_snapshot_before_the_period_end() -> None:
    t = uuid.uuid4().hex[:6]
    # A characteristic only this test's cases carry: a group name of its own.
    lines = [case_line(f"DP-{t}-{i}", f"P{t}{i}", referred_on="2031-06-01",
                       concern_reported_on="2031-05-01", sex=f"S{t}",
                       outcome="escalated_upp" if i < 5 else "closed_complete",
                       closed_on="2031-09-01") for i in range(6)]
    with session_scope() as session:
        import_cases(session, "\n".join([HEADER, *lines]))
        import_workforce(session, "as_of,characteristic,group,headcount\n"
                                  f"2031-03-31,sex,S{t},600\n2032-03-31,sex,S{t},1\n")
        result = disproportionality(session, characteristic="sex", period_from=date(2031, 4, 1),
                                    period_to=date(2032, 3, 30), min_count=5)
    referred = figures(result, "referred")[f"S{t}"]
    assert (referred.count, referred.denominator, referred.rate) == (6, 600, 10.0)
    escalated = figures(result, "escalated")[f"S{t}"]
    # 5 of 6 escalated, but only 1 not: that complement is below 5, so the share is hidden.
    assert escalated.suppressed and escalated.count is None


def test_the_command_prints_json_and_refuses_an_unknown_reference(
        capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import os

    from rprp.cli import main

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        args = ["analytics", "disproportionality", "--from", "2031-04-01", "--to", "2032-03-30",
                "--characteristic", "sex", "--format", "json"]
        assert main(args) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["min_count"] == 5 and body["from"] == "2031-04-01"
        assert main([*args, "--reference", "Nobody"]) == 2
        assert "'Nobody' is not a group of sex here" in capsys.readouterr().err
    finally:
        os.umask(umask)


def test_more_referrals_than_officers_gives_no_interval_rather_than_an_error() -> None:
    from tasks.disproportionality import katz_interval

    # A decade can hold more referrals than a small group has officers: no Katz interval.
    assert katz_interval(12, 10, 5, 100) is None
    assert katz_interval(5, 100, 12, 10) is None
