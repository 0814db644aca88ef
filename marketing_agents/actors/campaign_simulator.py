"""A campaign with known true conversion rates, to measure the optimizer against simple strategies.

The simulated market (:func:`draw_market`), all of it drawn from the seed:

- N arms (variant × channel: variants A, B, ... on email and LinkedIn in turn).
- True conversion rates **per impression** (the budget buys impressions), all in [0.5%, 5%]: a lift
  ``L ~ U(1.10, 1.50)`` is drawn, the N - 1 other arms' rates are drawn independently and
  log-uniformly in [0.5%, 5%/L], and the best arm's rate is L × the best of them; so the best arm is
  10% to 50% better than the runner-up and no arm exceeds 5%. Which arm is best is random.
- The funnel, only to give realistic metric rows: each arm's conversions per click (CVR) is drawn
  in [15%, 45%] and its CTR is rate / CVR.
- Daily drift: every arm's CVR (hence its rate per impression) is multiplied each day by a mean-one
  lognormal factor that follows a log-AR(1) (persistence ``drift_persistence`` = 0.5, stationary
  spread ``drift_sigma`` = 10%): rates wander from day to day, with some memory, around their base
  rate, so the best arm in expectation stays the best (the draws are common to all strategies).
- A fixed daily budget of ``daily_impressions`` (20,000) impressions, split by the strategy's shares
  (largest remainders, so that the day's impressions add up exactly); clicks and conversions are
  binomial draws. Spend is a CPM of 20.00 and a conversion is worth 1.50 (break-even at 1.33% per
  impression); the campaign's budget is exactly what ``days`` days cost, so the optimizer's
  "budget nearly spent" escalation fires in the last days.

The strategies, over the same days and rates:

- ``optimizer``: equal shares on day 1; every later morning :class:`AllocationOptimizer` decides from all
  the previous days' metric rows (as :class:`CampaignMetrics`) and its decision is applied. An
  escalated decision is applied too, as if the person it goes to approved it the same morning; the
  escalations are counted in the result (``escalations``, ``days_escalated``). Keeping the previous
  allocation instead is not a sensible model of a reviewer: nobody would ever answer, and the same
  escalation would come back every day with the allocation frozen.
- ``equal_split``: 1/N of the budget to every arm every day.
- ``oracle``: knows the arm with the best true (base) rate and gives it the whole budget every day.
  It does not know the daily drift, so on a day the drift favours another arm it is not the best
  possible allocation; it is the usual bandit benchmark (the best fixed arm).

:func:`simulate` runs one seed, :func:`simulate_many` several and summarises them (mean, standard
deviation, min, max), :func:`simulation_report` formats either as text for the command line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import numpy as np
from pydantic import ConfigDict, Field

from marketing_agents.actors.campaign_allocation import AllocationOptimizer
from marketing_agents.domain import CampaignMetrics, Channel, DomainModel
from marketing_agents.domain.optimization import Allocation, Arm, OptimizerPolicy, apply_decision

MIN_RATE, MAX_RATE = 0.005, 0.05
MIN_LIFT, MAX_LIFT = 1.10, 1.50
MIN_CVR, MAX_CVR = 0.15, 0.45
CHANNELS = (Channel.EMAIL, Channel.LINKEDIN)
STRATEGIES = ("optimizer", "equal_split", "oracle")
START = date(2025, 1, 1)
SIMULATED_CAMPAIGN = UUID("00000000-0000-4000-8000-00000000c0de")


class _Frozen(DomainModel):
    model_config = ConfigDict(frozen=True)


class SimulationConfig(_Frozen):
    daily_impressions: int = Field(default=20_000, gt=0)
    drift_sigma: float = Field(default=0.10, ge=0)
    drift_persistence: float = Field(default=0.5, ge=0, lt=1)
    cpm: Decimal = Decimal("20.00")  # spend per 1,000 impressions
    conversion_value: Decimal = Decimal("1.50")


class SimulatedArm(_Frozen):
    key: str
    rate: float  # true base conversions per impression
    ctr: float
    cvr: float  # conversions per click; rate = ctr × cvr


class SimulatedMarket(_Frozen):
    arms: list[SimulatedArm]
    best: str
    runner_up: str
    lift: float  # best rate / runner-up rate


class SimulationResult(_Frozen):
    seed: int
    days: int
    market: SimulatedMarket
    conversions: dict[str, int]  # per strategy
    oracle_ratio: float  # optimizer / oracle conversions
    equal_split_uplift: float  # optimizer / equal split - 1
    escalations: dict[str, int] = Field(default_factory=dict)  # kind -> days it was raised
    days_escalated: int = 0
    paused_on_day: dict[str, int] = Field(default_factory=dict)  # arm key -> the day it stopped serving
    final_shares: dict[str, float] = Field(default_factory=dict)
    best_arm_share: list[float] = Field(default_factory=list)  # the optimizer's share of the best arm per day


class Spread(_Frozen):
    mean: float
    std: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        a = np.asarray(values, dtype=float)
        return cls(mean=float(a.mean()), std=float(a.std()), min=float(a.min()), max=float(a.max()))


class SimulationSummary(_Frozen):
    arms: int
    days: int
    seeds: list[int]
    oracle_ratio: Spread
    equal_split_uplift: Spread
    conversions: dict[str, Spread]
    results: list[SimulationResult]


def arm_keys(n: int) -> list[str]:
    """Variants A, B, ... each on email and LinkedIn: arm i is variant i // 2 on channel i % 2."""
    if not 2 <= n <= 52:
        raise ValueError("between 2 and 52 arms")
    return [Arm(variant=f"variant-{chr(65 + i // 2)}", channel=CHANNELS[i % 2]).key for i in range(n)]


