"""The campaign optimizer's vocabulary: arms, their performance, allocations and decisions.

Value types that the optimizer (``actors.campaign_allocation``) produces, the campaign store keeps and
the API shows; the numbers of a performance report are computed here too (:func:`analyse`), so that a
stored report and a fresh one always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from marketing_agents.domain.campaign import CampaignMetrics
from marketing_agents.domain.common import Channel, DomainModel

SHARE_TOLERANCE = 1e-9  # shares are floats: "sums to 1" means within this


class _Frozen(DomainModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------------------------------
# Performance analysis
# --------------------------------------------------------------------------------------------------


class Arm(_Frozen):
    """One variant on one channel: the unit the budget is split over."""

    variant: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    channel: Channel

    @property
    def key(self) -> str:
        """``variant/channel``; unambiguous, as channel names contain no slash."""
        return f"{self.variant}/{self.channel.value}"

    @classmethod
    def from_key(cls, key: str) -> Arm:
        variant, _, channel = key.rpartition("/")
        return cls(variant=variant, channel=Channel(channel))

    @classmethod
    def of(cls, row: CampaignMetrics) -> Arm:
        return cls(variant=row.variant, channel=row.channel)


def _ratio(numerator: int | Decimal, denominator: int | Decimal) -> float | None:
    """numerator/denominator as a float, computed exactly in Decimal; None when the denominator is 0."""
    if denominator == 0:
        return None
    return float(Decimal(numerator) / Decimal(denominator))


class Performance(_Frozen):
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    spend: Decimal = Decimal("0")
    revenue: Decimal = Decimal("0")
    ctr: float | None = None
    cvr: float | None = None
    cpa: float | None = None
    roas: float | None = None
    roi: float | None = None

    @classmethod
    def of(cls, impressions: int, clicks: int, conversions: int, spend: Decimal, revenue: Decimal) -> Self:
        return cls(
            impressions=impressions, clicks=clicks, conversions=conversions, spend=spend, revenue=revenue,
            ctr=_ratio(clicks, impressions),
            cvr=_ratio(conversions, clicks),
            cpa=_ratio(spend, conversions),
            roas=_ratio(revenue, spend),
            roi=_ratio(revenue - spend, spend),
        )

    def rate(self, basis: Literal["impression", "click"]) -> float | None:
        """Conversions per impression or per click."""
        return _ratio(self.conversions, self.impressions if basis == "impression" else self.clicks)


class ArmPerformance(Performance):
    arm: Arm
    days: int = 0


class PerformanceReport(_Frozen):
    campaign_id: UUID | None = None
    first_date: date | None = None
    last_date: date | None = None
    arms: list[ArmPerformance] = Field(default_factory=list)  # sorted by arm key
    total: Performance = Performance()

    def arm(self, key: str) -> ArmPerformance | None:
        return next((a for a in self.arms if a.arm.key == key), None)


def analyse(metrics: Iterable[CampaignMetrics]) -> PerformanceReport:
    """Sums the daily rows per arm and in total. One campaign at a time; one row per arm and day."""
    rows = list(metrics)
    campaigns = {row.campaign_id for row in rows}
    if len(campaigns) > 1:
        raise ValueError(f"metrics of {len(campaigns)} campaigns given; analyse one campaign at a time")
    seen: set[tuple[str, date]] = set()
    sums: dict[str, list] = {}
    for row in rows:
        arm = Arm.of(row)
        if (arm.key, row.metric_date) in seen:
            raise ValueError(f"two metric rows for {arm.key} on {row.metric_date}")
        seen.add((arm.key, row.metric_date))
        acc = sums.setdefault(arm.key, [arm, 0, 0, 0, Decimal("0"), Decimal("0"), 0])
        acc[1] += row.impressions
        acc[2] += row.clicks
        acc[3] += row.conversions
        acc[4] += row.spend
        acc[5] += row.revenue
        acc[6] += 1
    arms = [
        ArmPerformance(
            arm=arm, days=days, **Performance.of(impressions, clicks, conversions, spend, revenue).model_dump(),
        )
        for arm, impressions, clicks, conversions, spend, revenue, days in (sums[k] for k in sorted(sums))
    ]
    total = Performance.of(
        sum(a.impressions for a in arms), sum(a.clicks for a in arms), sum(a.conversions for a in arms),
        sum((a.spend for a in arms), Decimal("0")), sum((a.revenue for a in arms), Decimal("0")),
    )
    dates = [row.metric_date for row in rows]
    return PerformanceReport(
        campaign_id=next(iter(campaigns), None),
        first_date=min(dates, default=None), last_date=max(dates, default=None),
        arms=arms, total=total,
    )


# --------------------------------------------------------------------------------------------------
# Policy, allocation and decision
# --------------------------------------------------------------------------------------------------

Share = Annotated[float, Field(ge=0.0, le=1.0)]


class OptimizerPolicy(_Frozen):
    """What the optimizer may do alone.

    The defaults were chosen on the campaign simulator (8 arms, 30 days, 20,000 impressions a day,
    100 seeds; see ``campaign_simulator``):

    - ``min_impressions_to_pause`` 3,000: about a day and a half of an equal share. 1,000 pauses on
      noise (the truly best arm was lost in a run), 10,000 keeps losers on 1% shares for too long
      (optimizer/oracle 93% instead of 97%).
    - ``min_active_arms`` 2: the last pause, between two close arms, is the one most likely wrong and
      the one that costs most when it is; keeping the runner-up on at least ``min_share`` took the
      worst seed from 70% to 93% of the oracle at no cost in the mean.
    - ``pause_below_p_best`` 5%: 2% and 10% gave the same results; 5% is the conventional choice.
    - ``min_share`` 1%, ``max_share`` 1.0 (no maximum): each point of min share on 7 arms or of
      max share on the best one costs about a point against the oracle; the floor is what keeps
      every active arm measured.
    - ``max_daily_change`` 20%: 25% gained nothing; the cap only slows the first three days.
    """

    rate_basis: Literal["impression", "click"] = "impression"
    prior_weight: float = Field(default=100.0, gt=0)  # pseudo-observations at the pooled campaign rate
    posterior_draws: int = Field(default=10_000, ge=100)
    # pausing a loser
    pause_below_p_best: Share = 0.05
    min_impressions_to_pause: int = Field(default=3_000, ge=0)
    min_clicks_to_pause: int = Field(default=30, ge=0)
    min_active_arms: int = Field(default=2, ge=1)
    # reallocation
    min_share: Share = 0.01
    max_share: Share = 1.0
    max_daily_change: Share = 0.2
    # escalation to humans (inclusive thresholds)
    escalate_roi_at: float = -0.2
    roi_min_spend: Decimal = Field(default=Decimal("1000"), ge=0)
    escalate_budget_spent_at: float = Field(default=0.9, gt=0)
    escalate_pause_share_at: Share = 0.3
    escalate_share_drop_at: Share | None = 0.5

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min_share > self.max_share:
            raise ValueError("min_share must not exceed max_share")
        return self


class Allocation(_Frozen):
    """Budget shares per arm key. Paused arms are listed and hold 0; the shares sum to 1."""

    shares: dict[str, Share]
    paused: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.shares:
            raise ValueError("an allocation needs at least one arm")
        for key in self.shares:
            Arm.from_key(key)
        if abs(sum(self.shares.values()) - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"shares must sum to 1, not {sum(self.shares.values())!r}")
        for key in self.paused:
            if self.shares.get(key, None) != 0.0:
                raise ValueError(f"paused arm {key} must be in the allocation with share 0")
        if len(set(self.paused)) != len(self.paused):
            raise ValueError("an arm is paused twice")
        return self

    @classmethod
    def equal(cls, arms: Iterable[Arm | str]) -> Allocation:
        keys = sorted({a.key if isinstance(a, Arm) else a for a in arms})
        if not keys:
            raise ValueError("no arms to allocate the budget to (no metrics and no current allocation)")
        return cls(shares={k: 1.0 / len(keys) for k in keys})

    @property
    def active(self) -> list[str]:
        return [k for k in self.shares if k not in self.paused]


class ActionKind(StrEnum):
    PAUSE = "pause"
    INCREASE = "increase"
    DECREASE = "decrease"
    KEEP = "keep"
    RESTORE = "restore"  # rollback


class ArmAction(_Frozen):
    arm: str
    action: ActionKind
    previous_share: float
    new_share: float
    p_best: float | None = None
    reason: str


class EscalationKind(StrEnum):
    LOW_ROI = "low_roi"
    BUDGET_NEARLY_SPENT = "budget_nearly_spent"
    LARGE_PAUSE = "large_pause"
    LARGE_SHIFT = "large_shift"


class Escalation(_Frozen):
    kind: EscalationKind
    threshold: float
    observed: float
    message: str
    arm: str | None = None


class OptimizationDecision(_Frozen):
    campaign_id: UUID | None = None
    as_of: date | None = None  # the last day of metrics it was made from
    previous: Allocation  # the allocation it was made from: applying invert(decision) restores it
    proposed: Allocation
    target_shares: dict[str, float] = Field(default_factory=dict)  # after clipping, before the daily cap
    p_best: dict[str, float] = Field(default_factory=dict)
    paused_arms: list[str] = Field(default_factory=list)  # paused by this decision
    actions: list[ArmAction] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    auto_applicable: bool
    notes: list[str] = Field(default_factory=list)
    is_rollback: bool = False

    @model_validator(mode="after")
    def _escalated_is_not_automatic(self) -> Self:
        if self.auto_applicable and self.escalations:
            raise ValueError("an escalated decision cannot be auto-applicable")
        return self

    @property
    def shares(self) -> dict[str, float]:
        return self.proposed.shares


def apply_decision(current: Allocation, decision: OptimizationDecision) -> Allocation:
    """The allocation after ``decision``; refuses a decision made from another allocation."""
    if current != decision.previous:
        raise ValueError("the decision was made from another allocation; decide again")
    return decision.proposed


def invert(decision: OptimizationDecision) -> OptimizationDecision:
    """The rollback: applied after ``decision`` it restores ``decision.previous`` exactly."""
    before, after = decision.proposed, decision.previous
    actions = [
        ArmAction(
            arm=key, action=ActionKind.RESTORE, previous_share=before.shares.get(key, 0.0), new_share=share,
            reason=f"rollback: share restored to {share:.1%}" + (" (paused)" if key in after.paused else ""),
        )
        for key, share in after.shares.items()
    ]
    return OptimizationDecision(
        campaign_id=decision.campaign_id, as_of=decision.as_of, previous=before, proposed=after,
        target_shares=dict(after.shares), actions=actions, auto_applicable=True, is_rollback=True,
        notes=["rollback of the decision as of " + (str(decision.as_of) if decision.as_of else "its date")],
    )


# --------------------------------------------------------------------------------------------------
# Share arithmetic
# --------------------------------------------------------------------------------------------------


