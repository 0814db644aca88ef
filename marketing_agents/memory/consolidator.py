"""The memory consolidator: distils raw events into lasting memory, safe to run again at any time.

Steps, each idempotent and committed on its own:

1. episodes: the journeys of leads with new interactions (since the watermark) are replayed into
   episodes, a batch of leads at a time; the cursor moves in the transaction that stores each batch,
   so a run killed midway resumes after the last batch it committed;
2. rfm: every lead's RFM as of the reference date (long-term memory);
3. patterns: success patterns, lessons and best practices per segment (episodic memory) and learned
   CONVERTS_TO / PRECEDES weights (semantic memory), recomputed from all episodes, so a rerun writes the
   same values, and insights no longer supported are pruned;
4. short-term to long-term: the working context of leads still cached becomes part of their profile;
5. campaigns: what the system observed of each campaign's arms is recounted from its own rows
   (``GET /api/v1/campaigns/{id}/performance``'s ``observed`` block is current once a run returns);
6. optimisation: expired idempotency keys go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date

from pydantic import BaseModel

from marketing_agents.domain import Channel
from marketing_agents.domain.graph import GraphNode, NodeKind
from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.memory.journeys import extract_episodes, mine_patterns
from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.memory.ports import EpisodicPort, ShortTermPort
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.stores.postgres_campaign_observed import CampaignObservations
from marketing_agents.stores.postgres_consolidation import PostgresConsolidationStore
from marketing_agents.stores.postgres_episodic import PostgresEpisodicStore
from marketing_agents.stores.postgres_long_term import PostgresLongTermStore
from marketing_agents.stores.redis import RedisShortTermStore

log = logging.getLogger(__name__)
EPISODE_STEP = "episodes"
CHANNELS = {c.value for c in Channel}


class ConsolidationReport(BaseModel):
    as_of: date
    leads_replayed: int = 0
    episodes_written: int = 0
    rfm_scored: int = 0
    patterns: int = 0
    graph_weights: int = 0
    patterns_pruned: int = 0
    contexts_kept: int = 0
    campaign_rows_observed: int = 0
    idempotency_keys_expired: int = 0
    elapsed_s: float = 0.0


class MemoryConsolidator:
    def __init__(self, store: PostgresConsolidationStore, short_term: ShortTermPort, long_term: LongTermMemory,
                 episodic: EpisodicPort, semantic: SemanticMemory,
                 batch: int = 2_000, progress: Callable[[str], None] | None = None,
                 campaigns: CampaignObservations | None = None) -> None:
        self.store = store
        self.short_term = short_term
        self.long_term = long_term
        self.episodic = episodic
        self.semantic = semantic
        self.batch = batch
        self.campaigns = campaigns
        self.progress = progress or (lambda message: None)

    async def run(self, as_of: date, stop_after: str | None = None) -> ConsolidationReport:
        """Runs every step; ``stop_after`` names a step to stop after (tests of resumption use it)."""
        started = time.perf_counter()
        report = ConsolidationReport(as_of=as_of)
        await self._episodes(report)
        if stop_after == "episodes":
            return report
        report.rfm_scored = len(await self.long_term.refresh_rfm(as_of))
        self.progress(f"rfm: {report.rfm_scored} leads scored as of {as_of}")
        await self._patterns(report)
        report.contexts_kept = await self._keep_working_contexts()
        if self.campaigns is not None:
            report.campaign_rows_observed = await self.campaigns.refresh()
            self.progress(f"campaigns: {report.campaign_rows_observed} (arm, cohort) rows observed")
        report.idempotency_keys_expired = await self.store.expire_idempotency_keys()
        report.elapsed_s = round(time.perf_counter() - started, 3)
        return report

    async def _episodes(self, report: ConsolidationReport) -> None:
        progress = await self.store.progress(EPISODE_STEP)
        while lead_ids := await self.store.next_leads(progress, self.batch):
            episodes = [e for lead, interactions in await self.store.journeys(lead_ids)
                        for e in extract_episodes(lead, interactions)]
            await self.store.save_episodes(episodes, EPISODE_STEP, lead_ids[-1])
            progress = replace(progress, cursor=lead_ids[-1])
            report.leads_replayed += len(lead_ids)
            report.episodes_written += len(episodes)
            self.progress(f"episodes: {report.episodes_written} from {report.leads_replayed} leads "
                          f"(interactions up to id {progress.target})")
        await self.store.finish(EPISODE_STEP, progress)

    async def _patterns(self, report: ConsolidationReport) -> None:
        insights, edges = mine_patterns(await self.store.all_episodes())
        for insight in insights:
            await self.episodic.learn(insight)
        report.patterns = len(insights)
        report.patterns_pruned = await self.store.prune_insights(
            {(i.kind.value, i.segment, i.title) for i in insights})

        # Only the channels the agents use; an industry learned from data joins the graph as a new node.
        edges = [e for e in edges
                 if all(end.split(":", 1)[1] in CHANNELS for end in (e.source, e.target) if end.startswith("channel:"))]
        ends = sorted({end for e in edges for end in (e.source, e.target)})
        new_nodes = [GraphNode(id=end, kind=NodeKind(end.split(":", 1)[0]),
                               name=end.split(":", 1)[1].replace("_", " ").title(), properties={"learned": True})
                     for end in ends if await self.semantic.store.node(end) is None]
        await self.semantic.learn(new_nodes, edges)
        report.graph_weights = len(edges)
        self.progress(f"patterns: {report.patterns} insights, {report.graph_weights} graph weights")

    async def _keep_working_contexts(self) -> int:
        """Short-term to long-term: what triage concluded stays in the profile after the cache expires."""
        kept = 0
        for lead_id in await self.short_term.cached_lead_ids():
            context = await self.short_term.context(lead_id)
            triage = (context or {}).get("triage") or {}
            if triage:
                facts = {"last_triage": {k: triage.get(k) for k in ("lead_score", "triage_category", "triaged_at")}}
                kept += await self.long_term.store.merge_profile(lead_id, facts)
        self.progress(f"short-term to long-term: {kept} profiles updated")
        return kept


def build_consolidator(settings, pool, redis_client, progress: Callable[[str], None] | None = None) -> MemoryConsolidator:
    """The consolidator over the configured stores, as the CLI, the cluster's schedule and jobs build it."""
    return MemoryConsolidator(
        PostgresConsolidationStore(pool),
        ShortTermMemory(RedisShortTermStore(redis_client), TtlPolicy.from_settings(settings)),
        LongTermMemory(PostgresLongTermStore(pool)),
        EpisodicMemory(PostgresEpisodicStore(pool)),
        SemanticMemory(graph_store_for(settings, pool)),
        progress=progress,
        campaigns=CampaignObservations(pool),
    )
