"""The campaign optimizer agent's pure parts: policy from settings, seeds, audit summaries, and the
validation of campaigns and metric rows (which field a 422 names)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import numpy as np
import pytest
from pydantic import ValidationError

from marketing_agents.actors.campaign_allocation import AllocationOptimizer
from marketing_agents.domain import Campaign, CampaignMetrics, CampaignStatus, Channel
from marketing_agents.domain.campaign import MetricsRow
from marketing_agents.domain.campaign_views import CampaignUpdate, MetricsBatch, NewCampaign
from marketing_agents.domain.field_errors import InvalidFields
from marketing_agents.domain.optimization import Allocation, OptimizerPolicy, invert
from marketing_agents.errors import ConfigError
from marketing_agents.flows.campaign_optimizer import (
    decision_seed,
    policy_from_settings,
    summarise,
)
from marketing_agents.settings import Settings

CAMPAIGN = UUID("22222222-2222-4222-8222-222222222222")


def test_the_settings_defaults_are_the_policy_defaults():
    assert policy_from_settings(Settings()) == OptimizerPolicy()


def test_every_policy_field_has_a_setting():
    assert {f"optimizer_{name}" for name in OptimizerPolicy.model_fields} <= set(Settings.model_fields)


def test_settings_change_the_policy(monkeypatch):
    monkeypatch.setenv("MAS_OPTIMIZER_MIN_SHARE", "0.05")
    monkeypatch.setenv("MAS_OPTIMIZER_ESCALATE_ROI_AT", "-0.5")
    monkeypatch.setenv("MAS_OPTIMIZER_ROI_MIN_SPEND", "250.5")
    monkeypatch.setenv("MAS_OPTIMIZER_RATE_BASIS", "click")
    policy = policy_from_settings(Settings())
    assert (policy.min_share, policy.escalate_roi_at, policy.roi_min_spend, policy.rate_basis) == (
        0.05, -0.5, Decimal("250.5"), "click")


def test_settings_that_make_no_policy_are_a_config_error():
    with pytest.raises(ConfigError, match="min_share must not exceed max_share"):
        policy_from_settings(Settings(optimizer_min_share=0.6, optimizer_max_share=0.5))
    with pytest.raises(ValidationError):
        Settings(optimizer_rate_basis="per-view")


def test_the_seed_is_fixed_by_campaign_day_and_salt():
    day = date(2025, 3, 1)
    assert decision_seed(CAMPAIGN, day) == decision_seed(CAMPAIGN, day)
    others = {decision_seed(CAMPAIGN, date(2025, 3, 2)), decision_seed(UUID(int=1), day), decision_seed(CAMPAIGN, day, 1)}
    assert decision_seed(CAMPAIGN, day) not in others and len(others) == 3


def metrics(key: str, impressions: int, clicks: int, conversions: int, spend: str = "100.00") -> CampaignMetrics:
    variant, channel = key.split("/")
    return CampaignMetrics(campaign_id=CAMPAIGN, variant=variant, channel=Channel(channel),
                           metric_date=date(2025, 3, 1), impressions=impressions, clicks=clicks,
                           conversions=conversions, spend=Decimal(spend), revenue=Decimal("500.00"))


FOUR = ["A/email", "B/email", "A/linkedin", "B/linkedin"]


def test_the_summary_names_pauses_moves_and_who_must_act():
    rows = [metrics("A/email", 5_000, 1_000, 200), metrics("B/email", 5_000, 1_000, 190),
            metrics("A/linkedin", 5_000, 1_000, 185), metrics("B/linkedin", 5_000, 1_000, 20)]
    decision = AllocationOptimizer().decide(rows, Allocation.equal(FOUR), np.random.default_rng(0))
    assert decision.auto_applicable
    summary = summarise(decision)
    assert summary.startswith("paused B/linkedin; moved ") and summary.endswith("applied automatically")
    assert "A/email 25.0% -> " in summary

    escalated = AllocationOptimizer().decide(rows, Allocation.equal(FOUR), np.random.default_rng(0),
                                           budget=Decimal("400.00"))
    assert summarise(escalated).endswith("escalated (budget_nearly_spent): proposed, waits for approval")

    undo = summarise(invert(decision))
    assert undo.startswith("rollback to the previous allocation (") and "B/linkedin 0.0% -> 25.0%" in undo
    assert undo.endswith("paused: none)")


def row(**overrides) -> dict:
    return {"variant": "A", "channel": "email", "metric_date": "2025-03-01", "impressions": 1000, "clicks": 100,
            "conversions": 10, "spend": "50.00", "revenue": "80.00", **overrides}


def invalid_fields(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"clicks": 1001}, "clicks"),
    ({"conversions": 101}, "conversions"),
    ({"spend": "-0.01"}, "spend"),
    ({"revenue": "-1"}, "revenue"),
    ({"impressions": -1}, "impressions"),
    ({"spend": "1.001"}, "spend"),
    ({"channel": "fax"}, "channel"),
])
def test_a_bad_metric_row_names_its_field(overrides, field):
    with pytest.raises(ValidationError) as caught:
        MetricsBatch(rows=[row(), row(metric_date="2025-03-02", **overrides)])
    assert invalid_fields(caught.value) == [f"rows.1.{field}"]


def test_the_funnel_may_be_full_but_not_overflow():
    full = MetricsRow(**row(impressions=10, clicks=10, conversions=10))
    assert (full.clicks, full.conversions) == (10, 10)
    assert full.for_campaign(CAMPAIGN).campaign_id == CAMPAIGN


def test_one_row_per_arm_and_day():
    with pytest.raises(ValidationError, match="rows 0 and 2 are both A/email on 2025-03-01"):
        MetricsBatch(rows=[row(), row(variant="B"), row()])
    MetricsBatch(rows=[row(), row(channel="sms"), row(metric_date="2025-03-02")])


def campaign(**overrides) -> Campaign:
    fields = {"id": CAMPAIGN, "name": "Spring", "channels": [Channel.EMAIL], "budget": Decimal(1000),
              "start_date": date(2025, 3, 1), "end_date": date(2025, 3, 31),
              "created_at": datetime(2025, 2, 1, tzinfo=UTC), **overrides}
    return Campaign(**fields)


def test_a_new_campaign_names_what_is_wrong():
    with pytest.raises(ValidationError) as caught:
        NewCampaign(name="x", channels=["email", "email"], budget="-1", start_date="2025-03-02",
                    end_date="2025-03-01")
    assert invalid_fields(caught.value) == ["channels", "budget", "end_date"]


def test_a_patch_changes_only_what_it_sends_and_null_clears_only_the_end_date():
    before = campaign()
    after = CampaignUpdate(status="active", end_date=None).apply_to(before)
    assert after == before.model_copy(update={"status": CampaignStatus.ACTIVE, "end_date": None})
    with pytest.raises(ValidationError) as caught:
        CampaignUpdate(name=None, budget=None)
    assert invalid_fields(caught.value) == ["name", "budget"]


def test_a_patch_that_puts_the_dates_out_of_order_names_the_field_it_sent():
    with pytest.raises(InvalidFields) as caught:
        CampaignUpdate(end_date="2025-02-01").apply_to(campaign())
    assert [e["field"] for e in caught.value.details] == ["end_date"] and caught.value.status_code == 422
    with pytest.raises(InvalidFields) as caught:
        CampaignUpdate(start_date="2025-04-01").apply_to(campaign())
    assert [e["field"] for e in caught.value.details] == ["start_date"]
