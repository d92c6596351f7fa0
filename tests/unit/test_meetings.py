"""The rules of a multi-agency reflective practice meeting against the DB alone: the seed's
flowchart from request to closure, whole-meeting attendance, a decline that invites a named
colleague, the learning log's sign-off, a CRC summary that refuses names, the side exits, the
policy timers, and emails that hold nothing of the child."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from infra.db import session_scope
from models import Outbox
from models.meetings import AttendanceStatus, CrcChoice, MeetingState
from tasks import meetings as rpm
from tasks.links import InvalidToken
from tasks.meeting_links import read_invitee_token

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MARKER = "Zebulonmarker"
AGENCIES = (("Children's Social Care", "Social worker"), ("Health visiting", "Health visitor"),
            ("Police", "Detective constable"))


def _meeting_with_invitees() -> tuple[int, list[int]]:
    with session_scope() as s:
        m = rpm.request_meeting(
            s, NOW, child_name=f"Amy {MARKER}", child_date_of_birth=date(2018, 5, 20),
            family_names="Brian Quackenbush, Carla Quackenbush",
            requested_by_name="Dana Requester", requested_by_agency="Health visiting",
            requested_by_email="dana@health.example", facilitator_name="Fran Facilitator",
            facilitator_email="fran@council.example",
            purpose=f"Reflect on the journey of {MARKER} since 2022.")
        ids = []
        for n, (agency, role) in enumerate(AGENCIES):
            i = rpm.add_invitee(s, m, rpm.Invitation(
                name=f"Pro{n} Person{n}", email=f"pro{n}@agency{n}.example", agency=agency,
                role=role, manager_email=f"manager{n}@agency{n}.example"), NOW, actor="fran")
            ids.append(i.id)
        assert m.id is not None
        return m.id, [x for x in ids if x is not None]


def _held(meeting_id: int, invitee_ids: list[int]) -> None:
    with session_scope() as s:
        rpm.send_invitations(s, rpm.get_meeting(s, meeting_id), NOW)
        for i in invitee_ids:
            rpm.confirm_attendance(s, meeting_id, i, NOW, whole_meeting=True)
        rpm.hold_meeting(s, rpm.get_meeting(s, meeting_id), NOW.date(), NOW, actor="fran")


def _signed(meeting_id: int) -> None:
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        rpm.save_log(s, m, NOW, actor="fran", case_name="Case A",
                     issues_and_timescales=f"Concerns about {MARKER}", learning_points="Share early",
                     conclusions="Better joint working")
        rpm.add_timeline_entry(s, m, date(2023, 1, 4), "Referral to social care",
                               "Information was not shared", NOW, actor="fran")
        rpm.add_action(s, m, "Joint briefing", "Head of service", date(2027, 1, 1), NOW,
                       actor="fran")
        rpm.sign_off_record(s, m, "Fran Facilitator", NOW.date(), NOW)
        rpm.distribute_record(s, m, NOW)


def test_a_meeting_from_request_to_closure_follows_the_flowchart() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    _signed(meeting_id)
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        assert m.state == MeetingState.RECORD_DISTRIBUTED
        summary = rpm.save_crc_summary(s, m, chair="Head of Service, Children's Social Care",
                                       learning_to_share="Share information at referral.", now=NOW)
        assert summary.child_age == 8
        assert rpm.send_to_business_unit(s, m, NOW)
        assert rpm.record_crc_decision(s, m, CrcChoice.PLAN_ACTION, "Workshop in spring", NOW,
                                       decided_by="crc-chair@partnership.example")
        assert rpm.disseminate_learning(s, m, "Briefing to practitioners", NOW, actor="bu")
        assert rpm.close_meeting(s, m, NOW)
        assert not rpm.close_meeting(s, m, NOW)  # a replay changes nothing
        assert m.state == MeetingState.CLOSED
        mail = s.exec(select(Outbox).where(Outbox.key.startswith(f"rpm:{meeting_id}:"))).all()
    recipients = {o.recipient for o in mail}
    assert {"pro0@agency0.example", "manager2@agency2.example",
            "business-unit@partnership.example", "crc-chair@partnership.example"} <= recipients
    for o in mail:
        for secret in (MARKER, "Quackenbush", "Amy", "Person0"):
            assert secret not in o.subject + o.body_text + o.body_html


def test_attendance_is_confirmed_for_the_whole_meeting_only() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    with session_scope() as s:
        rpm.send_invitations(s, rpm.get_meeting(s, meeting_id), NOW)
    with pytest.raises(rpm.MeetingRefused, match="whole meeting"), session_scope() as s:
        rpm.confirm_attendance(s, meeting_id, invitees[0], NOW, whole_meeting=False)
    with session_scope() as s:
        assert rpm.awaiting_reply(s, meeting_id)[0].id == invitees[0]


def test_a_decline_names_a_colleague_who_is_invited_in_their_place() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    with session_scope() as s:
        rpm.send_invitations(s, rpm.get_meeting(s, meeting_id), NOW)
        colleague = rpm.decline_attendance(s, meeting_id, invitees[1], NOW, colleague=rpm.Invitation(
            name="Gail Colleague", email="gail@agency1.example", agency="Health visiting",
            role="Health visitor"))
        assert colleague.in_place_of_id == invitees[1]
        assert s.exec(select(Outbox).where(
            Outbox.key == f"rpm:{meeting_id}:invitation:{colleague.id}")).one().recipient == \
            "gail@agency1.example"
        statuses = {i.id: i.status for i in rpm.invitees(s, meeting_id)}
    assert statuses[invitees[1]] == AttendanceStatus.DECLINED
    with pytest.raises(rpm.MeetingRefused, match="email address"), session_scope() as s:
        rpm.decline_attendance(s, meeting_id, invitees[0], NOW, colleague=rpm.Invitation(
            name="X", email="not-an-email", agency="A", role="R"))


def test_a_link_opens_only_its_own_meeting() -> None:
    first, first_invitees = _meeting_with_invitees()
    second, _ = _meeting_with_invitees()
    with session_scope() as s:
        m = rpm.get_meeting(s, first)
        inv = s.get(rpm.MeetingInvitee, first_invitees[0])
        assert inv is not None
        token = rpm.link_for(m, inv).rsplit("/", 1)[1]
        rpm.send_invitations(s, rpm.get_meeting(s, second), NOW)
    assert read_invitee_token(token, NOW) == (first, first_invitees[0])
    with pytest.raises(rpm.MeetingRefused, match="not for this meeting"), session_scope() as s:
        rpm.confirm_attendance(s, second, first_invitees[0], NOW, whole_meeting=True)
    with pytest.raises(InvalidToken):
        read_invitee_token(token[:-2] + "xx", NOW)
    with pytest.raises(InvalidToken, match="expired"):
        read_invitee_token(token, NOW + timedelta(days=400))


def test_the_record_is_signed_only_when_its_headings_are_filled() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    with pytest.raises(rpm.MeetingRefused, match="not complete"), session_scope() as s:
        rpm.sign_off_record(s, rpm.get_meeting(s, meeting_id), "Fran", NOW.date(), NOW)
    with session_scope() as s:
        assert rpm.get_meeting(s, meeting_id).state == MeetingState.MEETING_HELD


@pytest.mark.parametrize(("text", "whose"), [
    (f"The learning about {MARKER}.", "the child's"),
    ("Mrs quackenbush was not asked.", "a family member's"),
    ("Pro2 Person2 should have called.", "a professional's"),
])
def test_the_crc_summary_refuses_any_recorded_name_and_says_whose(text: str, whose: str) -> None:
    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    _signed(meeting_id)
    with pytest.raises(rpm.NameInSummary) as refused, session_scope() as s:
        rpm.save_crc_summary(s, rpm.get_meeting(s, meeting_id), chair="Head of Service",
                             learning_to_share=text, now=NOW)
    assert whose in str(refused.value)
    with session_scope() as s:
        assert rpm.crc_summary(s, meeting_id) is None


def test_cancelled_with_a_reason_tells_the_invitees() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        rpm.send_invitations(s, m, NOW)
        with pytest.raises(rpm.MeetingRefused, match="reason"):
            rpm.cancel_meeting(s, m, " ", NOW, actor="fran")
        assert rpm.cancel_meeting(s, m, "Family moved out of area", NOW, actor="fran")
        assert m.state == MeetingState.CANCELLED and m.closed_at == NOW
        keys = {o.key for o in s.exec(select(Outbox).where(
            Outbox.key.startswith(f"rpm:{meeting_id}:cancelled:"))).all()}
    assert len(keys) == len(invitees)


def test_the_crc_can_escalate_to_a_child_safeguarding_practice_review() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    _signed(meeting_id)
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        rpm.save_crc_summary(s, m, chair="Chair, social care", learning_to_share="Learning.",
                             now=NOW)
        rpm.send_to_business_unit(s, m, NOW)
        rpm.record_crc_decision(s, m, CrcChoice.ESCALATE, "Serious harm criteria met", NOW,
                                decided_by="crc-chair@partnership.example")
        assert m.state == MeetingState.ESCALATED
        told = s.exec(select(Outbox).where(Outbox.key == f"rpm:{meeting_id}:escalated")).one()
    assert told.recipient == "business-unit@partnership.example"
    assert "child safeguarding practice review" in told.body_text


def test_the_policy_timers_remind_once_when_due() -> None:
    meeting_id, invitees = _meeting_with_invitees()
    with session_scope() as s:
        rpm.send_invitations(s, rpm.get_meeting(s, meeting_id), NOW)
        rpm.confirm_attendance(s, meeting_id, invitees[0], NOW, whole_meeting=True)
    with session_scope() as s:
        assert rpm.overdue_reminders(s, NOW + timedelta(days=9)) == 0
    with session_scope() as s:
        rpm.overdue_reminders(s, NOW + timedelta(days=10))
        rpm.overdue_reminders(s, NOW + timedelta(days=11))
        keys = [o.key for o in s.exec(select(Outbox).where(
            Outbox.key.startswith(f"rpm:{meeting_id}:reply-reminder:"))).all()]
    assert sorted(keys) == sorted(f"rpm:{meeting_id}:reply-reminder:{i}" for i in invitees[1:])


def test_the_sweep_runs_every_policy_timer_as_of_the_moved_clock() -> None:
    """The record's completion and the CRC's consideration, by the sweep's own duty and as_of."""
    from tasks.deadline_sweep import SweepReport, meeting_reminders

    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    settings_days = 20  # RPRP_RPM_RECORD_COMPLETION_DAYS's default
    meeting_reminders(NOW + timedelta(days=settings_days - 1), SweepReport(as_of="early"))
    meeting_reminders(NOW + timedelta(days=settings_days), SweepReport(as_of="due"))
    _signed(meeting_id)
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        rpm.save_crc_summary(s, m, chair="Chair, health", learning_to_share="Learning.", now=NOW)
        rpm.send_to_business_unit(s, m, NOW)
    report = SweepReport(as_of="crc")
    meeting_reminders(NOW + timedelta(days=40), report)
    meeting_reminders(NOW + timedelta(days=41), SweepReport(as_of="again"))
    with session_scope() as s:
        keys = sorted(o.key for o in s.exec(select(Outbox).where(
            Outbox.key.startswith(f"rpm:{meeting_id}:"), Outbox.key.contains("reminder"))).all())
    assert keys == [f"rpm:{meeting_id}:crc-reminder", f"rpm:{meeting_id}:record-reminder"]
    assert report.overdue_reminders >= 1


