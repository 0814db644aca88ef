"""The campaign optimizer's judgment: read the numbers, pause clear losers, move budget, know when to ask.

Plain, deterministic Python: every random draw comes from the ``numpy.random.Generator`` the caller
passes in, nothing here does I/O. The steps of :meth:`AllocationOptimizer.decide`:

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
from decimal import Decimal

import numpy as np

from marketing_agents.domain import CampaignMetrics
from marketing_agents.domain.optimization import (
    SHARE_TOLERANCE,
    ActionKind,
    Allocation,
    ArmAction,
    ArmPerformance,
    Escalation,
    EscalationKind,
    OptimizationDecision,
    OptimizerPolicy,
    PerformanceReport,
    analyse,
)


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


class AllocationOptimizer:
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
                if perf is None:  # an arm without metrics can reach here only when both pause thresholds are 0
                    raise ValueError(f"arm {key!r} is to be paused but has no metrics in the report")
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
