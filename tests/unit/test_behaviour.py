"""Behavioural scoring without I/O: points, overrides, decay, the cap, bad settings (domain/behaviour.py),
and the triage agent's rescoring judgment on top of them (actors/behaviour_scoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from marketing_agents.actors.behaviour_scoring import CALL_STEP_TEMPLATE, BehaviourScorer
from marketing_agents.actors.engagement import ContactPolicy
from marketing_agents.actors.factory import behaviour_scorer
from marketing_agents.actors.triage import TriageThresholds
from marketing_agents.domain import Channel, InteractionType, LeadStatus, ScoreFactor, TriageCategory, TriageResult
from marketing_agents.domain.behaviour import (
    DEFAULT_POINTS,
    BehaviourEvent,
    BehaviourRules,
    behaviour_engagement,
    intake_engagement,
)
from marketing_agents.domain.feedback import LeadSnapshot, RescoreContext, ScheduledContact
from marketing_agents.domain.lead_views import LeadProfile
from marketing_agents.errors import ConfigError
from marketing_agents.settings import Settings

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # a Thursday
DAY = timedelta(days=1)
RULES = BehaviourRules()
ALWAYS_OPEN = ContactPolicy(day_start_hour=0, day_end_hour=24, weekdays_only=False, max_per_week=3)


def event(kind: str, channel: str | None = "email", ago: timedelta = timedelta(0)) -> BehaviourEvent:
    return BehaviourEvent(InteractionType(kind), Channel(channel) if channel else None, NOW - ago)


# -- points and decay --------------------------------------------------------------------------------


def test_the_defaults_are_a_marketers_scale():
    assert {kind.value: points for kind, points in DEFAULT_POINTS.items()} == {
        "open": 1.0, "click": 5.0, "visit": 3.0, "form_submit": 15.0, "reply": 20.0, "meeting": 30.0,
        "purchase": 0.0, "unsubscribe": 0.0}
    assert RULES.half_life == timedelta(days=30)


def test_worth_halves_every_half_life_and_a_future_stamp_counts_as_fresh():
    assert RULES.decayed(event("click"), NOW) == 5.0
    assert RULES.decayed(event("click", ago=30 * DAY), NOW) == pytest.approx(2.5)
    assert RULES.decayed(event("click", ago=90 * DAY), NOW) == pytest.approx(0.625)
    assert RULES.decayed(event("click", ago=-timedelta(minutes=3)), NOW) == 5.0


def test_overrides_by_type_and_channel_merge_over_the_defaults():
    rules = BehaviourRules.from_settings(7, {"reply/linkedin": 25, "open": 0, "click/email": 4.5})
    assert rules.points_for(InteractionType.REPLY, Channel.LINKEDIN) == 25.0
    assert rules.points_for(InteractionType.REPLY, Channel.EMAIL) == 20.0  # the type's default elsewhere
    assert rules.points_for(InteractionType.REPLY, None) == 20.0
    assert rules.points_for(InteractionType.OPEN, Channel.EMAIL) == 0.0
    assert rules.points_for(InteractionType.CLICK, Channel.EMAIL) == 4.5
    assert rules.points_for(InteractionType.MEETING, None) == 30.0
    assert rules.decayed(event("reply", "linkedin", ago=7 * DAY), NOW) == pytest.approx(12.5)


def test_an_unsubscribe_never_earns_points():
    assert RULES.points_for(InteractionType.UNSUBSCRIBE, Channel.EMAIL) == 0.0
    assert BehaviourRules.from_settings(30, {"unsubscribe": 0}).points_for(InteractionType.UNSUBSCRIBE, None) == 0
    with pytest.raises(ConfigError, match="unsubscribe"):
        BehaviourRules.from_settings(30, {"unsubscribe/email": 5})


@pytest.mark.parametrize(("overrides", "key"), [
    ({"bounce": 3}, "bounce"),
    ({"click/fax": 3}, "click/fax"),
    ({"Click": 3}, "Click"),
    ({"click/": 3}, "click/"),
    ({"reply": -5}, "reply"),
    ({"meeting": 150}, "meeting"),
    ({"visit": float("nan")}, "visit"),
])
def test_a_bad_override_is_a_config_error_naming_its_key(overrides, key):
    with pytest.raises(ConfigError) as caught:
        BehaviourRules.from_settings(30, overrides)
    assert f"'{key}'" in caught.value.message and caught.value.details == {"key": key}


@pytest.mark.parametrize("days", [0, -1, float("inf")])
def test_a_half_life_that_is_no_positive_number_of_days_is_refused(days):
    with pytest.raises(ConfigError, match="HALF_LIFE"):
        BehaviourRules.from_settings(days, {})


def test_the_settings_reach_the_rules_and_a_bad_key_stops_the_factory(monkeypatch):
    monkeypatch.setenv("MAS_BEHAVIOUR_POINTS", '{"reply/linkedin": 25}')
    monkeypatch.setenv("MAS_BEHAVIOUR_HALF_LIFE_DAYS", "14")
    scorer = behaviour_scorer(Settings())
    assert scorer.rules.half_life == timedelta(days=14)
    assert scorer.rules.points_for(InteractionType.REPLY, Channel.LINKEDIN) == 25.0
    monkeypatch.setenv("MAS_BEHAVIOUR_POINTS", '{"replied": 25}')
    with pytest.raises(ConfigError, match="'replied'"):
        behaviour_scorer(Settings())
    monkeypatch.setenv("MAS_BEHAVIOUR_HALF_LIFE_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()


# -- the engagement score and its factor --------------------------------------------------------------


def test_intake_engagement_is_source_and_consent_only():
    factors = [factor("source", 30), factor("consent", 30), factor("seniority", 12), factor("behaviour", 9)]
    assert intake_engagement(factors) == 60.0
    assert intake_engagement([factor("source", 50), factor("consent", 60)]) == 100.0


def test_the_factor_names_the_interaction_and_sums_all_of_them_decayed():
    events = [event("click"), event("form_submit", ago=30 * DAY), event("open", None, ago=60 * DAY)]
    engagement, f = behaviour_engagement(RULES, 60.0, events, events[0], NOW)
    assert engagement == 72.8  # 60 + 5 + 15 / 2 + 1 / 4
    assert f.name == "behaviour" and f.points == 12.8
    assert f.explanation == ("click on email 2026-12-03: +5.0; 3 interactions in all, decayed with a 30-day "
                             "half-life: +12.8 engagement")


def test_engagement_is_capped_at_100_and_the_factor_says_so():
    events = [event("meeting") for _ in range(4)]
    engagement, f = behaviour_engagement(RULES, 80.0, events, events[-1], NOW)
    assert (engagement, f.points) == (100.0, 20.0)
    assert f.explanation.endswith("+20.0 engagement (engagement capped at 100)")


def test_an_unsubscribe_is_named_but_adds_nothing():
    events = [event("click", ago=30 * DAY), event("unsubscribe")]
    engagement, f = behaviour_engagement(RULES, 60.0, events, events[-1], NOW)
    assert engagement == 62.5
    assert f.explanation.startswith("unsubscribe on email 2026-12-03: no points (leaving is not interest); "
                                    "2 interactions in all")


# -- the rescoring judgment ---------------------------------------------------------------------------


def factor(name: str, points: float) -> ScoreFactor:
    return ScoreFactor(name=name, points=points, explanation=name)


def triage(category: TriageCategory = TriageCategory.WARM, lead_score: float = 65.4, *,
           extra: list[ScoreFactor] = (), model: str = "rules-v1") -> TriageResult:
    """A warm lead as triage scores it: fit 69, engagement 60 (web_form 30, three channels 30)."""
    return TriageResult(
        lead_id=uuid4(), lead_score=lead_score, fit_score=69.0, engagement_score=60.0, triage_category=category,
        reason="warm", factors=[factor("industry", 25), factor("email_domain", 20), factor("company_size", 12),
                                factor("seniority", 12), factor("source", 30), factor("consent", 30), *extra],
        route_to="EngagementAgent", scoring_model=model, triaged_at=NOW - 10 * DAY)


def snapshot(status: LeadStatus = LeadStatus.ENGAGED, consent: dict | None = None, plan: bool = True,
             contacts: int = 0) -> LeadSnapshot:
    return LeadSnapshot(
        lead_id=uuid4(), status=status, consent=consent or {"email": True, "linkedin": True, "call": True},
        country="DE", timezone="Europe/Berlin", first_name="Jane", last_name="Doe", company="Acme",
        job_title="Marketing Manager", plan_id=uuid4() if plan else None, next_step=3, pending=[],
        contacts=[ScheduledContact(touchpoint_id=uuid4(), at=NOW - timedelta(hours=i + 1)) for i in range(contacts)],
        counts={})


def context(events: list[BehaviourEvent], *, lead: LeadSnapshot | None = None, before: TriageResult | None = None,
            plan_has_call: bool = False) -> RescoreContext:
    return RescoreContext(lead=lead or snapshot(), triage=before or triage(), latest=events[-1], behaviour=events,
                          plan_has_call=plan_has_call, now=NOW)


SCORER = BehaviourScorer(RULES, TriageThresholds(), ALWAYS_OPEN)
TURNS_HOT = [event("click"), event("form_submit")]  # +20 engagement: 65.4 + 8.0 = 73.4


def test_a_click_raises_the_score_and_keeps_the_category():
    decision = SCORER.rescore(context([event("click")]))
    assert decision is not None
    r = decision.rescore
    assert (r.lead_score_before, r.lead_score, r.engagement_score) == (65.4, 67.4, 65.0)
    assert (r.triage_category_before, r.triage_category, r.touchpoint) == ("warm", "warm", None)
    assert r.reason.startswith("still warm")
    t = decision.triage
    assert t.scoring_model == "rules-v1+behaviour" and t.triaged_at == NOW and t.fit_score == 69.0
    assert [f.name for f in t.factors].count("behaviour") == 1 and "source" in {f.name for f in t.factors}


def test_turning_hot_while_engaged_adds_the_hot_sequences_call_step():
    decision = SCORER.rescore(context(TURNS_HOT))
    r = decision.rescore
    assert (r.triage_category_before, r.triage_category, r.lead_score) == ("warm", "hot", 73.4)
    call = r.touchpoint
    assert call is not None and (call.channel, call.template, call.step) == (Channel.CALL, CALL_STEP_TEMPLATE, 3)
    assert CALL_STEP_TEMPLATE == "discovery-call"
    assert call.scheduled_at == NOW and "Call Jane Doe (Marketing Manager at Acme)" in call.body
    assert "call step is due" in r.reason


def test_the_call_step_waits_for_the_leads_business_hours():
    scorer = BehaviourScorer(RULES, TriageThresholds(), ContactPolicy())
    late = NOW.replace(hour=19)  # 20:00 in Berlin
    events = [BehaviourEvent(e.type, e.channel, late) for e in TURNS_HOT]
    lead = snapshot()
    ctx = RescoreContext(lead=lead, triage=triage(), latest=events[-1], behaviour=events, plan_has_call=False,
                         now=late)
    assert scorer.rescore(ctx).rescore.touchpoint.scheduled_at == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("lead", "plan_has_call", "why"), [
    (snapshot(consent={"email": True, "linkedin": True}), False, "not consented to calls"),
    (snapshot(), True, "has a call pending or done already"),
    (snapshot(status=LeadStatus.IN_CONVERSATION), False, "in_conversation, not engaged"),
    (snapshot(plan=False), False, "no engagement plan"),
    (snapshot(contacts=3), False, "would exceed 3 contacts in 7 days"),
])
def test_turning_hot_adds_no_call_step_when_it_may_not_and_says_why(lead, plan_has_call, why):
    r = SCORER.rescore(context(TURNS_HOT, lead=lead, plan_has_call=plan_has_call)).rescore
    assert r.triage_category == "hot" and r.touchpoint is None
    assert why in r.reason


def test_an_already_hot_lead_gets_no_second_call_step():
    r = SCORER.rescore(context(TURNS_HOT, before=triage(TriageCategory.HOT, 72.0))).rescore
    assert r.triage_category == "hot" and r.touchpoint is None and r.reason.startswith("still hot")


def test_faded_behaviour_moves_a_lead_down_on_its_next_interaction():
    hot = triage(TriageCategory.HOT, 73.4, extra=[factor("behaviour", 20)], model="rules-v1+behaviour")
    events = [event("click", ago=120 * DAY), event("form_submit", ago=120 * DAY), event("open")]
    decision = SCORER.rescore(context(events, before=hot))
    r = decision.rescore
    assert (r.triage_category_before, r.triage_category) == ("hot", "warm") and r.lead_score == 66.3
    assert r.touchpoint is None and "the plan stays as it is" in r.reason
    assert decision.triage.scoring_model == "rules-v1+behaviour"
    assert [f.points for f in decision.triage.factors if f.name == "behaviour"] == [2.2]  # replaced, not added


def test_the_models_probability_stays_in_the_blend():
    with_model = triage(lead_score=59.6).model_copy(update={"model_probability": 0.5, "scoring_model": "rules-v1+v1"})
    r = SCORER.rescore(context([event("click")], before=with_model)).rescore
    assert r.lead_score == round(0.4 * 69 + 0.2 * 65 + 0.4 * 50, 1)


def test_withdrawing_every_consent_disqualifies_as_triage_would():
    r = SCORER.rescore(context([event("unsubscribe", None)], lead=snapshot(consent={"email": False}))).rescore
    assert r.triage_category == "disqualified" and "no consent" in r.reason


@pytest.mark.parametrize("status", [LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED])
def test_converted_and_disqualified_leads_are_not_rescored(status):
    assert SCORER.rescore(context(TURNS_HOT, lead=snapshot(status=status))) is None


def test_a_disqualified_triage_is_not_rescored_and_nothing_changed_is_nothing():
    assert SCORER.rescore(context(TURNS_HOT, before=triage(TriageCategory.DISQUALIFIED, 20.0))) is None
    unchanged = triage(lead_score=65.4)
    assert SCORER.rescore(context([event("purchase")], before=unchanged)) is None


# -- the score history -------------------------------------------------------------------------------


def test_the_profile_reads_old_and_new_score_history_entries():
    behaviour = {"name": "behaviour", "points": 5.0, "explanation": "click on email 2026-12-03: +5.0"}
    profile = LeadProfile.from_row(uuid4(), {"score_history": [
        {"lead_score": 65.4, "at": "2026-11-25T12:00:00+00:00"},
        {"lead_score": 73.4, "at": "2026-12-03T10:00:00+00:00", "triage_category": "hot", "factor": behaviour}]})
    old, new = profile.behaviour.score_history
    assert (old.triage_category, old.factor) == (None, None)
    assert new.triage_category == "hot" and new.factor.name == "behaviour"
