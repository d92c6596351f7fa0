"""One flow run per multi-agency reflective practice meeting (seed 003), as its flowchart has it:

    send-invitations ─► await-attendance-and-meeting ─► await-learning-log ─► distribute-record
        ─► await-crc-summary ─► send-to-business-unit ─► crc-consideration (the CRC's Resume form)
        ─► await-dissemination ─► close-meeting        (cancelled / escalated ─► close-meeting)

Like the case flow, the body reads the meeting record before each step and runs only the step the
record says is next, so Prefect's replay from the top on every resume repeats nothing. Waits for
the portal (invitees' replies through their links, the facilitator's record) suspend with no form
and no process; the portal wakes the run. The only parameter is the meeting's id; task names carry
the meeting's reference; logs say which step ran. No child, family or professional detail goes to
Prefect: the CRC decides in the Prefect UI through the portal's gateway, which refuses a plan
holding a recorded name before Prefect sees it, seals the plan into the case DB and records the
signed-in person as the decider; the flow applies only such a decision (tasks/meeting_decisions).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from sqlmodel import col, select

from flows.asking import ask, suspend
from flows.outages import through_database_outages
from infra.db import session_scope
from infra.settings import get_settings
from models import Outbox, utc_now
from models.meeting_forms import CrcConsideration
from models.meetings import MEETING_ENDINGS, Meeting, MeetingEvent, MeetingState
from tasks import learning_register
from tasks import meeting_decisions as crc
from tasks import meetings as rules
from tasks.code_version import source_version
from tasks.meeting_links import crc_summary_link
from tasks.notify import deliver_pending
from tasks.outbox import PENDING

M = MeetingState


@dataclass(frozen=True)
class Here:
    meeting_id: int
    reference: str
    state: MeetingState
    has_summary: bool
    crc_key: str  # the CRC form's pause key: each refused answer asks again under a new key


def where(meeting_id: int) -> Here:
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        return Here(meeting_id, meeting.reference, meeting.state,
                    rules.crc_summary(session, meeting_id) is not None,
                    crc.crc_step_key(session, meeting_id))


def _with_meeting(meeting_id: int, rule_name: str) -> bool:
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        done: bool = getattr(rules, rule_name)(session, meeting, utc_now())
        return done


@task(name="send-invitations", cache_policy=NO_CACHE, persist_result=False)
def send_invitations(meeting_id: int) -> bool:
    """Purpose documented against the child's record; invitations to professionals, managers."""
    return _with_meeting(meeting_id, "send_invitations")


@task(name="distribute-record", cache_policy=NO_CACHE, persist_result=False)
def distribute_record(meeting_id: int) -> bool:
    """The signed record goes to the attendees, their service managers and the professionals."""
    return _with_meeting(meeting_id, "distribute_record")


@task(name="send-to-business-unit", cache_policy=NO_CACHE, persist_result=False)
def send_to_business_unit(meeting_id: int) -> bool:
    """The record and learning points to the business unit, the summary to the CRC."""
    return _with_meeting(meeting_id, "send_to_business_unit")


@task(name="crc-consideration", cache_policy=NO_CACHE, persist_result=False)
def crc_consideration(meeting_id: int, step_key: str, answer: CrcConsideration) -> str:
    """Apply the CRC's decision as the gateway took it: the decider is the signed-in person it
    recorded, the plan is read back from the case DB; the meeting's learning to be shared joins
    the learning register, tagged multi-agency (in the same transaction, so once). An answer
    that did not come through the gateway, or whose plan holds a recorded name, is refused (the
    form is asked again)."""
    now = utc_now()
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        try:
            submission = crc.verified(session, meeting_id, step_key,
                                      answer.model_dump(mode="json"))
        except crc.CrcDecisionNotVerified as unverified:
            why, actor = str(unverified), "unverified"
        else:
            actor = submission.decided_by
            if rules.names_in(submission.plan, rules.names_recorded(session, meeting)):
                why = "the plan holds a recorded name"
            else:
                try:
                    rules.record_crc_decision(session, meeting, answer.decision,
                                              submission.plan, now,
                                              decided_by=submission.decided_by)
                    if meeting.state == M.CRC_CONSIDERED:  # an escalation's review learns anew
                        learning_register.create_from_meeting(session, meeting, now,
                                                              actor=submission.decided_by)
                    return meeting.state.value
                except rules.MeetingRefused as refused:
                    why = str(refused)
        session.add(MeetingEvent(meeting_id=meeting_id, at=now, actor=actor,
                                 action="crc_answer_refused", detail=why))
        return f"refused: {why}"


