"""FeedbackPolicy.decide: what a reply, a purchase, a click, an open or an unsubscribe does to a plan;
and the EngagementFeedback service's batch handling and announcements, with the store faked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError

from marketing_agents.domain import Channel, InteractionType, LeadStatus
from marketing_agents.domain.feedback import (
    FeedbackEffect,
    InteractionOutcome,
    LeadSnapshot,
    NewInteraction,
    PendingTouchpoint,
    PlanChange,
    ScheduledContact,
)
from marketing_agents.errors import NotFound, StorageError
from marketing_agents.flows.engagement_feedback import (
    CALL_TEMPLATE,
    EngagementFeedback,
    FeedbackPolicy,
    fits_weekly_cap,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday: 10:00 in Berlin
SATURDAY = datetime(2025, 3, 8, 12, 0, tzinfo=UTC)
LEAD_ID = uuid4()
PLAN_ID = uuid4()
POLICY = FeedbackPolicy()


def pending(channel: Channel, due_in: timedelta, step: int, *, retrying: bool = False) -> PendingTouchpoint:
    return PendingTouchpoint(id=uuid4(), plan_id=PLAN_ID, step=step, channel=channel, template="t",
                             due_at=NOW + due_in, retrying=retrying)


def snapshot(*pendings: PendingTouchpoint, status: LeadStatus = LeadStatus.ENGAGED, consent: dict | None = None,
             plan: bool = True, contacts: list[datetime] | None = None) -> LeadSnapshot:
    consent = {"email": True, "linkedin": True, "call": True} if consent is None else consent
    contact_rows = [ScheduledContact(touchpoint_id=tp.id, at=tp.due_at) for tp in pendings]
    contact_rows += [ScheduledContact(touchpoint_id=uuid4(), at=at) for at in contacts or []]
    return LeadSnapshot(lead_id=LEAD_ID, status=status, consent=consent, country="DE", timezone="Europe/Berlin",
                        first_name="Jane", last_name="Doe", company="Acme", job_title="VP Marketing",
                        plan_id=PLAN_ID if plan else None, next_step=5 if plan else 0, pending=list(pendings),
                        contacts=contact_rows, counts={})


def interaction(kind: InteractionType, *, at: datetime = NOW, **fields) -> NewInteraction:
    return NewInteraction(lead_id=LEAD_ID, type=kind, occurred_at=at - timedelta(minutes=1), **fields)


def hot_plan() -> list[PendingTouchpoint]:
    """What is left of a hot lead's sequence after the first email went out."""
    return [pending(Channel.CALL, timedelta(hours=4), 1), pending(Channel.LINKEDIN, timedelta(days=1), 2),
            pending(Channel.EMAIL, timedelta(days=4), 3)]


# -- reply, meeting ---------------------------------------------------------------------------------


def test_a_reply_cancels_the_automated_touchpoints_and_brings_the_call_task_forward():
    call, linkedin, email = hot_plan()
    change = POLICY.decide(snapshot(call, linkedin, email), interaction(InteractionType.REPLY, channel=Channel.EMAIL), NOW)
    assert change.effect is FeedbackEffect.CONVERSATION
    assert change.status is LeadStatus.IN_CONVERSATION and change.status_before is LeadStatus.ENGAGED
    assert set(change.cancelled_touchpoints) == {linkedin.id, email.id}
    assert [(m.touchpoint_id, m.scheduled_at) for m in change.rescheduled] == [(call.id, NOW + timedelta(minutes=15))]
    assert change.new_touchpoints == []


def test_a_reply_without_a_pending_call_creates_a_call_task_on_the_latest_plan():
    email = pending(Channel.EMAIL, timedelta(days=2), 1)
    change = POLICY.decide(snapshot(email), interaction(InteractionType.MEETING), NOW)
    assert change.cancelled_touchpoints == [email.id]
    [task] = change.new_touchpoints
    assert (task.channel, task.plan_id, task.step, task.template) == (Channel.CALL, PLAN_ID, 5, CALL_TEMPLATE)
    assert task.scheduled_at == NOW + timedelta(minutes=15)
    assert "Jane Doe" in task.body and "met with us" in task.body


def test_a_reply_on_a_saturday_gets_its_call_task_on_monday_morning_in_the_leads_time_zone():
    change = POLICY.decide(snapshot(), interaction(InteractionType.REPLY, at=SATURDAY), SATURDAY)
    [task] = change.new_touchpoints
    assert task.scheduled_at == datetime(2025, 3, 10, 8, 0, tzinfo=UTC)  # 09:00 Europe/Berlin


