"""Which arm a lead gets, and how what the system observed becomes the optimizer's evidence."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from marketing_agents.domain import CampaignStatus, Channel
from marketing_agents.domain.attribution import (
    CampaignOffer,
    ObservedDay,
    combined_metrics,
    declared_arms,
    draw_arm,
    observed_metrics,
    starting_allocation,
    summarise_observed,
)
from marketing_agents.domain.campaign import CampaignMetrics
from marketing_agents.domain.optimization import Allocation

CAMPAIGN = UUID("00000000-0000-4000-8000-00000000c0de")


def offer(shares: dict[str, float], paused: tuple[str, ...] = (), status=CampaignStatus.ACTIVE, seed=0):
    return CampaignOffer(campaign_id=CAMPAIGN, name="spring", status=status, seed=seed,
                         allocation=Allocation(shares=shares, paused=paused))


def leads(n: int) -> list[UUID]:
    return [UUID(int=i + 1) for i in range(n)]


def test_the_same_lead_of_the_same_campaign_always_gets_the_same_arm_and_another_seed_redraws():
    split = offer({"a/email": 0.5, "b/email": 0.5})
    first = [draw_arm(split, lead, {Channel.EMAIL}) for lead in leads(200)]
    assert first == [draw_arm(split, lead, {Channel.EMAIL}) for lead in leads(200)]
    reseeded = [draw_arm(offer({"a/email": 0.5, "b/email": 0.5}, seed=7), lead, {Channel.EMAIL})
                for lead in leads(200)]
    assert [d.arm for d in first] != [d.arm for d in reseeded]


def test_leads_spread_over_the_arms_by_their_shares():
    drawn = Counter(draw_arm(offer({"a/email": 0.8, "b/email": 0.2}), lead, {Channel.EMAIL}).arm
                    for lead in leads(5000))
    assert drawn["a/email"] / 5000 == pytest.approx(0.8, abs=0.03)


def test_only_active_arms_on_consented_channels_are_drawn_and_their_shares_renormalised():
    split = offer({"a/email": 0.25, "a/sms": 0.25, "b/email": 0.5, "b/sms": 0.0}, paused=("b/sms",))
    for lead in leads(300):
        draw = draw_arm(split, lead, {Channel.SMS, Channel.LINKEDIN})
        assert draw is not None and draw.arm == "a/sms" and draw.share == 1.0
    email_only = Counter(draw_arm(split, lead, {Channel.EMAIL}).arm for lead in leads(3000))
    assert set(email_only) == {"a/email", "b/email"}
    assert email_only["b/email"] / 3000 == pytest.approx(2 / 3, abs=0.04)
    assert draw_arm(split, uuid4(), {Channel.CALL}) is None


def test_a_campaign_that_is_not_active_gives_no_arm():
    for status in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED):
        assert draw_arm(offer({"a/email": 1.0}, status=status), uuid4(), {Channel.EMAIL}) is None


def test_the_draw_explains_itself():
    draw = draw_arm(offer({"story/email": 1.0}), uuid4(), {Channel.EMAIL})
    assert draw.explain("spring").startswith("campaign 'spring': arm story/email (variant story on email)")
    assert "by its share of 100%" in draw.explain("spring")


def test_a_campaign_starts_on_the_arms_its_metrics_name_else_on_its_declared_ones():
    declared = declared_arms(["plain", "story"], [Channel.EMAIL, Channel.SMS])
    assert declared == ["plain/email", "plain/sms", "story/email", "story/sms"]
    assert starting_allocation(declared, []).shares == dict.fromkeys(declared, 0.25)
    assert starting_allocation(declared, ["A/email", "B/email"]).shares == {"A/email": 0.5, "B/email": 0.5}


def day(arm: str | None, on: int, leads_: int, engaged: int, converted: int, revenue: str = "0") -> ObservedDay:
    return ObservedDay(arm=arm, cohort_date=date(2026, 11, on), leads=leads_, leads_engaged=engaged,
                       leads_converted=converted, touchpoints_sent=leads_, opens=leads_, clicks=engaged + 1,
                       replies=0, conversions=converted, revenue=Decimal(revenue))


def test_cohorts_become_daily_rows_with_a_lead_as_a_trial_and_a_converted_lead_as_a_success():
    rows = observed_metrics(CAMPAIGN, [day("story/email", 1, 10, 6, 4, "480"), day(None, 1, 3, 0, 0),
                                       day("plain/email", 2, 0, 0, 0)])
    assert [(r.arm_key, r.metric_date, r.impressions, r.clicks, r.conversions, r.spend, r.revenue) for r in rows] == [
        ("story/email", date(2026, 11, 1), 10, 6, 4, Decimal("0"), Decimal("480"))]


def test_client_and_observed_rows_of_the_same_arm_and_day_add_up():
    client = [CampaignMetrics(campaign_id=CAMPAIGN, variant="story", channel=Channel.EMAIL,
                              metric_date=date(2026, 11, 1), impressions=1000, clicks=50, conversions=5,
                              spend=Decimal("20"), revenue=Decimal("100"))]
    observed = observed_metrics(CAMPAIGN, [day("story/email", 1, 10, 6, 4, "480"), day("story/email", 2, 8, 2, 1)])
    combined = combined_metrics(client, observed)
    assert [(r.metric_date.day, r.impressions, r.clicks, r.conversions, r.spend, r.revenue) for r in combined] == [
        (1, 1010, 56, 9, Decimal("20"), Decimal("580")), (2, 8, 2, 1, Decimal("0"), Decimal("0"))]


def test_the_observed_block_sums_each_arm_over_its_cohorts_and_lists_the_armless_last():
    block = summarise_observed([day("story/email", 1, 10, 6, 4, "480"), day(None, 1, 3, 0, 0),
                                day("story/email", 2, 5, 1, 1, "120"), day("plain/email", 2, 7, 2, 0)], None)
    assert [a.arm for a in block.arms] == ["plain/email", "story/email", None]
    story = block.arms[1]
    assert (story.leads, story.leads_converted, story.revenue) == (15, 5, Decimal("600"))
    assert block.total.leads == 25 and block.total.conversions == 5
