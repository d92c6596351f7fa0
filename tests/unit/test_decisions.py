"""The rules a decision is checked by before Prefect sees it, and the gateway's query scoping:
pure logic, no server."""

from __future__ import annotations

from datetime import UTC, date, datetime

from models import Case
from models.forms import DiscussionOutcome, ReportForm
from portal.gateway_policy import scope_logs, scope_runs
from tasks.decisions import parse_answer, problems, refusal

TYPED = "[Session expired: sign in again](http://evil.example/)"


def test_structural_errors_are_all_given_at_once_in_the_forms_words_without_the_input() -> None:
    answer, errors = parse_answer(ReportForm, {
        "issue_summary": TYPED[:5], "actions": [{"type": "bogus", "description": TYPED,
                                                  "owner": "PC Officer", "due_on": "31/02"}],
        "officer_lessons": "ok ok", "force_lessons": "None", "review_period_weeks": 99,
        "agreed_on": "2026-12-01", "agreement": "The officer agrees the report",
        "decided_by": TYPED})
    assert answer is None
    assert "'Summary of the issue and relevant background' must be at least 10 characters" in errors
    assert "Enter 'Summary of the reflective practice discussion'" in errors
    assert "Choose one of the options for 'Action 1: Action type'" in errors
    assert "Enter 'Action 1: Due date' as a real date" in errors
    assert "'Review period (weeks)' must be a whole number from 1 to 52" in errors
    assert any("does not ask for" in e for e in errors)  # the old "Your email address" field
    message = refusal(errors)
    assert "evil.example" not in message and "decided_by" not in message


def test_a_discussion_held_in_the_future_or_before_the_referral_is_refused() -> None:
    case = Case(referred_on=date(2026, 11, 1))
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    future, _ = parse_answer(DiscussionOutcome, {
        "choice": "Discussion held and the officer engaged", "held_on": "2026-12-10"})
    early, _ = parse_answer(DiscussionOutcome, {
        "choice": "Officer did not attend", "held_on": "2026-10-20"})
    today, _ = parse_answer(DiscussionOutcome, {
        "choice": "Officer did not attend", "held_on": "2026-12-02"})
    assert problems(None, case, "discussion_outcome", future, now) == [  # type: ignore[arg-type]
        f"'{DiscussionOutcome.model_fields['held_on'].title}' cannot be in the future"]
    assert "before the case was referred" in problems(
        None, case, "discussion_outcome", early, now)[0]  # type: ignore[arg-type]
    assert problems(None, case, "discussion_outcome", today, now) == []  # type: ignore[arg-type]


def test_list_queries_are_restricted_to_the_persons_runs_and_an_or_cannot_reach_round() -> None:
    mine = {"11111111-1111-1111-1111-111111111111"}
    other = "22222222-2222-2222-2222-222222222222"
    scoped = scope_runs({"flow_runs": {"operator": "or_", "name": {"like_": "RPRP"},
                                       "id": {"any_": [other, *mine]}}, "limit": 5}, mine)
    assert scoped["flow_runs"]["id"]["any_"] == sorted(mine)
    assert scoped["flow_runs"]["operator"] == "and_"
    assert scoped["flow_runs"]["name"] == {"like_": "RPRP"} and scoped["limit"] == 5
    assert scope_runs({}, set())["flow_runs"]["id"]["any_"] == []
    assert scope_logs({"logs": {"level": {"ge_": 0}}}, mine)["logs"]["flow_run_id"] == {
        "any_": sorted(mine)}


def test_an_analyst_gets_nothing_and_a_reviewer_changes_nothing_through_the_gateway() -> None:
    from portal.auth import User
    from portal.gateway_policy import NO_CASES, READ_ONLY, decide, may_use_ui

    analyst = User("Ann Analyst", "ann@force.example", frozenset({"analyst"}))
    reviewer = User("Sgt Sam", "sam@force.example", frozenset({"reviewer"}))
    run = "11111111-1111-1111-1111-111111111111"
    assert not may_use_ui(analyst)
    assert decide(analyst, "POST", "flow_runs/filter", b"{}", None).refusal == NO_CASES  # type: ignore[arg-type]
    for method, path in (("DELETE", f"flow_runs/{run}"), ("POST", f"flow_runs/{run}/set_state"),
                         ("PATCH", "deployments/x"), ("POST", "variables/"),
                         ("POST", "automations/"), ("POST", "concurrency_limits/"),
                         ("PUT", "block_documents/x"), ("POST", "work_pools/")):
        assert decide(reviewer, method, path, b"{}", None).refusal == READ_ONLY, path  # type: ignore[arg-type]


def test_an_operator_has_the_whole_of_prefect_through_the_gateway() -> None:
    """Issue 10: 'An operator role has Prefect's full UI' (the reviewer's refusals above are
    not an operator's)."""
    from portal.auth import User
    from portal.gateway_policy import Rule, decide

    operator = User("Olu Operator", "olu@force.example", frozenset({"operator"}))
    run = "11111111-1111-1111-1111-111111111111"
    for method, path in (("DELETE", f"flow_runs/{run}"), ("POST", f"flow_runs/{run}/set_state"),
                         ("PATCH", "deployments/x"), ("POST", "variables/"),
                         ("POST", "automations/"), ("PUT", "block_documents/x"),
                         ("POST", "work_pools/"), ("GET", "flow_runs/filter")):
        assert decide(operator, method, path, b"{}", None) == Rule(), path  # type: ignore[arg-type]
