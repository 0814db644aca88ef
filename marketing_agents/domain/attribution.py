"""Attribution: which arm of its campaign a lead gets, and what the system observed of each arm.

A lead that comes from a campaign (``campaign_id`` on intake) is given one of the campaign's arms by
the engagement agent, drawn by the shares of the allocation the campaign runs on now. The draw is a
hash of the campaign, the lead and a seed, not a random generator: the same lead of the same campaign
under the same allocation always gets the same arm, so a plan can be explained and reproduced, and
leads spread over the arms by the shares as uniformly as hashes do.

What comes back is counted per arm and per *cohort*, the day the leads were captured: a day's leads
and everything they did since. The optimizer reads these cohorts as its daily evidence (one lead is
one trial; a converted lead is a success), beside the metrics clients post.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import Field

from marketing_agents.domain.campaign import CampaignMetrics, CampaignStatus
from marketing_agents.domain.common import Channel, DomainModel
from marketing_agents.domain.optimization import Allocation, Arm


class CampaignOffer(DomainModel):
    """What the engagement agent needs to give a lead an arm: the campaign's allocation as it is now.

    Before the optimizer's first decision a campaign runs on an equal split over its declared arms
    (variants x channels). Travels in the handoff package.
    """

    campaign_id: UUID
    name: str
    status: CampaignStatus = Field(description="Only an active campaign gives its leads arms.")
    allocation: Allocation
    seed: int = Field(default=0, ge=0, description="MAS_OPTIMIZER_SEED: another seed, another draw.")


class ArmDraw(DomainModel):
    """The arm a lead got and how: its share among the arms the lead can be reached on, and the draw."""

    campaign_id: UUID
    arm: str
    share: float = Field(ge=0, le=1, description="The arm's share among the arms on the lead's consented channels.")
    draw: float = Field(ge=0, lt=1, description="The lead's point in [0, 1), from the campaign, lead and seed.")

    @property
    def channel(self) -> Channel:
        return Arm.from_key(self.arm).channel

    @property
    def variant(self) -> str:
        return Arm.from_key(self.arm).variant

    def explain(self, campaign_name: str) -> str:
        return (f"campaign '{campaign_name}': arm {self.arm} (variant {self.variant} on {self.channel.value}), "
                f"drawn at {self.draw:.3f} by its share of {self.share:.0%}")


def declared_arms(variants: Iterable[str], channels: Iterable[Channel]) -> list[str]:
    return sorted(Arm(variant=v, channel=c).key for v in variants for c in channels)


def starting_allocation(declared: Iterable[str], measured: Iterable[str]) -> Allocation:
    """What a campaign runs on before the optimizer's first decision: an equal split over the arms its
    clients' metrics name, or, while there are none, over its declared arms (variants x channels)."""
    return Allocation.equal(sorted(set(measured)) or sorted(set(declared)))


