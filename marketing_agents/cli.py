"""``marketing-agents``: run, stop and inspect the system from a shell.

Every verb reads the same settings as the services (``MAS_*`` environment variables), so
``MAS_DATA_DIR=/tmp/x marketing-agents stop`` stops the run that uses /tmp/x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from pathlib import Path
from uuid import UUID

import marketing_agents
from marketing_agents.cli_args import bounded_int
from marketing_agents.errors import ConfigError, MarketingAgentsError
from marketing_agents.settings import Settings

EPILOG = """\
configuration (environment):
  MAS_DATA_DIR           where embedded stores keep data and the run keeps its state (default ./.mas)
  MAS_POSTGRES_DSN       use this PostgreSQL instead of the embedded one
  MAS_REDIS_URL          use this Redis instead of the embedded Valkey
  MAS_HTTP_PORT          REST API port (default 8080); MAS_DASHBOARD_PORT: Ray dashboard (default 8265)
  MAS_LOAD_DEMO_DATA     false to start without demo leads and campaigns

examples:
  marketing-agents run                 start everything in the foreground; Ctrl-C stops it all
  marketing-agents stop                stop a run from another shell
  marketing-agents status              print the running system's status as JSON
  marketing-agents migrate             apply pending schema migrations
  marketing-agents import interactions sales.csv --map lead_id=customer_id,occurred_at=date,value=amount --type purchase
                                       bulk-import purchases, creating placeholder leads for new ids
  marketing-agents consolidate --as-of 2026-06-30
                                       episodes, RFM, patterns and graph weights from interactions
  marketing-agents train --data leads.csv --label converted --out model/ --register --promote
                                       a calibrated conversion model with metrics, gains chart, model card
  marketing-agents train --from-conversions --window-days 90 --out model/ --register
                                       the same, from the running system's leads and their conversions
  marketing-agents score --model active --data new_leads.csv --out scores.csv
                                       probabilities, lead_score and top factors for and against per row
  marketing-agents simulate-campaign --arms 8 --days 30 --seeds 10
                                       the campaign optimizer against an equal split and an oracle
  marketing-agents rfm --as-of 2026-06-30 --out rfm.csv
                                       RFM scores and segments of every lead with purchases
