"""The closed loop in one process: leads arrive, get arms, react, and the optimizer learns from them.

The production loop with the production functions (``draw_arm``, ``observed_metrics``,
``AllocationOptimizer``) and a simulated world in place of people:

- each day ``leads_per_day`` leads of the campaign arrive (ids fixed by the seed), each gets an arm by
  ``draw_arm`` under the allocation in effect that morning, and converts with its arm's true rate
  (per lead; the variants' rates are the scenario, the best one ``lift`` times the others);
- each morning the optimizer decides from every earlier cohort counted as production counts it (a
  lead is a trial of its arm, a converted lead a success), and its decision is applied; an escalated
  decision is applied too, as the person it goes to approving it that morning (counted);
- the equal split and the oracle (every lead on the truly best arm) see the same leads with the same
  reactions: each lead's uniform draw is made once, and it converts when that draw is below the rate
  of the arm the strategy gave it (common random numbers, so the strategies differ by their choices,
  not their luck).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import numpy as np
from pydantic import ConfigDict, Field

from marketing_agents.actors.campaign_allocation import AllocationOptimizer
from marketing_agents.domain import CampaignStatus, Channel, DomainModel
from marketing_agents.domain.attribution import CampaignOffer, ObservedDay, draw_arm, observed_metrics
from marketing_agents.domain.optimization import Allocation, OptimizerPolicy

LOOP_CAMPAIGN = UUID("00000000-0000-4000-8000-0000000100ab")
START = date(2025, 1, 1)


class LoopScenario(DomainModel):
    model_config = ConfigDict(frozen=True)

    variants: int = Field(default=2, ge=2, le=20)
    days: int = Field(default=14, ge=2)
    leads_per_day: int = Field(default=200, ge=1)
    base_rate: float = Field(default=0.03, gt=0, lt=1, description="The other variants' conversion per lead.")
    lift: float = Field(default=2.0, ge=1, description="The best variant converts this many times as often.")


class LoopResult(DomainModel):
    seed: int
    conversions: dict[str, int]
    oracle_ratio: float
    equal_split_uplift: float
    best_arm_share: list[float] = Field(description="The best arm's share of the allocation, each morning.")
    escalations: int


def simulate_loop(scenario: LoopScenario, seed: int, policy: OptimizerPolicy | None = None) -> LoopResult:
    rng = np.random.default_rng(seed)
    arms = [f"v{n}/{Channel.EMAIL.value}" for n in range(scenario.variants)]
    best = arms[int(rng.integers(scenario.variants))]
    rate = {arm: scenario.base_rate * (scenario.lift if arm == best else 1.0) for arm in arms}
    optimizer = AllocationOptimizer(policy)
    allocation = Allocation.equal(arms)
    equal = CampaignOffer(campaign_id=LOOP_CAMPAIGN, name="loop", status=CampaignStatus.ACTIVE, allocation=allocation,
                          seed=seed)
    cohorts: list[ObservedDay] = []
    conversions = {"optimizer": 0, "equal_split": 0, "oracle": 0}
    best_share: list[float] = []
    escalations = 0
    for day in range(scenario.days):
        today = START + timedelta(days=day)
        if cohorts:
            decision = optimizer.decide(observed_metrics(LOOP_CAMPAIGN, cohorts), allocation,
                                        np.random.default_rng([seed, day]))
            escalations += len(decision.escalations)
            allocation = decision.proposed
        best_share.append(allocation.shares[best])
        offer = equal.model_copy(update={"allocation": allocation})
        counts = {arm: [0, 0] for arm in arms}
        for n in range(scenario.leads_per_day):
            lead = UUID(int=(seed << 64) | (day << 32) | n)
            u = rng.random()
            drawn = draw_arm(offer, lead, {Channel.EMAIL})
            assert drawn is not None  # every arm is on email, and some arm always holds a share
            converted = u < rate[drawn.arm]
            counts[drawn.arm][0] += 1
            counts[drawn.arm][1] += converted
            conversions["optimizer"] += converted
            even = draw_arm(equal, lead, {Channel.EMAIL})
            conversions["equal_split"] += even is not None and u < rate[even.arm]
            conversions["oracle"] += u < rate[best]
        cohorts += [ObservedDay(arm=arm, cohort_date=today, leads=n, leads_engaged=won, leads_converted=won,
                                touchpoints_sent=n, conversions=won, revenue=Decimal(0))
                    for arm, (n, won) in counts.items() if n]
    oracle, equal_split = conversions["oracle"], conversions["equal_split"]
    return LoopResult(seed=seed, conversions=conversions,
                      oracle_ratio=conversions["optimizer"] / oracle if oracle else 1.0,
                      equal_split_uplift=conversions["optimizer"] / equal_split - 1 if equal_split else 0.0,
                      best_arm_share=best_share, escalations=escalations)