def lead_point(campaign_id: UUID, lead_id: UUID, seed: int) -> float:
    """A fixed point in [0, 1) for the lead in the campaign: the same inputs, the same point."""
    digest = hashlib.sha256(f"{seed}:{campaign_id}:{lead_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw_arm(offer: CampaignOffer, lead_id: UUID, allowed: set[Channel]) -> ArmDraw | None:
    """The arm for the lead among the active arms on channels it consented to, by their shares.

    None when the campaign is not active or no such arm holds a share: the lead is engaged as it would
    be without the campaign.
    """
    if offer.status is not CampaignStatus.ACTIVE:
        return None
    shares = {key: share for key, share in sorted(offer.allocation.shares.items())
              if key not in offer.allocation.paused and share > 0 and Arm.from_key(key).channel in allowed}
    total = sum(shares.values())
    if total <= 0:
        return None
    point = lead_point(offer.campaign_id, lead_id, offer.seed)
    cumulative = 0.0
    chosen = next(iter(shares))
    for key, share in shares.items():
        cumulative += share / total
        chosen = key
        if point < cumulative:
            break
    return ArmDraw(campaign_id=offer.campaign_id, arm=chosen, share=shares[chosen] / total, draw=point)


# --------------------------------------------------------------------------------------------------
# Observed performance
# --------------------------------------------------------------------------------------------------


class ObservedCounts(DomainModel):
    """Counted from the system's own rows: leads, the touchpoints sent to them and what they did."""

    leads: int = Field(default=0, ge=0, description="Leads of the campaign (of the arm: given that arm).")
    leads_engaged: int = Field(default=0, ge=0, description="Of those, leads that clicked, visited, replied, "
                                                            "met, submitted a form or converted.")
    leads_converted: int = Field(default=0, ge=0, description="Of those, leads with at least one conversion.")
    touchpoints_sent: int = Field(default=0, ge=0)
    opens: int = Field(default=0, ge=0)
    clicks: int = Field(default=0, ge=0)
    replies: int = Field(default=0, ge=0)
    conversions: int = Field(default=0, ge=0)
    revenue: Decimal = Field(default=Decimal("0"), ge=0)

    def plus(self, other: ObservedCounts) -> ObservedCounts:
        return ObservedCounts(**{name: getattr(self, name) + getattr(other, name) for name in ObservedCounts.model_fields})


class ObservedDay(ObservedCounts):
    """One arm's cohort: the leads captured on ``cohort_date`` and everything they did since."""

    arm: str | None = Field(description="null: the campaign's leads and interactions without an arm.")
    cohort_date: date


class ObservedArm(ObservedCounts):
    arm: str | None = Field(description="null: the campaign's leads and interactions without an arm.")


class ObservedPerformance(DomainModel):
    """The ``observed`` block of a campaign's performance, as of its last refresh."""

    refreshed_at: datetime | None = Field(description="null: not refreshed since the campaign got its first lead.")
    arms: list[ObservedArm] = Field(default_factory=list, description="Sorted by arm; the arm-less row last.")
    total: ObservedCounts = ObservedCounts()


def summarise_observed(days: Iterable[ObservedDay], refreshed_at: datetime | None) -> ObservedPerformance:
    by_arm: dict[str | None, ObservedCounts] = {}
    for day in days:
        counts = ObservedCounts(**day.model_dump(include=set(ObservedCounts.model_fields)))
        by_arm[day.arm] = by_arm.get(day.arm, ObservedCounts()).plus(counts)
    order = sorted(by_arm, key=lambda arm: (arm is None, arm or ""))
    total = ObservedCounts()
    for counts in by_arm.values():
        total = total.plus(counts)
    return ObservedPerformance(refreshed_at=refreshed_at,
                               arms=[ObservedArm(arm=arm, **by_arm[arm].model_dump()) for arm in order], total=total)


def observed_metrics(campaign_id: UUID, days: Iterable[ObservedDay]) -> list[CampaignMetrics]:
    """The cohorts as the optimizer's daily rows: a lead is an impression (a trial of its arm), an engaged
    lead a click, a converted lead a conversion; nothing was spent. Arm-less cohorts are no arm's evidence."""
    return [
        CampaignMetrics(campaign_id=campaign_id, variant=arm.variant, channel=arm.channel, metric_date=day.cohort_date,
                        impressions=day.leads, clicks=day.leads_engaged, conversions=day.leads_converted,
                        spend=Decimal("0"), revenue=day.revenue)
        for day in days if day.arm is not None and day.leads > 0
        for arm in [Arm.from_key(day.arm)]
    ]


def combined_metrics(client: Iterable[CampaignMetrics], observed: Iterable[CampaignMetrics]) -> list[CampaignMetrics]:
    """The optimizer's evidence: client-sent and observed rows of the same arm and day added up."""
    sums: dict[tuple[str, date], CampaignMetrics] = {}
    for row in [*client, *observed]:
        key = (row.arm_key, row.metric_date)
        earlier = sums.get(key)
        if earlier is None:
            sums[key] = row
            continue
        sums[key] = row.model_copy(update={
            name: getattr(earlier, name) + getattr(row, name)
            for name in ("impressions", "clicks", "conversions", "spend", "revenue")})
    return [sums[key] for key in sorted(sums)]