"""


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from marketing_agents.launcher import Launcher

    return Launcher(settings).run()


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    from marketing_agents.launcher import stop_running

    return stop_running(settings)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    from marketing_agents.launcher import RunInfo, admin_key_for

    info = RunInfo.read(settings.data_path)
    url = info.api_url if info else f"http://127.0.0.1:{settings.http_port}"
    key = admin_key_for(settings)
    try:
        response = httpx.get(f"{url}/api/v1/system/status", timeout=10,
                             headers={"Authorization": f"Bearer {key}"} if key else None)
    except httpx.HTTPError as exc:
        print(f"error: no answer from {url}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(response.json(), indent=2))
    return 0 if response.json().get("status") == "ok" else 1


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from marketing_agents.stores.embedded import postgres_dsn_for
    from marketing_agents.stores.migrations import describe, migrate

    print(describe(asyncio.run(migrate(postgres_dsn_for(settings)))))
    return 0


def _rfm(args: argparse.Namespace, settings: Settings) -> int:
    import csv

    import asyncpg

    from marketing_agents.memory.long_term import RFM_COLUMNS, LongTermMemory
    from marketing_agents.stores.embedded import postgres_dsn_for
    from marketing_agents.stores.postgres import init_connection
    from marketing_agents.stores.postgres_long_term import PostgresLongTermStore

    dsn = postgres_dsn_for(settings)

    async def refresh() -> list[dict]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init_connection)
        try:
            memory = LongTermMemory(PostgresLongTermStore(pool))
            await memory.refresh_rfm(args.as_of)
            return await memory.rfm_rows()
        finally:
            await pool.close()

    rows = asyncio.run(refresh())
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=RFM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"RFM as of {args.as_of}: {len(rows)} leads with purchases written to {args.out}")
    return 0


def _consolidate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg
    import redis.asyncio as aioredis

    from marketing_agents.memory.consolidator import build_consolidator
    from marketing_agents.stores.embedded import postgres_dsn_for, redis_url_for
    from marketing_agents.stores.postgres import init_connection

    dsn, redis_url = postgres_dsn_for(settings), redis_url_for(settings)
    as_of = args.as_of or date.today()

    async def consolidate():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init_connection)
        client = aioredis.from_url(redis_url)
        try:
            consolidator = build_consolidator(settings, pool, client, progress=lambda line: print(line, flush=True))
            return await consolidator.run(as_of)
        finally:
            await client.aclose()
            await pool.close()

    report = asyncio.run(consolidate())
    print(json.dumps(report.model_dump(mode="json"), indent=2))
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from marketing_agents.domain.interaction import InteractionWindow
    from marketing_agents.memory.import_progress import TextProgressBar
    from marketing_agents.memory.interaction_file import parse_mapping
    from marketing_agents.memory.interaction_import import import_interactions
    from marketing_agents.stores.embedded import postgres_dsn_for

    mapping = parse_mapping(args.map)
    dsn = postgres_dsn_for(settings)
    window = InteractionWindow(settings.interactions_earliest, settings.max_new_partitions_per_request)

    async def run_import():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            with TextProgressBar() as bar:
                return await import_interactions(pool, Path(args.file), mapping, args.type, progress=bar,
                                                 window=window)
        finally:
            await pool.close()

    result = asyncio.run(run_import())
    print(result.summary())
    for line, reason in result.rejected:
        print(f"  line {line}: {reason}", file=sys.stderr)
    return 0


def _with_memory(settings: Settings, action):
    """Runs ``action(manager)`` with a unified memory manager over in-process tiers."""
    from pydantic import SecretStr

    from marketing_agents.memory.manager import UnifiedMemoryManager
    from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
    from marketing_agents.stores.connections import StoreConnections
    from marketing_agents.stores.embedded import postgres_dsn_for, redis_url_for

    resolved = settings.model_copy(update={"postgres_dsn": SecretStr(postgres_dsn_for(settings)),
                                           "redis_url": SecretStr(redis_url_for(settings)), "postgres_pool_size": 2})

    async def run():
        stores = StoreConnections(resolved)
        try:
            tiers = {name: await build_tier(name, resolved, stores) for name in TIER_NAMES}
            return await action(UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"],
                                                      tiers["semantic"], tiers["leads"]))
        finally:
            await stores.close()

    return asyncio.run(run())


def _forget(args: argparse.Namespace, settings: Settings) -> int:
    removed = _with_memory(settings, lambda memory: memory.forget(args.lead_id))
    if not removed.get("leads"):
        print(f"error: no lead with id {args.lead_id}", file=sys.stderr)
        return 1
    print(json.dumps({"erased": str(args.lead_id), "removed": removed}, indent=2))
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    exported = _with_memory(settings, lambda memory: memory.export(args.lead_id))
    if exported is None:
        print(f"error: no lead with id {args.lead_id}", file=sys.stderr)
        return 1
    print(json.dumps(exported, indent=2, default=str))
    return 0


def _lead_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a lead id (a UUID)") from None


def _simulate_campaign(args: argparse.Namespace, settings: Settings) -> int:
    from marketing_agents.actors.campaign_simulator import simulation_report

    print(simulation_report(arms=args.arms, days=args.days, seed=args.seed, seeds=args.seeds))
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketing-agents",
        description="A distributed marketing multi-agent system on Ray: leads arrive over HTTP and are "
                    "triaged, handed off and engaged by agents that remember through four memory tiers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {marketing_agents.__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("run", help="start stores, a local Ray cluster and the Serve app; stay in the foreground",
                     description="Starts the embedded stores (unless MAS_POSTGRES_DSN / MAS_REDIS_URL are set), "
                                 "migrates the schema, starts a Ray head node with its dashboard, deploys "
                                 "ray_configs/serve_config.yaml, loads demo data and waits. Ctrl-C stops all of it."
                     ).set_defaults(handler=_run)
    verbs.add_parser("stop", help="stop the run that uses MAS_DATA_DIR, and everything it started",
                     description="Signals the run recorded in MAS_DATA_DIR/run.json and waits until every "
                                 "process it started is gone.").set_defaults(handler=_stop)
    verbs.add_parser("status", help="print the running system's status (nodes, deployments, stores)"
                     ).set_defaults(handler=_status)
    verbs.add_parser("migrate", help="apply pending schema migrations (MAS_POSTGRES_DSN, or the running embedded one)"
                     ).set_defaults(handler=_migrate)
    consolidate = verbs.add_parser(
        "consolidate", help="distil interactions into episodes, RFM, patterns and graph weights (idempotent)",
        description="Runs the memory consolidator once: episodes from new interactions (resuming from its "
                    "watermark), RFM as of --as-of, success patterns and learned CONVERTS_TO / PRECEDES weights, "
                    "short-term contexts into profiles, expiry of old idempotency keys. Safe to rerun or to "
                    "kill: a second run changes nothing, a killed run resumes.")
    consolidate.add_argument("--as-of", type=_iso_date, metavar="DATE", help="RFM reference date (default: today)")
    consolidate.set_defaults(handler=_consolidate)
    importer = verbs.add_parser(
        "import", help="bulk-import interactions from a CSV/TSV/whitespace-separated file",
        description="Imports interactions from a delimited text file with a header row. Columns are mapped to "
                    "fields with --map (lead_id and occurred_at required; value, channel, campaign_id, "
                    "conversation_id, type optional). Dates: ISO 8601, YYYYMMDD or Unix seconds. A lead id "
                    "not seen before creates a placeholder lead. Bad rows are reported with their line number "
                    "and the rest is imported; re-importing a file adds nothing twice.")
    importer.add_argument("what", choices=["interactions"], help="what to import")
    importer.add_argument("file", metavar="FILE")
    importer.add_argument("--map", required=True, metavar="FIELD=COLUMN,...",
                          help="e.g. lead_id=customer_id,occurred_at=date,value=dollar_value")
    importer.add_argument("--type", metavar="TYPE", help="interaction type for every row, e.g. purchase "
                                                          "(else map a type column)")
    importer.set_defaults(handler=_import)
    forget = verbs.add_parser("forget", help="erase a lead from every memory tier (the right to be forgotten)",
                              description="Deletes the lead and every row, key and node about it: PostgreSQL "
                                          "(lead, triage, handoffs, plans, touchpoints, audit, profile, episodes, "
                                          "interactions) in one transaction, then its Redis keys.")
    forget.add_argument("lead_id", type=_lead_id, metavar="LEAD_ID")
    forget.set_defaults(handler=_forget)
    export = verbs.add_parser("export", help="print everything every memory tier holds about a lead, as JSON")
    export.add_argument("lead_id", type=_lead_id, metavar="LEAD_ID")
    export.set_defaults(handler=_export)
    from marketing_agents.scoring_cli import add_scoring_verbs

    add_scoring_verbs(verbs)
    sim = verbs.add_parser(
        "simulate-campaign", help="compare the campaign optimizer with an equal split and an oracle on a simulated "
                                  "campaign with known conversion rates",
        description="Simulates a campaign whose arms (variant x channel) have known true conversion rates "
                    "(0.5%%..5%% per impression, the best 10%%..50%% ahead of the runner-up, daily noise) and "
                    "reports the optimizer's conversions against an equal split and an oracle that knows the best arm.")
    sim.add_argument("--arms", type=bounded_int(2, 52, "arms"), default=8, metavar="N", help="number of arms (default 8)")
    sim.add_argument("--days", type=bounded_int(1, 3650, "days"), default=30, metavar="D", help="days (default 30)")
    sim.add_argument("--seed", type=bounded_int(0, 2**31), default=0, metavar="S", help="first seed (default 0)")
    sim.add_argument("--seeds", type=bounded_int(1, 1000, "seeds"), default=None, metavar="K",
                     help="run seeds S..S+K-1 and summarise the spread")
    sim.set_defaults(handler=_simulate_campaign)
    rfm = verbs.add_parser(
        "rfm", help="recompute every lead's RFM as of a date and write it to a CSV file",
        description="Recency (whole days since the last purchase), frequency (purchases) and monetary value "
                    "(their total) of every lead with a purchase on or before --as-of, scored 1..5 in "
                    "quintiles (5 best) and named by segment; stored in long-term memory and written to --out "
                    "with the columns " + ", ".join(("external_id", "recency_days", "frequency", "monetary",
                                                      "r_score", "f_score", "m_score", "rfm_segment")) + ".")
    rfm.add_argument("--as-of", required=True, type=_iso_date, metavar="DATE", help="reference date, YYYY-MM-DD")
    rfm.add_argument("--out", required=True, metavar="FILE.csv", help="where to write the CSV")
    rfm.set_defaults(handler=_rfm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return args.handler(args, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MarketingAgentsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