def _at_the_crc() -> int:
    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    _signed(meeting_id)
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        rpm.save_crc_summary(s, m, chair="Head of Service", now=NOW,
                             learning_to_share="Share information at referral.")
        rpm.send_to_business_unit(s, m, NOW)
        m.flow_run_id = f"00000000-0000-0000-0000-{meeting_id:012d}"
        s.add(m)
    return meeting_id


def test_the_crc_answer_is_checked_and_its_plan_sealed_before_prefect_sees_it() -> None:
    from models.meetings import CrcSubmission
    from tasks import meeting_decisions as crc

    meeting_id = _at_the_crc()
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        step = crc.step_waiting_on(s, m)
        assert step is not None and step.key == "crc-consideration-0"
        forwarded, errors, row = crc.take(s, m, step, {
            "decision": CrcChoice.PLAN_ACTION.value, "plan": f"Ask {MARKER}'s mother"}, "X@Y.Z")
        assert forwarded is None and row is None
        assert errors and "child's name" in errors[0] and MARKER not in " ".join(errors)
        _, errors, _ = crc.take(s, m, step, {"decision": CrcChoice.PLAN_ACTION.value}, "x@y.z")
        assert errors == ["Planning action needs the plan"]
        assert s.exec(select(CrcSubmission).where(
            CrcSubmission.meeting_id == meeting_id)).all() == []
        forwarded, errors, row = crc.take(s, m, step, {
            "decision": CrcChoice.PLAN_ACTION.value, "plan": " A workshop "}, "Chair@P.Example")
        assert errors == [] and forwarded is not None and row is not None
        assert forwarded["plan"] == f"sealed:{row.token}" and row.plan == "A workshop"
        assert crc.verified(s, meeting_id, step.key, forwarded).decided_by == "chair@p.example"
        with pytest.raises(crc.CrcDecisionNotVerified):
            crc.verified(s, meeting_id, step.key, dict(forwarded, decision=CrcChoice.ESCALATE.value))
        with pytest.raises(crc.CrcDecisionNotVerified):
            crc.verified(s, meeting_id, step.key, {"decision": forwarded["decision"],
                                                   "plan": "A workshop"})


