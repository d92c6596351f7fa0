"""What each role may do with Prefect's API through the gateway.

An operator has all of it. PSD and reviewers may read, and only the runs of cases they may see
(PSD: every case; a reviewer: the cases they review); meeting facilitators and the Case Review
Committee may read the reflective practice meetings' runs, and no case's. Prefect's list
endpoints are restricted in the query, not filtered afterwards: the gateway writes "these flow
runs only" into the request's own filter (AND-ed with whatever the UI asked), so counts and
pages are right and nothing of another case is ever read; each returned item is then checked
again. Anything not listed here is refused, so a Prefect endpoint added later is closed until
someone opens it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, func, select

from models import ActionReview, Case, Meeting
from portal.auth import CRC_CHAIR, OPERATOR, REVIEWER, RPM_FACILITATOR, User

NOT_YOURS = "You can see and act on the Prefect runs of your own cases only."
NO_CASES = "Your role has no access to cases in Prefect."
READ_ONLY = ("Your role may read your cases' runs and take your decisions, but not change "
             "Prefect: deleting, cancelling or setting the state of a run, and changing "
             "deployments, work pools, blocks, variables, automations or concurrency limits are "
             "for an operator.")

UUID = r"[0-9a-fA-F-]{36}"
RESUME = re.compile(rf"^flow_runs/({UUID})/resume/?$")
ONE_RUN = re.compile(rf"^flow_runs/({UUID})(/(graph|graph-v2|input/[^/]+))?/?$")
ONE_ITEM = re.compile(rf"^(task_runs|artifacts)/({UUID})/?$")
# Reads that carry no case data: the flows, deployments and pools a run belongs to.
METADATA_READS = re.compile(
    r"^(admin/version|health|ready|csrf-token|flows/[^/]+|deployments/[^/]+|"
    r"work_pools/[^/]+|work_pools/[^/]+/queues/[^/]+|work_queues/[^/]+|"
    r"collections/views/[^/]+)/?$")
METADATA_QUERIES = re.compile(
    r"^(flows|deployments|work_pools|work_queues)/(filter|count|paginate)/?$"
    r"|^ui/flows/count-deployments/?$|^ui/schemas/validate/?$|^work_pools/[^/]+/queues/filter/?$")
# Queries over runs and what they hold: scoped to the person's flow runs.
RUN_QUERIES = re.compile(
    r"^(flow_runs|task_runs|artifacts|artifacts/latest)/(filter|count|paginate|history)/?$"
    r"|^ui/flow_runs/history/?$|^ui/task_runs/(dashboard/counts|count)/?$")
LOG_QUERIES = re.compile(r"^logs/filter/?$")
TASK_RUN_COUNTS = re.compile(r"^ui/flow_runs/count-task-runs/?$")
EVENT_QUERIES = re.compile(r"^events/(filter|count-by/[^/]+)(/next)?/?$")
EMPTY_EVENTS = {"events": [], "total": 0, "next_page": None}


@dataclass(frozen=True)
class Rule:
    """What to do with one request: refuse it, answer it empty, or forward it (perhaps with a
    rewritten body, perhaps checking what comes back)."""

    refusal: str | None = None
    status: int = 403
    body: bytes | None = None
    check: str | None = None
    empty: dict[str, Any] | list[Any] | None = None


def resume_target(method: str, path: str) -> str | None:
    match = RESUME.match(path) if method.upper() == "POST" else None
    return match.group(1) if match else None


MEETING_ROLES = (RPM_FACILITATOR, CRC_CHAIR)


def may_use_ui(user: User) -> bool:
    return (user.has(OPERATOR) or user.is_psd or user.has(REVIEWER)
            or any(user.has(role) for role in MEETING_ROLES))


def visible_runs(user: User, session: Session) -> set[str]:
    """The flow runs this person may see: PSD every case, a reviewer their own cases; the
    meetings' facilitators and the Case Review Committee the reflective practice meetings'
    runs (which hold only a meeting's id). A reviewer as such sees no meeting's run."""
    runs: set[str] = set()
    if any(user.has(role) for role in MEETING_ROLES):
        runs |= {run for run in session.exec(select(Meeting.flow_run_id)).all() if run}
    if not (user.is_psd or user.has(REVIEWER)):
        return runs
    cases = select(Case.id, Case.flow_run_id)
    if not user.is_psd:
        email = user.email.strip().lower()
        cases = cases.where(func.lower(Case.reviewer_email) == email) if email else (
            cases.where(Case.id == -1))
    rows = session.exec(cases).all()
    case_ids = [case_id for case_id, _ in rows]
    runs |= {run for _, run in rows if run}
    if case_ids:
        reviews = session.exec(select(ActionReview.flow_run_id).where(
            ActionReview.case_id.in_(case_ids))).all()  # type: ignore[attr-defined]
        runs |= {run for run in reviews if run}
    return runs


def decide(user: User, method: str, path: str, body: bytes, session: Session) -> Rule:
    """The rule for a request that is not a case decision (those go to submit_decision)."""
    if user.has(OPERATOR):
        return Rule()
    if not may_use_ui(user):
        return Rule(refusal=NO_CASES)
    method = method.upper()
    if method in ("GET", "HEAD"):
        run = ONE_RUN.match(path)
        if run:
            ok = run.group(1).lower() in visible_runs(user, session)
            return Rule() if ok else Rule(refusal=NOT_YOURS)
        if ONE_ITEM.match(path):
            return Rule(check="item")
        if METADATA_READS.match(path):
            return Rule()
        if EVENT_QUERIES.match(path):
            return Rule(empty=EMPTY_EVENTS)
        return Rule(refusal=READ_ONLY)
    if method != "POST":
        return Rule(refusal=READ_ONLY)
    if METADATA_QUERIES.match(path):
        return Rule()
    if EVENT_QUERIES.match(path):
        return Rule(empty=EMPTY_EVENTS)
    if TASK_RUN_COUNTS.match(path):
        try:
            asked = json.loads(body or b"{}").get("flow_run_ids") or []
        except (ValueError, AttributeError):
            return Rule(refusal="The query was not sent properly.", status=400)
        runs = visible_runs(user, session)
        mine = [run for run in asked if str(run).lower() in runs]
        return Rule(body=json.dumps({"flow_run_ids": mine}).encode())
    if RUN_QUERIES.match(path) or LOG_QUERIES.match(path):
        try:
            query = json.loads(body or b"{}")
        except ValueError:
            return Rule(refusal="The query was not sent properly.", status=400)
        if not isinstance(query, dict):
            return Rule(refusal="The query was not sent properly.", status=400)
        runs = visible_runs(user, session)
        scoped = scope_logs(query, runs) if LOG_QUERIES.match(path) else scope_runs(query, runs)
        listing = path.rstrip("/").endswith(("filter", "paginate"))
        return Rule(body=json.dumps(scoped).encode(), check="list" if listing else None)
    return Rule(refusal=READ_ONLY)


def _restrict(section: dict[str, Any] | None, field: str, runs: set[str]) -> dict[str, Any]:
    """AND "flow run id in `runs`" into one of Prefect's filter objects."""
    section = dict(section or {})
    condition = dict(section.get(field) or {})
    asked = condition.get("any_")
    allowed = runs if asked is None else runs & {str(x).lower() for x in asked}
    condition["any_"] = sorted(allowed)
    section[field] = condition
    section["operator"] = "and_"  # an OR could otherwise reach around the restriction
    return section


def scope_runs(query: dict[str, Any], runs: set[str]) -> dict[str, Any]:
    scoped = dict(query)
    scoped["flow_runs"] = _restrict(query.get("flow_runs"), "id", runs)
    return scoped


def scope_logs(query: dict[str, Any], runs: set[str]) -> dict[str, Any]:
    scoped = dict(query)
    scoped["logs"] = _restrict(query.get("logs"), "flow_run_id", runs)
    return scoped


def _run_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    run = item.get("flow_run_id") if "flow_run_id" in item else item.get("id")
    return str(run).lower() if run else None


def check_response(check: str, user: User, content: bytes, session: Session) -> bytes | None:
    """Second guard on what Prefect returned: drop (or refuse) anything of another case."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    runs = visible_runs(user, session)
    if check == "item":
        return content if _run_of(data) in runs else None
    if isinstance(data, list):
        return json.dumps([item for item in data if _run_of(item) in runs]).encode()
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = dict(data, results=[item for item in data["results"] if _run_of(item) in runs])
        return json.dumps(data).encode()
    return content