def test_without_call_consent_a_reply_creates_no_call_task_and_cancels_a_pending_one():
    call, linkedin, email = hot_plan()
    change = POLICY.decide(snapshot(call, linkedin, email, consent={"email": True, "linkedin": True}),
                           interaction(InteractionType.REPLY), NOW)
    assert change.new_touchpoints == [] and change.rescheduled == []
    assert set(change.cancelled_touchpoints) == {call.id, linkedin.id, email.id}
    assert change.status is LeadStatus.IN_CONVERSATION
    assert "not consented to calls" in change.reason


def test_a_lead_that_opted_out_gets_no_touchpoint_from_a_reply():
    change = POLICY.decide(snapshot(consent={}), interaction(InteractionType.REPLY), NOW)
    assert change.new_touchpoints == [] and change.rescheduled == []


def test_a_second_pending_call_task_is_cancelled_rather_than_kept_twice():
    first, second = pending(Channel.CALL, timedelta(minutes=5), 1), pending(Channel.CALL, timedelta(days=3), 2)
    change = POLICY.decide(snapshot(first, second), interaction(InteractionType.REPLY), NOW)
    assert change.cancelled_touchpoints == [second.id]
    assert change.rescheduled == []  # already due sooner than "soon"


def test_a_reply_without_a_plan_changes_the_status_but_creates_no_call_task():
    change = POLICY.decide(snapshot(plan=False, status=LeadStatus.NEEDS_REVIEW), interaction(InteractionType.REPLY), NOW)
    assert change.status is LeadStatus.IN_CONVERSATION and change.new_touchpoints == []
    assert "no engagement plan" in change.reason


def test_a_further_reply_in_a_conversation_creates_no_new_call_task():
    change = POLICY.decide(snapshot(status=LeadStatus.IN_CONVERSATION), interaction(InteractionType.REPLY), NOW)
    assert change.status is LeadStatus.IN_CONVERSATION
    assert change.new_touchpoints == [] and change.rescheduled == []


def test_a_converted_lead_stays_converted_when_it_replies():
    change = POLICY.decide(snapshot(status=LeadStatus.CONVERTED), interaction(InteractionType.REPLY), NOW)
    assert change.effect is FeedbackEffect.RECORDED and change.status is LeadStatus.CONVERTED


# -- purchase, form_submit ----------------------------------------------------------------------------


def test_a_purchase_is_a_conversion_that_stops_every_pending_touchpoint():
    campaign = uuid4()
    tps = hot_plan()
    change = POLICY.decide(snapshot(*tps), interaction(InteractionType.PURCHASE, value=Decimal("1250.00"),
                                                      channel=Channel.EMAIL, campaign_id=campaign), NOW)
    assert change.effect is FeedbackEffect.CONVERSION and change.status is LeadStatus.CONVERTED
    assert set(change.cancelled_touchpoints) == {tp.id for tp in tps}
    assert change.conversion.value == Decimal("1250.00")
    assert (change.conversion.channel, change.conversion.campaign_id) == (Channel.EMAIL, campaign)
    assert change.conversion.converted_at == NOW - timedelta(minutes=1)


def test_a_purchase_without_a_value_still_converts_with_value_zero():
    change = POLICY.decide(snapshot(), interaction(InteractionType.PURCHASE), NOW)
    assert change.conversion.value == 0 and change.status is LeadStatus.CONVERTED


def test_a_form_submission_converts_only_with_a_value():
    valued = POLICY.decide(snapshot(), interaction(InteractionType.FORM_SUBMIT, value=Decimal(10)), NOW)
    assert valued.effect is FeedbackEffect.CONVERSION
    email = pending(Channel.EMAIL, timedelta(days=2), 1)
    plain = POLICY.decide(snapshot(email), interaction(InteractionType.FORM_SUBMIT), NOW)
    assert plain.effect is FeedbackEffect.INTEREST and plain.conversion is None


# -- click, visit -------------------------------------------------------------------------------------


def test_a_click_brings_the_next_touchpoint_forward_to_within_the_hour():
    call, linkedin, email = hot_plan()
    change = POLICY.decide(snapshot(call, linkedin, email), interaction(InteractionType.CLICK), NOW)
    assert change.effect is FeedbackEffect.INTEREST and change.status is LeadStatus.ENGAGED
    [moved] = change.rescheduled
    assert (moved.touchpoint_id, moved.scheduled_at_before, moved.scheduled_at) == \
        (call.id, call.due_at, NOW + timedelta(hours=1))
    assert change.cancelled_touchpoints == [] and change.new_touchpoints == []


def test_a_click_skips_touchpoints_on_channels_without_consent_and_those_waiting_for_a_retry():
    sms = pending(Channel.SMS, timedelta(hours=3), 1)
    retry = pending(Channel.EMAIL, timedelta(hours=5), 2, retrying=True)
    linkedin = pending(Channel.LINKEDIN, timedelta(days=1), 3)
    change = POLICY.decide(snapshot(sms, retry, linkedin), interaction(InteractionType.VISIT), NOW)
    assert [m.touchpoint_id for m in change.rescheduled] == [linkedin.id]


