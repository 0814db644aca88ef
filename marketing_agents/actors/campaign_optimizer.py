"""The campaign optimizer's judgment: read the numbers, pause clear losers, move budget, know when to ask.

Plain, deterministic Python: every random draw comes from the ``numpy.random.Generator`` the caller
passes in, nothing here does I/O. The steps of :meth:`CampaignOptimizer.decide`:

1. **Performance** (:func:`analyse`): per arm (an arm is a variant on a channel) and in total, the raw
   counts and CTR = clicks/impressions, CVR = conversions/clicks, CPA = spend/conversions,
   ROAS = revenue/spend, ROI = (revenue - spend)/spend; ``None`` wherever the denominator is 0.
2. **Posteriors**: each active arm's conversion rate gets a Beta posterior, per impression by default
   (the budget buys impressions, so conversions per impression is what a share of budget earns) or
   per click (``rate_basis="click"``, for campaigns bought per click). The prior is weak and centred on
   the campaign's pooled rate (``prior_weight`` pseudo-observations), not Beta(1, 1): with rates of a
   few percent a uniform prior would make an arm without data look like the best one.
   ``posterior_draws`` joint draws give every arm's probability to be best, P(best).
3. **Pauses**: an arm is paused (share 0) when P(best) < ``pause_below_p_best`` *and* it has enough
   evidence of its own (``min_impressions_to_pause`` and ``min_clicks_to_pause``). The arm with the
   highest P(best) is never paused and at least ``min_active_arms`` stay active. The optimizer never
   un-pauses an arm: that is a human's call (or a rollback).
4. **Thompson shares**: among the arms still active, an arm's target share is the fraction of the same
   draws in which it is the best, clipped to [``min_share``, ``max_share``] and renormalised
   (proportionally, keeping the bounds; the bounds are relaxed to 1/k when k arms cannot satisfy them).
5. **Daily cap**: no active arm's share moves by more than ``max_daily_change`` from its current share
   (the closest allocation to the target inside the caps that still sums to 1). A pause is exempt: it
   takes the arm to 0 at once, which is why a large pause is escalated (below). If the budget freed by
   pauses cannot be absorbed within the caps, the cap is lifted for that decision and a note says so.
6. **Escalations** (:class:`EscalationKind`); any of them makes the decision not auto-applicable: it is
   a proposal for a human, whose approval applies it unchanged. Thresholds are inclusive (a value *at*
   the threshold escalates):

   - ``low_roi``: campaign ROI <= ``escalate_roi_at`` (-0.2) once spend >= ``roi_min_spend``. Moving
     budget between arms does not fix an unprofitable campaign; whether to go on is a business call.
   - ``budget_nearly_spent``: spend / campaign budget >= ``escalate_budget_spent_at`` (0.9). Only with a
     budget > 0 (a zero budget means "not set").
   - ``large_pause``: pausing an arm that currently gets >= ``escalate_pause_share_at`` (0.3) of the
     budget. Pauses bypass the daily cap, so a large one is a large sudden move.
   - ``large_shift``: the target (before the daily cap) takes >= ``escalate_share_drop_at`` (0.5) of the
     budget away from one active arm. The cap already bounds what is applied, so ordinary learning
     (an arm rising from an equal share) is left alone; but a desire to cut an arm that holds much of
     the budget means the optimizer has reversed its view of that arm (or the tracking broke), which
     a human should look at. Set it to ``None`` to switch it off.

7. **Rollback**: a decision records the allocation it was made from (``previous``) and the one it
   proposes (``proposed``); :func:`apply_decision` checks it is applied to the allocation it was made
   for, and :func:`invert` returns the decision that restores ``previous`` exactly (paused arms
   included; a rollback is exempt from the daily cap and never escalates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

import numpy as np
from pydantic import ConfigDict, Field, StringConstraints, model_validator

from marketing_agents.domain import CampaignMetrics, Channel, DomainModel

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


def _bisect(f, lo: float, hi: float, iterations: int = 200) -> float:
    """The smallest x in [lo, hi] with f(x) >= 1 for a nondecreasing f (f(lo) <= 1 <= f(hi))."""
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if f(mid) >= 1.0:
            hi = mid
        else:
            lo = mid
    return hi


def clip_and_normalise(weights: np.ndarray, min_share: float, max_share: float) -> np.ndarray:
    """Shares proportional to ``weights`` within [min_share, max_share] that sum to 1.

    s_i = clip(λ·w_i, lo, hi) with λ chosen so that they sum to 1. When k arms cannot satisfy the
    bounds (k·lo > 1 or k·hi < 1) the violated bound becomes 1/k.
    """
    k = len(weights)
    lo, hi = min(min_share, 1.0 / k), max(max_share, 1.0 / k)
    w = np.maximum(np.asarray(weights, dtype=float), 1e-12)  # a zero weight still has a direction
    top = hi / w.min()
    lam = _bisect(lambda x: float(np.clip(x * w, lo, hi).sum()), 0.0, top)
    shares = np.clip(lam * w, lo, hi)
    return _fix_sum(shares, lo, hi)


def _fix_sum(shares: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
    """Removes the float residual of a bisection from the arms with room, so the sum is 1."""
    residual = 1.0 - shares.sum()
    room = (upper - shares) if residual > 0 else (shares - lower)
    room = np.maximum(room, 0.0)
    if abs(residual) > 0 and room.sum() > 0:
        shares = shares + residual * room / room.sum()
    return shares


def cap_changes(
    target: np.ndarray, previous: np.ndarray, cap: float, min_share: float, max_share: float,
) -> tuple[np.ndarray, bool]:
    """The allocation closest to ``target`` whose shares move at most ``cap`` from ``previous``.

    s_i = clip(t_i + μ, L_i, U_i) with L_i = max(lo, p_i - cap), U_i = min(hi, p_i + cap) and μ chosen so
    that they sum to 1. Returns (shares, capped); ``capped`` is False when the caps could not be met
    (the budget freed by pauses is more than the other arms may take) and the target is returned.
    """
    k = len(target)
    lo, hi = min(min_share, 1.0 / k), max(max_share, 1.0 / k)
    lower = np.maximum(lo, previous - cap)
    upper = np.minimum(hi, previous + cap)
    # an arm outside [lo, hi] by more than the cap (the bounds changed) moves towards them by the cap
    stuck = lower > upper
    lower = np.where(stuck, np.where(previous > hi, previous - cap, previous + cap), lower)
    upper = np.where(stuck, lower, upper)
    if lower.sum() > 1.0 + SHARE_TOLERANCE or upper.sum() < 1.0 - SHARE_TOLERANCE:
        return target.copy(), False
    span = 1.0 + cap
    mu = _bisect(lambda m: float(np.clip(target + m, lower, upper).sum()), -span, span)
    shares = np.clip(target + mu, lower, upper)
    return _fix_sum(shares, lower, upper), True


# --------------------------------------------------------------------------------------------------
# The optimizer
# --------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x:.1%}"


class CampaignOptimizer:
    """Decides one step of budget allocation for one campaign. Deterministic given the generator."""

    def __init__(self, policy: OptimizerPolicy | None = None) -> None:
        self.policy = policy or OptimizerPolicy()

    def posterior_p_best(
        self, report: PerformanceReport, keys: Sequence[str], rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(draws, P(best)) for ``keys``: ``posterior_draws`` × k joint Beta draws of the conversion rate."""
        basis = self.policy.rate_basis
        n = np.array([self._trials(report.arm(k)) for k in keys], dtype=float)
        conv = np.array([(a.conversions if (a := report.arm(k)) else 0) for k in keys], dtype=float)
        pooled = (conv.sum() + 1.0) / (n.sum() + 2.0)
        if basis == "click":
            pooled = min(pooled, 1.0 - 1e-9)
        alpha0, beta0 = pooled * self.policy.prior_weight, (1.0 - pooled) * self.policy.prior_weight
        draws = rng.beta(alpha0 + conv, beta0 + n - conv, size=(self.policy.posterior_draws, len(keys)))
        return draws, _best_fractions(draws)

    def _trials(self, arm: ArmPerformance | None) -> int:
        if arm is None:
            return 0
        return arm.impressions if self.policy.rate_basis == "impression" else arm.clicks

    def decide(
        self,
        metrics: Iterable[CampaignMetrics],
        current: Allocation | None,
        rng: np.random.Generator,
        *,
        budget: Decimal | None = None,
    ) -> OptimizationDecision:
        """The next allocation from all metrics so far and the current allocation.

        ``current`` None means the campaign has no allocation yet: equal shares over the arms in the
        metrics. ``budget`` is the campaign's total budget (``Campaign.budget``), for the budget escalation.
        """
        policy = self.policy
        report = analyse(metrics)
        previous = current or Allocation.equal(a.arm for a in report.arms)
        keys = sorted(set(previous.shares) | {a.arm.key for a in report.arms})
        was_paused = set(previous.paused)
        candidates = [k for k in keys if k not in was_paused]
        prev_share = {k: previous.shares.get(k, 0.0) for k in keys}
        notes: list[str] = []

        draws, p_best = self.posterior_p_best(report, candidates, rng)
        p_best_of = dict(zip(candidates, (float(p) for p in p_best), strict=True))
        leader = candidates[int(np.argmax(p_best))]
        mean_of = dict(zip(candidates, (float(m) for m in draws.mean(axis=0)), strict=True))

        # 1. pauses, the least likely to be best first (ties: the lower posterior mean rate first)
        newly_paused: list[str] = []
        evidence_short: dict[str, str] = {}
        for key in sorted(candidates, key=lambda k: (p_best_of[k], mean_of[k], k)):
            if p_best_of[key] >= policy.pause_below_p_best or key == leader:
                continue
            perf = report.arm(key)
            impressions, clicks = (perf.impressions, perf.clicks) if perf else (0, 0)
            if impressions < policy.min_impressions_to_pause or clicks < policy.min_clicks_to_pause:
                evidence_short[key] = (
                    f"{impressions:,} impressions and {clicks:,} clicks; pausing needs "
                    f"{policy.min_impressions_to_pause:,} and {policy.min_clicks_to_pause:,}"
                )
                continue
            if len(candidates) - len(newly_paused) <= policy.min_active_arms:
                evidence_short[key] = f"at least {policy.min_active_arms} arm(s) must stay active"
                continue
            newly_paused.append(key)
        active = [k for k in candidates if k not in newly_paused]

        # 2. Thompson target among the arms still active, from the same draws
        columns = [candidates.index(k) for k in active]
        thompson = _best_fractions(draws[:, columns])
        target = clip_and_normalise(thompson, policy.min_share, policy.max_share)

        # 3. the daily cap on every active arm's change
        prev_active = np.array([prev_share[k] for k in active])
        new, capped = cap_changes(target, prev_active, policy.max_daily_change, policy.min_share, policy.max_share)
        if not capped:
            notes.append(
                f"the daily cap of {_pct(policy.max_daily_change)} could not be kept: the budget freed by "
                "pauses is more than the remaining arms may take within it; the target is proposed as is"
            )
        new_share = {k: 0.0 for k in keys}
        new_share.update(zip(active, (float(s) for s in new), strict=True))
        target_of = dict(zip(active, (float(t) for t in target), strict=True))
        proposed = Allocation(shares=new_share, paused=tuple(sorted(was_paused | set(newly_paused))))

        actions = self._actions(report, keys, was_paused, newly_paused, prev_share, new_share, target_of,
                                p_best_of, leader, evidence_short)
        escalations = self._escalations(report, budget, newly_paused, prev_share, target_of)
        return OptimizationDecision(
            campaign_id=report.campaign_id, as_of=report.last_date, previous=previous, proposed=proposed,
            target_shares=target_of, p_best=p_best_of, paused_arms=newly_paused, actions=actions,
            escalations=escalations, auto_applicable=not escalations, notes=notes,
        )

    def _actions(
        self, report: PerformanceReport, keys: list[str], was_paused: set[str], newly_paused: list[str],
        prev_share: Mapping[str, float], new_share: Mapping[str, float], target_of: Mapping[str, float],
        p_best_of: Mapping[str, float], leader: str, evidence_short: Mapping[str, str],
    ) -> list[ArmAction]:
        policy = self.policy
        basis = policy.rate_basis
        leader_perf = report.arm(leader)
        leader_rate = leader_perf.rate(basis) if leader_perf else None
        actions = []
        for key in keys:
            before, after = prev_share[key], new_share[key]
            if key in was_paused:
                actions.append(ArmAction(arm=key, action=ActionKind.KEEP, previous_share=before, new_share=after,
                                         reason="stays paused (paused earlier; only a person or a rollback "
                                                "re-activates it)"))
                continue
            p = p_best_of[key]
            perf = report.arm(key)
            rate = perf.rate(basis) if perf else None
            per = f"conversions per {basis}"
            observed = (f"{per} {_pct(rate)} vs {_pct(leader_rate)} for the leader {leader}"
                        if rate is not None and leader_rate is not None else f"no {per} observed yet")
            if key in newly_paused:
                reason = (f"paused: P(best) {_pct(p)} < {_pct(policy.pause_below_p_best)} after "
                          f"{perf.impressions:,} impressions and {perf.clicks:,} clicks; {observed}")
                actions.append(ArmAction(arm=key, action=ActionKind.PAUSE, previous_share=before,
                                         new_share=0.0, p_best=p, reason=reason))
                continue
            target = target_of[key]
            reason = f"P(best) {_pct(p)}, Thompson target {_pct(target)}"
            if target == policy.min_share or target == policy.max_share:
                reason += " (at the " + ("minimum" if target == policy.min_share else "maximum") + " share)"
            if abs(after - target) > SHARE_TOLERANCE:
                reason += (f", moved to {_pct(after)} instead by the daily cap "
                           f"(±{_pct(policy.max_daily_change)} per arm)")
            if key in evidence_short:
                reason += f"; not paused: {evidence_short[key]}"
            reason += f"; {observed}"
            if after > before + SHARE_TOLERANCE:
                kind, verb = ActionKind.INCREASE, "raised"
            elif after < before - SHARE_TOLERANCE:
                kind, verb = ActionKind.DECREASE, "lowered"
            else:
                kind, verb = ActionKind.KEEP, "kept"
            reason = f"{verb} {_pct(before)} -> {_pct(after)}: {reason}"
            actions.append(ArmAction(arm=key, action=kind, previous_share=before, new_share=after, p_best=p,
                                     reason=reason))
        return actions

    def _escalations(
        self, report: PerformanceReport, budget: Decimal | None, newly_paused: list[str],
        prev_share: Mapping[str, float], target_of: Mapping[str, float],
    ) -> list[Escalation]:
        policy = self.policy
        total = report.total
        out: list[Escalation] = []
        if total.spend >= policy.roi_min_spend and total.roi is not None and total.roi <= policy.escalate_roi_at:
            out.append(Escalation(
                kind=EscalationKind.LOW_ROI, threshold=policy.escalate_roi_at, observed=total.roi,
                message=f"campaign ROI is {total.roi:+.1%} after {total.spend} spent (escalates at "
                        f"{policy.escalate_roi_at:+.1%} once {policy.roi_min_spend} is spent): reallocating "
                        "between arms will not make it profitable; decide whether to go on",
            ))
        if budget is not None and budget > 0:
            spent = float(total.spend / budget)
            if spent >= policy.escalate_budget_spent_at:
                out.append(Escalation(
                    kind=EscalationKind.BUDGET_NEARLY_SPENT, threshold=policy.escalate_budget_spent_at,
                    observed=spent,
                    message=f"{_pct(spent)} of the budget of {budget} is spent ({total.spend}); "
                            f"escalates at {_pct(policy.escalate_budget_spent_at)}: extend, stop or let it run out",
                ))
        for key in newly_paused:
            share = prev_share[key]
            if share >= policy.escalate_pause_share_at:
                out.append(Escalation(
                    kind=EscalationKind.LARGE_PAUSE, threshold=policy.escalate_pause_share_at, observed=share,
                    arm=key,
                    message=f"pausing {key}, which gets {_pct(share)} of the budget (escalates at "
                            f"{_pct(policy.escalate_pause_share_at)}): a pause is not limited by the daily cap",
                ))
        if policy.escalate_share_drop_at is not None:
            for key, target in target_of.items():
                drop = prev_share[key] - target
                if drop >= policy.escalate_share_drop_at:
                    out.append(Escalation(
                        kind=EscalationKind.LARGE_SHIFT, threshold=policy.escalate_share_drop_at, observed=drop,
                        arm=key,
                        message=f"the optimizer wants to cut {key} from {_pct(prev_share[key])} to "
                                f"{_pct(target)} ({_pct(drop)} of the budget; escalates at "
                                f"{_pct(policy.escalate_share_drop_at)}): it has reversed its view of this arm",
                    ))
        return out


def _best_fractions(draws: np.ndarray) -> np.ndarray:
    """For each column, the fraction of rows in which it holds the maximum."""
    best = np.argmax(draws, axis=1)
    return np.bincount(best, minlength=draws.shape[1]) / draws.shape[0]