def draw_market(n: int, rng: np.random.Generator) -> SimulatedMarket:
    keys = arm_keys(n)
    lift = float(rng.uniform(MIN_LIFT, MAX_LIFT))
    others = np.exp(rng.uniform(np.log(MIN_RATE), np.log(MAX_RATE / lift), size=n - 1))
    rates = np.append(others, others.max() * lift)
    rates = rates[rng.permutation(n)]
    cvr = rng.uniform(MIN_CVR, MAX_CVR, size=n)
    order = np.argsort(rates)
    arms = [SimulatedArm(key=k, rate=float(r), ctr=float(r / c), cvr=float(c))
            for k, r, c in zip(keys, rates, cvr, strict=True)]
    return SimulatedMarket(arms=arms, best=keys[order[-1]], runner_up=keys[order[-2]],
                           lift=float(rates[order[-1]] / rates[order[-2]]))


def split_impressions(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer impressions proportional to ``shares`` that add up to ``total`` (largest remainders)."""
    exact = np.asarray(shares, dtype=float) * total
    whole = np.floor(exact).astype(np.int64)
    left = total - int(whole.sum())
    if left > 0:
        whole[np.argsort(-(exact - whole), kind="stable")[:left]] += 1
    return whole


def _daily_cvr(market: SimulatedMarket, days: int, config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """days × arms true CVRs: base CVR × a mean-one lognormal log-AR(1) factor."""
    n, phi, sigma = len(market.arms), config.drift_persistence, config.drift_sigma
    log_m = np.empty((days, n))
    log_m[0] = rng.normal(0.0, sigma, n)
    innovation = sigma * np.sqrt(1.0 - phi * phi)
    for t in range(1, days):
        log_m[t] = phi * log_m[t - 1] + rng.normal(0.0, innovation, n)
    base = np.array([a.cvr for a in market.arms])
    return np.minimum(base * np.exp(log_m - sigma * sigma / 2.0), 1.0)


def simulate(
    arms: int, days: int, seed: int, *, policy: OptimizerPolicy | None = None,
    config: SimulationConfig | None = None,
) -> SimulationResult:
    """One campaign of ``arms`` arms over ``days`` days, every strategy on the same market and drift."""
    if days < 1:
        raise ValueError("at least one day")
    config = config or SimulationConfig()
    market_rng, drift_rng, opt_rng, *outcome_rngs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3 + len(STRATEGIES))
    )
    market = draw_market(arms, market_rng)
    keys = [a.key for a in market.arms]
    ctr = np.array([a.ctr for a in market.arms])
    cvr = _daily_cvr(market, days, config, drift_rng)
    per_impression = config.cpm / 1000
    budget = per_impression * config.daily_impressions * days
    optimizer = AllocationOptimizer(policy)

    fixed_shares = {
        "equal_split": np.full(arms, 1.0 / arms),
        "oracle": np.array([1.0 if k == market.best else 0.0 for k in keys]),
    }
    conversions = dict.fromkeys(STRATEGIES, 0)
    allocation = Allocation.equal(keys)
    rows: list[CampaignMetrics] = []
    escalations: Counter[str] = Counter()
    days_escalated = 0
    paused_on_day: dict[str, int] = {}
    best_share: list[float] = []
    for day in range(days):
        if day > 0:
            decision = optimizer.decide(rows, allocation, opt_rng, budget=budget)
            if decision.escalations:
                days_escalated += 1
                escalations.update({e.kind.value for e in decision.escalations})
            allocation = apply_decision(allocation, decision)  # escalated or not: approved (see above)
            for key in decision.paused_arms:
                paused_on_day[key] = day + 1
        best_share.append(allocation.shares[market.best])
        for name, rng in zip(STRATEGIES, outcome_rngs, strict=True):
            shares = np.array([allocation.shares[k] for k in keys]) if name == "optimizer" else fixed_shares[name]
            impressions = split_impressions(shares, config.daily_impressions)
            clicks = rng.binomial(impressions, ctr)
            converted = rng.binomial(clicks, cvr[day])
            conversions[name] += int(converted.sum())
            if name == "optimizer":
                rows += [
                    CampaignMetrics(
                        campaign_id=SIMULATED_CAMPAIGN, variant=Arm.from_key(k).variant,
                        channel=Arm.from_key(k).channel, metric_date=START + timedelta(days=day),
                        impressions=int(n), clicks=int(c), conversions=int(v),
                        spend=per_impression * int(n), revenue=config.conversion_value * int(v),
                    )
                    for k, n, c, v in zip(keys, impressions, clicks, converted, strict=True) if n > 0
                ]
    return SimulationResult(
        seed=seed, days=days, market=market, conversions=conversions,
        oracle_ratio=conversions["optimizer"] / max(conversions["oracle"], 1),
        equal_split_uplift=conversions["optimizer"] / max(conversions["equal_split"], 1) - 1.0,
        escalations=dict(sorted(escalations.items())), days_escalated=days_escalated,
        paused_on_day=paused_on_day, final_shares=dict(allocation.shares), best_arm_share=best_share,
    )


def simulate_many(
    arms: int, days: int, seeds: Sequence[int], *, policy: OptimizerPolicy | None = None,
    config: SimulationConfig | None = None,
) -> SimulationSummary:
    if not seeds:
        raise ValueError("at least one seed")
    results = [simulate(arms, days, s, policy=policy, config=config) for s in seeds]
    return SimulationSummary(
        arms=arms, days=days, seeds=list(seeds),
        oracle_ratio=Spread.of([r.oracle_ratio for r in results]),
        equal_split_uplift=Spread.of([r.equal_split_uplift for r in results]),
        conversions={s: Spread.of([r.conversions[s] for r in results]) for s in STRATEGIES},
        results=results,
    )


def format_result(result: SimulationResult) -> str:
    m = result.market
    lines = [
        f"campaign simulation: {len(m.arms)} arms, {result.days} days, seed {result.seed}",
        f"best arm {m.best} ({_rate(m, m.best)} per impression), {m.lift - 1:.0%} better than {m.runner_up} "
        f"({_rate(m, m.runner_up)})",
        "arm                      true rate   paused on day   final share",
    ]
    lines += [
        f"  {a.key:<22} {a.rate:>8.2%}   {result.paused_on_day.get(a.key, '-')!s:>13}   "
        f"{result.final_shares.get(a.key, 0.0):>10.1%}"
        for a in m.arms
    ]
    c = result.conversions
    lines += [
        f"conversions: optimizer {c['optimizer']:,}, equal split {c['equal_split']:,}, oracle {c['oracle']:,}",
        f"optimizer / oracle {result.oracle_ratio:.1%}; uplift over equal split {result.equal_split_uplift:+.1%}",
        f"escalations: {_escalations(result.escalations)} on {result.days_escalated} day(s)",
    ]
    return "\n".join(lines)


def format_summary(summary: SimulationSummary) -> str:
    r, u = summary.oracle_ratio, summary.equal_split_uplift
    seeds = summary.seeds
    lines = [
        f"campaign simulation: {summary.arms} arms, {summary.days} days, {len(seeds)} seeds "
        f"({seeds[0]}..{seeds[-1]})" if seeds == list(range(seeds[0], seeds[0] + len(seeds)))
        else f"campaign simulation: {summary.arms} arms, {summary.days} days, seeds {seeds}",
        f"optimizer / oracle:         mean {r.mean:.1%}  min {r.min:.1%}  max {r.max:.1%}  std {r.std:.1%}",
        f"uplift over equal split:    mean {u.mean:+.1%}  min {u.min:+.1%}  max {u.max:+.1%}  std {u.std:.1%}",
        "seed  best lift  optimizer  equal split   oracle  ratio   uplift  paused  escalations",
    ]
    for res in summary.results:
        c = res.conversions
        lines.append(
            f"{res.seed:>4}  {res.market.lift - 1:>8.0%}  {c['optimizer']:>9,}  {c['equal_split']:>11,}  "
            f"{c['oracle']:>7,}  {res.oracle_ratio:>5.1%}  {res.equal_split_uplift:>+6.1%}  "
            f"{len(res.paused_on_day):>6}  {_escalations(res.escalations)}"
        )
    return "\n".join(lines)


def simulation_report(
    arms: int = 8, days: int = 30, seed: int = 0, seeds: int | None = None, *,
    policy: OptimizerPolicy | None = None, config: SimulationConfig | None = None,
) -> str:
    """The text for ``marketing-agents simulate-campaign``: one seed, or ``seeds`` seeds from ``seed`` on."""
    if seeds is None:
        return format_result(simulate(arms, days, seed, policy=policy, config=config))
    return format_summary(simulate_many(arms, days, range(seed, seed + seeds), policy=policy, config=config))


def _rate(market: SimulatedMarket, key: str) -> str:
    return f"{next(a.rate for a in market.arms if a.key == key):.2%}"


def _escalations(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in counts.items()) or "none"