@task(name="close-meeting", cache_policy=NO_CACHE, persist_result=False)
async def close_meeting(meeting_id: int) -> str:
    """The meeting has ended (closed, cancelled or escalated): its last emails go."""
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        if meeting.state == M.LEARNING_DISSEMINATED:
            rules.close_meeting(session, meeting, utc_now())
        final = meeting.state.value
    await deliver_pending()
    return final


@task(name="send-mail", cache_policy=NO_CACHE, persist_result=False)
async def send_mail() -> int:
    """Deliver what the steps queued; the outbox retries what fails."""
    return (await deliver_pending()).sent


WAITS = {
    M.INVITATIONS_SENT: "await-attendance-and-meeting",
    M.MEETING_HELD: "await-learning-log",
    M.RECORD_DISTRIBUTED: "await-crc-summary",
    M.CRC_CONSIDERED: "await-dissemination",
}


@flow(name="rprp-rpm", version=source_version(), log_prints=False, persist_result=False)
async def rprp_rpm(meeting_id: int) -> str:
    """Carry reflective practice meeting `meeting_id` from request to closure."""
    return await through_database_outages(lambda: carry_meeting(meeting_id),
                                          f"meeting {meeting_id}")


async def carry_meeting(meeting_id: int) -> str:
    _remember_flow_run(meeting_id)
    passes: dict[str, int] = {}
    while True:
        here = where(meeting_id)
        name = f"{here.reference}"
        if here.state in MEETING_ENDINGS or here.state == M.LEARNING_DISSEMINATED:
            final: str = await close_meeting.with_options(
                task_run_name=f"close-meeting {name}")(meeting_id)
            get_run_logger().info("Meeting %s finished: %s", meeting_id, final)
            return final
        if here.state == M.REQUESTED:
            send_invitations.with_options(task_run_name=f"send-invitations {name}")(meeting_id)
        elif here.state == M.RECORD_COMPLETED:
            distribute_record.with_options(task_run_name=f"distribute-record {name}")(meeting_id)
        elif here.state == M.RECORD_DISTRIBUTED and here.has_summary:
            send_to_business_unit.with_options(
                task_run_name=f"send-to-business-unit {name}")(meeting_id)
        elif here.state == M.SENT_TO_BUSINESS_UNIT:
            await mail_what_is_queued(here)
            answer = await ask(CrcConsideration.with_initial_data(description=briefing(here)),
                               here.crc_key)
            crc_consideration.with_options(task_run_name=f"crc-consideration {name}")(
                meeting_id, here.crc_key, answer)
        else:
            await mail_what_is_queued(here)
            wait = WAITS[here.state]
            get_run_logger().info("Meeting %s waits: %s", meeting_id, wait)
            n = passes.get(wait, 0)
            passes[wait] = n + 1
            await suspend(f"{wait}-pass-{n}")


def briefing(here: Here) -> str:
    """What the CRC reads above the form: the reference and a link, never the record itself."""
    return (f"**Reflective practice meeting {here.reference}**: the Case Review Committee "
            f"({get_settings().rpm_crc_chair}) considers its organisational learning points.\n\n"
            f"Read the summary of learning (Appendix 3) on the meeting's page: "
            f"{crc_summary_link(here.meeting_id)}\n\n"
            f"Write no names in the plan: roles and agencies only.")


async def mail_what_is_queued(here: Here) -> None:
    with session_scope() as session:
        queued = session.exec(select(Outbox.id).where(
            col(Outbox.key).startswith(f"rpm:{here.meeting_id}:"),
            Outbox.status == PENDING)).first()
    if queued is not None:
        await send_mail.with_options(task_run_name=f"send-mail {here.reference}")()


def _remember_flow_run(meeting_id: int) -> None:
    run_id = flow_run.get_id()
    if not run_id:
        return
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is not None and meeting.flow_run_id is None:
            meeting.flow_run_id = str(run_id)
            session.add(meeting)