def _keys(meeting_id: int, kind: str) -> list[str]:
    with session_scope() as s:
        return sorted(o.key for o in s.exec(select(Outbox).where(
            Outbox.key.startswith(f"rpm:{meeting_id}:{kind}"))).all())


def test_an_overdue_action_reminds_its_owner_once_until_it_is_marked_done() -> None:
    from models.meetings import MeetingActionStatus
    from tasks.deadline_sweep import SweepReport, meeting_reminders

    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        owned = rpm.add_action(s, m, "Audit transfers", "Head of health", date(2026, 12, 1), NOW,
                               actor="fran", owner_email="Owner@Health.example")
        other = rpm.add_action(s, m, "Brief staff", "Team manager", date(2026, 12, 1), NOW,
                               actor="fran")
        s.flush()
        owned_id, other_id = owned.id, other.id
    assert owned_id is not None and other_id is not None
    day = datetime(2026, 12, 1, 9, tzinfo=UTC)
    meeting_reminders(day, SweepReport(as_of="due day"))
    assert _keys(meeting_id, "action-overdue") == []
    with session_scope() as s:
        rpm.complete_action(s, rpm.get_meeting(s, meeting_id), other_id, day, actor="fran")
        assert not rpm.complete_action(s, rpm.get_meeting(s, meeting_id), other_id, day,
                                       actor="fran")
    for later in (1, 2, 9):
        meeting_reminders(day + timedelta(days=later), SweepReport(as_of=f"+{later}"))
    assert _keys(meeting_id, "action-overdue") == [
        f"rpm:{meeting_id}:action-overdue:{owned_id}:2026-12-01"]
    with session_scope() as s:
        mail = s.exec(select(Outbox).where(Outbox.key.startswith(
            f"rpm:{meeting_id}:action-overdue"))).one()
        done = s.get(rpm.MeetingAction, other_id)
        assert done is not None and done.status is MeetingActionStatus.DONE
    assert mail.recipient == "owner@health.example"
    assert "Audit transfers" not in mail.body_text and MARKER not in mail.body_text
    second, _ = _meeting_with_invitees()
    with pytest.raises(rpm.MeetingRefused, match="action of this meeting"), session_scope() as s:
        rpm.complete_action(s, rpm.get_meeting(s, second), owned_id, day, actor="fran")