def test_a_click_at_night_moves_the_touchpoint_to_the_morning_not_before_it_was_due():
    night = datetime(2025, 3, 3, 22, 0, tzinfo=UTC)  # 23:00 in Berlin
    email = PendingTouchpoint(id=uuid4(), plan_id=PLAN_ID, step=1, channel=Channel.EMAIL, template="t",
                              due_at=night + timedelta(days=2), retrying=False)
    change = POLICY.decide(snapshot(email), interaction(InteractionType.CLICK, at=night), night)
    assert change.rescheduled[0].scheduled_at == datetime(2025, 3, 4, 8, 0, tzinfo=UTC)


def test_a_click_never_moves_a_touchpoint_later_or_before_now():
    soon = pending(Channel.EMAIL, timedelta(minutes=20), 1)
    change = POLICY.decide(snapshot(soon), interaction(InteractionType.CLICK), NOW)
    assert change.effect is FeedbackEffect.RECORDED and change.rescheduled == []


def test_a_stale_click_is_only_recorded():
    email = pending(Channel.EMAIL, timedelta(days=2), 1)
    change = POLICY.decide(snapshot(email), interaction(InteractionType.CLICK, at=NOW - timedelta(days=3)), NOW)
    assert change.effect is FeedbackEffect.RECORDED and "stale" in change.reason


def test_a_click_respects_the_weekly_frequency_cap():
    email = pending(Channel.EMAIL, timedelta(days=6), 1)
    sent = [NOW - timedelta(days=2), NOW - timedelta(days=1)]
    assert POLICY.decide(snapshot(email, contacts=sent), interaction(InteractionType.CLICK), NOW).rescheduled
    crowded = sent + [NOW - timedelta(days=3)]
    change = POLICY.decide(snapshot(email, contacts=crowded), interaction(InteractionType.CLICK), NOW)
    assert change.rescheduled == [] and "3 contacts in 7 days" in change.reason


def test_a_click_from_a_lead_in_conversation_is_only_recorded():
    email = pending(Channel.EMAIL, timedelta(days=2), 1)
    change = POLICY.decide(snapshot(email, status=LeadStatus.IN_CONVERSATION), interaction(InteractionType.CLICK), NOW)
    assert change.effect is FeedbackEffect.RECORDED


def test_a_click_from_a_lead_that_opted_out_moves_nothing():
    email = pending(Channel.EMAIL, timedelta(days=2), 1)
    change = POLICY.decide(snapshot(email, consent={}), interaction(InteractionType.CLICK), NOW)
    assert change.rescheduled == [] and change.new_touchpoints == []


@pytest.mark.parametrize(("others", "fits"), [
    ([], True),
    ([NOW - timedelta(days=6), NOW - timedelta(days=5)], True),
    ([NOW - timedelta(days=6), NOW - timedelta(days=5), NOW - timedelta(days=4)], False),
    ([NOW - timedelta(days=8), NOW - timedelta(days=7), NOW + timedelta(days=7)], True),
    ([NOW - timedelta(days=1), NOW + timedelta(days=6)], True),
    ([NOW - timedelta(days=1), NOW + timedelta(days=2), NOW + timedelta(days=5)], False),
])
def test_the_weekly_cap_counts_every_seven_day_window_containing_the_new_contact(others, fits):
    assert fits_weekly_cap(NOW, others, 3) is fits


# -- open, unsubscribe --------------------------------------------------------------------------------


def test_an_open_is_recorded_and_changes_nothing():
    tps = hot_plan()
    change = POLICY.decide(snapshot(*tps), interaction(InteractionType.OPEN, channel=Channel.EMAIL), NOW)
    assert change.effect is FeedbackEffect.RECORDED and change.status is LeadStatus.ENGAGED
    assert not (change.cancelled_touchpoints or change.rescheduled or change.new_touchpoints or change.conversion)
    assert "prefetch" in change.reason


def test_an_unsubscribe_from_one_channel_withdraws_only_that_channel():
    call, linkedin, email = hot_plan()
    change = POLICY.decide(snapshot(call, linkedin, email), interaction(InteractionType.UNSUBSCRIBE,
                                                                       channel=Channel.EMAIL), NOW)
    assert change.effect is FeedbackEffect.UNSUBSCRIBE
    assert change.unsubscribe_channels == [Channel.EMAIL] and change.cancelled_touchpoints == [email.id]


def test_an_unsubscribe_without_a_channel_withdraws_every_channel():
    tps = hot_plan()
    change = POLICY.decide(snapshot(*tps), interaction(InteractionType.UNSUBSCRIBE), NOW)
    assert change.unsubscribe_channels == list(Channel)
    assert set(change.cancelled_touchpoints) == {tp.id for tp in tps}


