"""The campaign optimizer against an equal split (the anchor) and an oracle that knows the best arm.

Open loop: 8 arms, 30 days, 20 seeds, every strategy on the same simulated market and daily noise
(marketing_agents/actors/campaign_simulator.py): the optimizer splits impressions.
Closed loop (--loop closed): the production loop (marketing_agents/actors/campaign_loop.py): a
fortnight of leads, each given an arm by draw_arm under the allocation in effect, converting by its
variant's true rate; the optimizer learns from the observed cohorts as production counts them.
Targets: at least 90 % of the oracle's conversions in both, and at least 15 % more than the equal
split in the open loop. Writes results/bench_optimizer.json and .png (and _closed_loop.png).
"""

from __future__ import annotations

import argparse
import time

from common import RESULTS, target, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", type=int, default=8)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--loop", choices=("open", "closed", "both"), default="both",
                        help="open: the optimizer splits impressions; closed: leads get arms and report back")
    parser.add_argument("--leads-per-day", type=int, default=200, help="closed loop: the campaign's leads a day")
    parser.add_argument("--loop-days", type=int, default=14, help="closed loop: days (a fortnight)")
    args = parser.parse_args()
    figures: dict = {}
    targets: dict = {}
    if args.loop in ("open", "both"):
        open_loop(args, figures, targets)
    if args.loop in ("closed", "both"):
        closed_loop(args, figures, targets)
    write_result("bench_optimizer", figures, targets)
    return 0


def summarise(results) -> tuple[dict, dict]:
    """Mean, min and max of the optimizer's share of the oracle and of its uplift over the equal split, printed."""
    figures = []
    for values in ([r.oracle_ratio for r in results], [r.equal_split_uplift for r in results]):
        figures.append({"mean": sum(values) / len(values), "min": min(values), "max": max(values)})
    oracle, uplift = figures
    print(f"  optimizer / oracle:       mean {oracle['mean']:.1%}  min {oracle['min']:.1%}  max {oracle['max']:.1%}")
    print(f"  optimizer / equal split:  mean {uplift['mean']:+.1%}  min {uplift['min']:+.1%}  max {uplift['max']:+.1%}")
    return oracle, uplift


def open_loop(args, figures: dict, targets: dict) -> None:
    from marketing_agents.actors.campaign_simulator import simulate

    started = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        results.append(simulate(args.arms, args.days, seed))
        print(f"\rseed {seed + 1}/{args.seeds}", end="", flush=True)
    print()
    seconds = time.perf_counter() - started
    print(f"{args.arms} arms x {args.days} days x {args.seeds} seeds in {seconds:.1f} s")
    oracle, uplift = summarise(results)
    figures.update({
        "arms": args.arms, "days": args.days, "seeds": args.seeds, "seconds": round(seconds, 2),
        "oracle_ratio": oracle, "equal_split_uplift": uplift,
        "per_seed": [{"seed": r.seed, "conversions": r.conversions, "oracle_ratio": r.oracle_ratio,
                      "equal_split_uplift": r.equal_split_uplift, "best_arm_lift": r.market.lift} for r in results],
    })
    targets.update({
        "oracle": target("mean share of the oracle's conversions", oracle["mean"], 0.90),
        "equal_split": target("mean uplift over the equal split (anchor)", uplift["mean"], 0.15),
    })
    plot(results, "bench_optimizer.png", "conversions in 30 days", "", "share of budget", "Optimizer's share on the best arm")


def closed_loop(args, figures: dict, targets: dict) -> None:
    from marketing_agents.actors.campaign_loop import LoopScenario, simulate_loop

    scenario = LoopScenario(days=args.loop_days, leads_per_day=args.leads_per_day)
    started = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        results.append(simulate_loop(scenario, seed))
        print(f"\rclosed loop: seed {seed + 1}/{args.seeds}", end="", flush=True)
    print()
    seconds = time.perf_counter() - started
    print(f"closed loop: {scenario.variants} variants ({scenario.base_rate:.0%} and {scenario.lift:g}x that), "
          f"{scenario.leads_per_day} leads a day x {scenario.days} days x {args.seeds} seeds in {seconds:.1f} s")
    oracle, uplift = summarise(results)
    figures["closed_loop"] = {
        "scenario": scenario.model_dump(), "seeds": args.seeds, "seconds": round(seconds, 2),
        "oracle_ratio": oracle, "equal_split_uplift": uplift,
        "escalations": sum(r.escalations for r in results),
        "per_seed": [r.model_dump() for r in results],
    }
    targets["closed_loop_oracle"] = target("closed loop: mean share of the oracle's conversions", oracle["mean"], 0.90)
    plot(results, "bench_optimizer_closed_loop.png", "converted leads in the fortnight", "Closed loop: ",
         "share of new leads", "Closed loop: the best variant's share")


def plot(results, name: str, conversions: str, prefix: str, share: str, share_title: str) -> None:
    """Conversions per strategy and seed beside the best arm's share day by day, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    seeds = [r.seed for r in results]
    for strategy, colour in (("equal_split", "grey"), ("optimizer", "tab:blue"), ("oracle", "tab:green")):
        left.plot(seeds, [r.conversions[strategy] for r in results], "o-", color=colour, label=strategy)
    left.set(xlabel="seed", ylabel=conversions, title=f"{prefix}Conversions per strategy")
    left.legend()
    for r in results:
        right.plot(range(1, len(r.best_arm_share) + 1), r.best_arm_share, color="tab:blue", alpha=0.35)
    right.set(xlabel="day", ylabel=share, title=share_title, ylim=(0, 1))
    fig.tight_layout()
    path = RESULTS / name
    fig.savefig(path, dpi=110)
    print(f"wrote benchmarks/results/{path.name}")


if __name__ == "__main__":
    raise SystemExit(main())