def test_the_business_unit_is_reminded_once_a_year_on_the_meetings_anniversary() -> None:
    from tasks.deadline_sweep import SweepReport, meeting_reminders

    meeting_id, invitees = _meeting_with_invitees()
    _held(meeting_id, invitees)  # held on NOW's date, 2 November 2026
    meeting_reminders(datetime(2027, 11, 1, 9, tzinfo=UTC), SweepReport(as_of="eve"))
    assert _keys(meeting_id, "annual-review") == []
    for when in (datetime(2027, 11, 2, 9, tzinfo=UTC), datetime(2027, 11, 3, 9, tzinfo=UTC),
                 datetime(2028, 6, 1, 9, tzinfo=UTC)):
        meeting_reminders(when, SweepReport(as_of="first year"))
    assert _keys(meeting_id, "annual-review") == [f"rpm:{meeting_id}:annual-review:1"]
    meeting_reminders(datetime(2028, 11, 2, 9, tzinfo=UTC), SweepReport(as_of="second"))
    assert _keys(meeting_id, "annual-review") == [f"rpm:{meeting_id}:annual-review:1",
                                                  f"rpm:{meeting_id}:annual-review:2"]
    with session_scope() as s:
        mail = s.exec(select(Outbox).where(
            Outbox.key == f"rpm:{meeting_id}:annual-review:1")).one()
    assert mail.recipient == "business-unit@partnership.example"
    assert MARKER not in mail.subject + mail.body_text + mail.body_html


def test_a_meetings_learning_joins_the_register_once_tagged_multi_agency_and_nameless() -> None:
    from models.learning import MULTI_AGENCY
    from tasks import learning_register as register

    meeting_id = _at_the_crc()
    with session_scope() as s:
        m = rpm.get_meeting(s, meeting_id)
        summary = rpm.crc_summary(s, meeting_id)
        assert summary is not None
        # As if saved before the name check: the register replaces what it still finds.
        summary.learning_to_share = (f"- Records must follow a school move for {MARKER}.\n"
                                     "- Share the chronology at the first referral.")
        s.add(summary)
        rpm.record_crc_decision(s, m, CrcChoice.SHARE_ONLY, "", NOW, decided_by="crc@p.example")
        created = register.create_from_meeting(s, m, NOW, actor="crc@p.example")
        again = register.create_from_meeting(s, m, NOW, actor="crc@p.example")
        items = register.items_of_meeting(s, meeting_id)
        assert again == [] and [i.id for i in created] == [i.id for i in items]
        assert [(i.origin, i.case_id, i.part) for i in items] == [
            (MULTI_AGENCY, None, 1), (MULTI_AGENCY, None, 2)]
        assert items[0].text == "Records must follow a school move for [name removed]."
        with pytest.raises(register.LearningRefused, match="Quackenbush"):
            register.assign(s, items[1].id or 0, "psd@force.example", NOW,
                            text="Ask Carla Quackenbush about the chronology.")
        register.assign(s, items[1].id or 0, "psd@force.example", NOW, unit="Health visiting")
        assert items[1].unit == "Health visiting"