def test_only_an_unsubscribe_names_channels_to_opt_out_of():
    with pytest.raises(ValidationError):
        PlanChange(effect=FeedbackEffect.RECORDED, status_before=LeadStatus.ENGAGED, status=LeadStatus.ENGAGED,
                   unsubscribe_channels=[Channel.EMAIL], reason="x")


# -- the incoming model -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "problem"), [
    ({"occurred_at": "2025-03-03T09:00:00"}, "timezone"),
    ({"occurred_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "in the future"),
    ({"attributes": {"external_id": "x"}}, "reserved"),
    ({"value": "-1"}, "greater than or equal"),
    ({"type": "bounce"}, "type"),
])
def test_a_bad_interaction_is_refused_with_its_reason(fields, problem):
    raw = {"lead_id": str(LEAD_ID), "type": "click", "occurred_at": "2025-03-03T09:00:00Z", **fields}
    with pytest.raises(ValidationError, match=problem):
        NewInteraction.model_validate(raw)


def test_the_external_id_is_stored_with_the_attributes():
    stored = NewInteraction(lead_id=LEAD_ID, type=InteractionType.OPEN, occurred_at=NOW, external_id="evt-1",
                            attributes={"ip": "x"}).to_interaction()
    assert stored.attributes == {"ip": "x", "external_id": "evt-1"}


# -- the service --------------------------------------------------------------------------------------


class FakeRepository:
    def __init__(self, fail_at: int | None = None) -> None:
        self.recorded: list[NewInteraction] = []
        self.fail_at = fail_at

    async def record(self, interaction, decide, *, agent, rescore=None):
        if self.fail_at is not None and len(self.recorded) == self.fail_at:
            raise StorageError("PostgreSQL unavailable")
        if interaction.lead_id != LEAD_ID:
            raise NotFound(f"no lead with id {interaction.lead_id}", {"lead_id": str(interaction.lead_id)})
        change = decide(snapshot(), interaction, NOW)
        self.recorded.append(interaction)
        return InteractionOutcome(status="stored", lead_id=LEAD_ID, interaction_id=len(self.recorded),
                                  type=interaction.type, occurred_at=interaction.occurred_at,
                                  lead_status=change.status, change=change, conversion_id=uuid4()
                                  if change.conversion else None)


class FakeShortTerm:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, str, dict]] = []
        self.fail = fail

    async def publish(self, topic, event_type, payload):
        if self.fail:
            raise StorageError("Redis unavailable")
        self.events.append((topic, event_type, payload))


def raw(kind: str = "click", **fields) -> dict:
    return {"lead_id": str(LEAD_ID), "type": kind, "occurred_at": "2025-03-03T08:59:00Z", **fields}


async def test_a_batch_reports_each_item_in_place_and_a_bad_one_blocks_nothing():
    repository = FakeRepository()
    service = EngagementFeedback(repository, FakeShortTerm())
    result = await service.record_batch([raw("open"), raw("bounce"), raw(lead_id=str(uuid4())), raw("reply")])
    assert [r.status for r in result.results] == ["stored", "error", "error", "stored"]
    assert (result.stored, result.duplicates, result.errors) == (2, 0, 2)
    assert result.results[1].error.code == "validation_error" and "type" in result.results[1].error.message
    assert result.results[2].error.code == "not_found"
    assert [i.type for i in repository.recorded] == [InteractionType.OPEN, InteractionType.REPLY]


async def test_a_storage_failure_stops_the_batch_and_reaches_the_caller():
    service = EngagementFeedback(FakeRepository(fail_at=1), FakeShortTerm())
    with pytest.raises(StorageError):
        await service.record_batch([raw("open"), raw("click")])


async def test_a_stored_conversion_is_announced_on_both_topics():
    short_term = FakeShortTerm()
    await EngagementFeedback(FakeRepository(), short_term).record(
        NewInteraction.model_validate(raw("purchase", value="99.90")))
    assert [(topic, kind) for topic, kind, _ in short_term.events] == [
        ("leads", "interaction.recorded"), (f"lead:{LEAD_ID}", "interaction.recorded"),
        ("leads", "lead.converted"), (f"lead:{LEAD_ID}", "lead.converted")]
    assert short_term.events[2][2]["value"] == "99.90"
    assert short_term.events[0][2]["status"] == "converted"


async def test_a_publish_failure_is_logged_and_the_outcome_still_returned(caplog):
    with caplog.at_level(logging.WARNING):
        outcome = await EngagementFeedback(FakeRepository(), FakeShortTerm(fail=True)).record(
            NewInteraction.model_validate(raw("open")))
    assert outcome.status == "stored"
    assert "not announced" in caplog.text
