"""The markdown shown above a Resume form: enough to decide, nothing confidential.

No account text, no discussion notes, no protected characteristics: only facts of the referral,
the timeline and a link to the case page, where the full record sits behind a login. Everything a
person typed is shown as text (`plain`): no link, heading or HTML can be slipped into the form.
"""

from __future__ import annotations

import html
import json
import re

from sqlmodel import Session, select

from infra.db import session_scope
from models import Account, Case, Deadline
from models.enums import DeadlineStatus
from tasks import report_check
from tasks.casework import Wait, last_rejection
from tasks.deadlines import date_text
from tasks.discussion_invitation import current_invitation
from tasks.discussion_invitation import describe as describe_invitation
from tasks.links import case_link
from tasks.records import officer_of
from tasks.steps import StepKind

# The ASCII punctuation Markdown (CommonMark and GFM) gives a meaning to, including ":" "/" "@"
# ".", which GFM's bare-link detection needs ("http://x", "www.x", "a@b.c"). "&", "<" and ">"
# become entities instead, which Markdown shows as the characters themselves.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:/@=])")


def plain(text: str) -> str:
    """`text` exactly as typed, on one line, as Markdown that renders to that text only."""
    one_line = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def describe(case_id: int, wait: Wait) -> str:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.id is not None
        officer = officer_of(session, case)
        accounts = session.exec(select(Account).where(Account.case_id == case.id)).all()
        deadlines = session.exec(select(Deadline).where(Deadline.case_id == case.id,
                                                        Deadline.status == DeadlineStatus.OPEN)
                                 ).all()
        rejection = last_rejection(session, case, wait)
        if accounts:
            latest = accounts[-1]
            account = f"received {date_text(latest.received_at)}" + (" (late)" if latest.late
                                                                       else "")
        elif case.account_deadline_missed:
            account = "none by the deadline (optional: not non-engagement)"
        else:
            account = "not yet"
        lines = [
            f"## {case.reference}: {wait.title}",
            "",
            wait.declared.guidance if wait.declared else "",
            "",
            f"- **Officer:** {officer.rank.label} {plain(officer.name)} "
            f"({plain(officer.collar_number)}){' — probationer' if officer.probationer else ''}",
            f"- **Reviewer:** {plain(case.reviewer_name)} ({plain(case.reviewer_email)})",
            f"- **Route:** {case.route.label}",
            f"- **Origin:** {case.origin.label}",
            f"- **Allegation category:** {plain(case.allegation_category)}",
            f"- **Reason for RPRP:** {plain(case.rprp_reason)}",
            f"- **Summary:** {plain(case.public_summary)}",
            f"- **Account:** {account}",
        ]
        lines += [f"- **Due ({d.kind.label.lower()}):** {date_text(d.due_at)}"
                  for d in deadlines]
        if wait.kind == StepKind.DISCUSSION_OUTCOME:
            lines += invitation_lines(session, case)
        if wait.kind == StepKind.REPORT:
            lines += report_help_lines(session, case)
        if wait.kind == StepKind.REPORT_QUALITY_CHECK:
            lines += checklist_lines(session, case)
        if not officer.upp_available:
            lines.append("- UPP is not available for this officer (Performance Regulations).")
        lines += ["", f"[Open the case page]({case_link(case.id)})", "",
                  "You decide as the person signed in: only "
                  + ("the case's reviewer or " if wait.declared is None or wait.declared.reviewer_may
                     else "")
                  + "a PSD decision-maker may take this step."]
        if rejection:
            lines += ["", f"> **The previous submission was not accepted:** {plain(rejection)}"]
        return "\n".join(lines)


def report_help_lines(session: Session, case: Case) -> list[str]:
    """PSD's guidance with a reviewer's first report, and PSD's comments on a returned one."""
    assert case.id is not None
    lines: list[str] = []
    if report_check.first_report(session, case):
        lines += ["", report_check.PSD_GUIDANCE]
    returned = report_check.last_returned(session, case.id)
    if returned is not None:
        lines += ["", f"> **PSD returned round {returned.round} of the report with comments:** "
                      f"{plain(returned.psd_comments)}", "",
                  "The form holds the text you gave; leave the discussion summary as it is to "
                  "keep yours, or write it again."]
    return lines


def checklist_lines(session: Session, case: Case) -> list[str]:
    """The quality checklist of the round waiting for PSD: what is there, what is missing. The
    report's text stays in the case DB (the discussion summary is sealed); only the checklist
    is shown here."""
    assert case.id is not None
    draft = report_check.open_round(session, case.id)
    if draft is None:
        return []
    checks = report_check.checklist(json.loads(draft.content))
    lines = ["", f"**Checklist (round {draft.round}):** read the report on the case page.", ""]
    lines += [f"- {'✓' if c.ok else '✗'} {c.item}" + (f": {c.missing}" if c.missing else "")
              for c in checks]  # the product's own words: nothing typed by a person
    return lines


def invitation_lines(session: Session, case: Case) -> list[str]:
    """The invitation in force at the discussion step, and the flag if it is beyond target."""
    invitation = current_invitation(session, case)
    if invitation is None:
        return ["- **Invitation:** not sent yet"]
    lines = [f"- **Invitation:** {plain(describe_invitation(invitation))}, sent to the "
             "officer"]
    if invitation.beyond_target and invitation.target_due_at is not None:
        lines.append(f"- **Warning:** the meeting is after the force's target for the "
                     f"discussion, {date_text(invitation.target_due_at)}")
    return lines

