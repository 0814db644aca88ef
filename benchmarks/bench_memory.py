"""Memory tiers through their Ray actors against the same operations straight to the same servers.

Short-term: a lead's working context written and read (JSON with a TTL, and the write indexed under
the lead for erasure, in one MULTI) through the short-term tier actor, against the same tier code
running in this process, with the same redis-py client, straight to the same Valkey (the anchor).
Long-term: profile upserts (``record_activity``) through the long-term tier actor, against the same
statement on asyncpg straight to the same PostgreSQL over as many connections as the actor's pool has
(the anchor). The anchor runs the same commands, so the ratio is what the actor costs. Both at 32
concurrent callers, on embedded servers started here, in 5 rounds side by side; the figure is the
median round. Target: each tier at least 50 % of its anchor's operations per second. Writes
results/bench_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import free_port, target, write_result

CONCURRENCY = 32
ROUNDS = 5


async def rate(op, n: int, concurrency: int = CONCURRENCY) -> float:
    """Operations per second running ``op(i)`` for i < n with ``concurrency`` callers."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def run(ops: int, data_dir: Path, dsn: str, redis_url: str) -> dict:
    import asyncpg
    import ray

    from marketing_agents.memory.redis_layout import TtlPolicy
    from marketing_agents.memory.short_term import ShortTermMemory
    from marketing_agents.memory.tier_actors import LongTermActor, MemoryTierActor, ShortTermActor
    from marketing_agents.settings import Settings
    from marketing_agents.stores.connection_budget import pool_size
    from marketing_agents.stores.migrations import migrate
    from marketing_agents.stores.postgres import init_connection
    from marketing_agents.stores.postgres_long_term import PostgresLongTermStore
    from marketing_agents.stores.redis import RedisShortTermStore, create_client

    await migrate(dsn)
    settings = Settings(data_dir=data_dir, postgres_dsn=dsn, redis_url=redis_url)
    # The anchor's pool is the tier actor's own size (its connection budget), so that the ratio is the
    # actor's cost and not a difference in connections.
    connections = pool_size("memory-long_term")
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections, init=init_connection)
    lead_ids = [uuid.uuid4() for _ in range(1000)]
    await pool.executemany(
        """INSERT INTO leads (id, email, first_name, last_name, company, job_title, industry, company_size,
                              country, source, consent, status) VALUES ($1, $2, 'A', 'B', 'C', 'D', 'E', 10,
                              'DE', 'web', '{}', 'engaged')""", [(i, f"{i}@x.io") for i in lead_ids])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    short_term = ShortTermActor(MemoryTierActor.remote("short_term", settings))
    long_term = LongTermActor(MemoryTierActor.remote("long_term", settings))
    client = create_client(settings)  # the client the tier actor builds for itself, here in this process
    direct_short_term = ShortTermMemory(RedisShortTermStore(client), TtlPolicy.from_settings(settings))
    context = {"lead": {"email": "a@b.io", "first_name": "Ana", "company": "Northwind"},
               "triage": {"lead_score": 81.5, "factors": [{"name": "seniority", "points": 25}] * 6}}
    await short_term.cache_context(lead_ids[0], context)  # warm up: the actor connects
    await long_term.record_activity(lead_ids[0], "email", datetime.now(UTC))
    figures = {}

    async def direct_write(i):
        await direct_short_term.cache_context(lead_ids[i % 1000], context)

    async def direct_read(i):
        await direct_short_term.context(lead_ids[i % 1000])

    async def tier_write(i):
        await short_term.cache_context(lead_ids[i % 1000], context)

    async def tier_read(i):
        await short_term.context(lead_ids[i % 1000])

    store = PostgresLongTermStore(pool)

    async def direct_upsert(i):
        await store.record_activity(lead_ids[i % 1000], "email", datetime.now(UTC))

    async def tier_upsert(i):
        await long_term.record_activity(lead_ids[i % 1000], "email", datetime.now(UTC))

    for name, anchor, tier in (("short_term_write", direct_write, tier_write),
                               ("short_term_read", direct_read, tier_read),
                               ("long_term_upsert", direct_upsert, tier_upsert)):
        await rate(anchor, ops // 10)
        await rate(tier, ops // 10)
        rounds = []
        for _ in range(ROUNDS):  # side by side, several times: a noisy moment hits one round, not the figure
            anchor_ops, tier_ops = await rate(anchor, ops), await rate(tier, ops)
            rounds.append({"anchor_ops_per_s": anchor_ops, "tier_ops_per_s": tier_ops, "ratio": tier_ops / anchor_ops})
        middle = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        figures[name] = {**middle, "ratios": [round(r["ratio"], 3) for r in rounds]}
        print(f"{name:<18} tier {middle['tier_ops_per_s']:>8,.0f}/s   direct {middle['anchor_ops_per_s']:>8,.0f}/s   "
              f"ratio {middle['ratio']:.2f} (median of {', '.join(f'{r:.2f}' for r in figures[name]['ratios'])})")
    await client.aclose()
    await pool.close()
    ray.shutdown()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=5000, help="operations per measurement (default 5000)")
    args = parser.parse_args()
    from marketing_agents.stores.embedded import EmbeddedPostgres, EmbeddedValkey

    with tempfile.TemporaryDirectory(prefix="mas-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", "bench")
        valkey = EmbeddedValkey(Path(tmp) / "valkey", free_port())
        try:
            figures = asyncio.run(run(args.ops, Path(tmp), postgres.start(), valkey.start()))
        finally:
            valkey.stop()
            postgres.stop()
    targets = {name: target(f"{name}: tier / direct ops per second", f["ratio"], 0.5) for name, f in figures.items()}
    write_result("bench_memory", {"ops": args.ops, "concurrency": CONCURRENCY, **figures}, targets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
