"""The memory tiers as Ray actors: each one holds its tier's connections and serves its methods.

Every Serve replica and job reaches the same actor per tier by name, so a cluster holds one set of
database connections per tier instead of one per replica. ``ActorTier`` makes an actor look like the
tier itself, so the unified memory manager works the same in-process and across the cluster: each
tier's proxy (``ShortTermActor``, ...) has the methods of the tier's port (``memory.ports``), with
the same signatures as the in-process tier, which tests/unit/test_memory_ports.py checks.

A tier operation is far cheaper than an actor call (0.05 ms for a Redis GET against about 0.5 ms for
the round trip), so ``ActorTier`` sends every call its event loop makes in the same turn as one
actor call, like a Redis pipeline: a busy replica pays one round trip for many operations, and a
lone call goes out at once, as it would on its own.
"""

from __future__ import annotations

import asyncio
import pickle
from datetime import date, datetime
from typing import Any
from uuid import UUID

import ray
from ray.exceptions import RayError, RayTaskError

from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind, SimilarEpisode
from marketing_agents.domain.graph import (
    ChannelRecommendation,
    GraphEdge,
    GraphNode,
    GraphPath,
    Neighbour,
    Neighbourhood,
    RelationType,
)
from marketing_agents.domain.rfm import RfmScore
from marketing_agents.errors import StorageError
from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
from marketing_agents.memory.short_term import ShortTermMemory, Turn
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connection_budget import budgeted
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.graph_port import MAX_NEIGHBOURS
from marketing_agents.stores.postgres import LeadErasure
from marketing_agents.stores.postgres_episodic import PostgresEpisodicStore
from marketing_agents.stores.postgres_long_term import PostgresLongTermStore
from marketing_agents.stores.redis import RedisShortTermStore

TIER_NAMES = ("short_term", "long_term", "episodic", "semantic", "leads")


async def build_tier(name: str, settings: Settings, stores: StoreConnections) -> Any:
    if name == "short_term":
        return ShortTermMemory(RedisShortTermStore(stores.redis()), TtlPolicy.from_settings(settings))
    pool = await stores.pool()
    if name == "long_term":
        return LongTermMemory(PostgresLongTermStore(pool))
    if name == "episodic":
        return EpisodicMemory(PostgresEpisodicStore(pool))
    if name == "semantic":
        return SemanticMemory(graph_store_for(settings, pool))
    if name == "leads":
        return LeadErasure(pool)
    raise ValueError(f"unknown memory tier '{name}'; known: {', '.join(TIER_NAMES)}")


Call = tuple[str, tuple, dict]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception it raised)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class MemoryTierActor:
    def __init__(self, tier: str, settings: Settings | None = None) -> None:
        self._name = tier
        self._settings = budgeted(settings or get_settings(), f"memory-{tier}")
        self._stores = StoreConnections(self._settings)
        self._tier: Any = None

    async def invoke_many(self, calls: list[Call]) -> list[Outcome]:
        """Runs a batch of calls concurrently; each caller gets its own result or its own exception."""
        if self._tier is None:
            self._tier = await build_tier(self._name, self._settings, self._stores)
        return list(await asyncio.gather(*(self._invoke(method, args, kwargs) for method, args, kwargs in calls)))

    async def _invoke(self, method: str, args: tuple, kwargs: dict) -> Outcome:
        try:
            if method.startswith("_") or not callable(getattr(self._tier, method, None)):
                raise AttributeError(f"memory tier '{self._name}' has no method '{method}'")
            return True, await getattr(self._tier, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed back to the one caller it belongs to
            return False, _portable(exc)


def _portable(exc: Exception) -> Exception:
    """The exception itself when it survives the trip back to the caller, else one that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception that cannot be rebuilt on the other side
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class ActorTier:
    """A tier actor behind the tier's own interface: ``await tier.profile(lead_id)``.

    Calls made in one turn of the caller's event loop travel together (at most ``MAX_BATCH``), and
    each caller still gets exactly its own answer. A caller that stops waiting (a recall deadline)
    simply leaves its answer unread. A method the tier's proxy does not declare still goes to the
    actor, which refuses it by name unless its tier has it.
    """

    MAX_BATCH = 256

    def __init__(self, handle: ray.actor.ActorHandle) -> None:
        self._handle = handle
        self._waiting: dict[asyncio.AbstractEventLoop, list[tuple[Call, asyncio.Future]]] = {}
        self._sending: set[asyncio.Task] = set()

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any):
            return await self._call(method, *args, **kwargs)

        return call

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        waiting = self._waiting.setdefault(loop, [])
        if not waiting:
            loop.call_soon(self._send, loop)
        waiting.append(((method, args, kwargs), answer))
        if len(waiting) >= self.MAX_BATCH:
            self._send(loop)
        return await answer

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._waiting.pop(loop, None)
        if batch:
            task = loop.create_task(self._deliver(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, batch: list[tuple[Call, asyncio.Future]]) -> None:
        try:
            outcomes = await self._handle.invoke_many.remote([call for call, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every caller in the batch hears it
            # The tier's actor died or is restarting (its process crashed, its node went away), or Ray
            # lost the call on the way: to callers that is a store they cannot reach for a moment, which
            # each of them already knows how to handle (503 with Retry-After at the edge). The actor's own
            # error (a RayTaskError: it could not open its stores) and an argument that cannot be
            # serialised reach every caller as they are.
            unreachable = isinstance(exc, RayError) and not isinstance(exc, RayTaskError)
            for (method, _, _), answer in batch:
                _settle(answer, False, StorageError(f"memory tier actor unavailable for {method}: {type(exc).__name__}")
                        if unreachable else exc)
            return
        for (_, answer), (ok, value) in zip(batch, outcomes, strict=True):
            _settle(answer, ok, value)


def _settle(answer: asyncio.Future, ok: bool, value: Any) -> None:
    if answer.done():  # the caller stopped waiting
        return
    if ok:
        answer.set_result(value)
    else:
        answer.set_exception(value)


# One proxy per tier, each the tier's port (memory.ports) method for method.


class ShortTermActor(ActorTier):
    async def cache_context(self, lead_id: UUID, context: dict[str, Any]) -> None:
        return await self._call("cache_context", lead_id, context)

    async def context(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self._call("context", lead_id)

    async def remember_session(self, session_id: str, fields: dict[str, Any], lead_id: UUID | None = None) -> None:
        return await self._call("remember_session", session_id, fields, lead_id)

    async def session(self, session_id: str) -> dict[str, Any]:
        return await self._call("session", session_id)

    async def add_turn(self, lead_id: UUID, conversation_id: str, role: str, text: str) -> int:
        return await self._call("add_turn", lead_id, conversation_id, role, text)

    async def conversation(self, conversation_id: str) -> list[Turn]:
        return await self._call("conversation", conversation_id)

    async def put_temp(self, name: str, value: Any, lead_id: UUID | None = None) -> None:
        return await self._call("put_temp", name, value, lead_id)

    async def temp(self, name: str) -> Any | None:
        return await self._call("temp", name)

    async def cached_lead_ids(self) -> list[UUID]:
        return await self._call("cached_lead_ids")

    async def seal_lead(self, lead_id: UUID) -> None:
        return await self._call("seal_lead", lead_id)

    async def forget_lead(self, lead_id: UUID) -> int:
        return await self._call("forget_lead", lead_id)

    async def export_lead(self, lead_id: UUID) -> dict[str, Any]:
        return await self._call("export_lead", lead_id)


class LongTermActor(ActorTier):
    async def refresh_rfm(self, as_of: date) -> list[RfmScore]:
        return await self._call("refresh_rfm", as_of)

    async def rfm_rows(self) -> list[dict[str, Any]]:
        return await self._call("rfm_rows")

    async def record_activity(self, lead_id: UUID, channel: str, at: datetime) -> None:
        return await self._call("record_activity", lead_id, channel, at)

    async def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None:
        return await self._call("record_score", lead_id, lead_score, at)

    async def profile(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self._call("profile", lead_id)


class EpisodicActor(ActorTier):
    async def record(self, episode: Episode) -> None:
        return await self._call("record", episode)

    async def recall_similar(
        self, situation: dict[str, Any], limit: int = 5, outcome: EpisodeOutcome | None = None
    ) -> list[SimilarEpisode]:
        return await self._call("recall_similar", situation, limit, outcome)

    async def episodes_of(self, lead_id: UUID) -> list[Episode]:
        return await self._call("episodes_of", lead_id)

    async def learn(self, insight: Insight) -> None:
        return await self._call("learn", insight)

    async def insights(self, kind: InsightKind | None = None, segment: str | None = None) -> list[Insight]:
        return await self._call("insights", kind, segment)


class SemanticActor(ActorTier):
    async def load_starter_graph(self) -> tuple[int, int]:
        return await self._call("load_starter_graph")

    async def learn(self, nodes: list[GraphNode], edges: list[GraphEdge]) -> None:
        return await self._call("learn", nodes, edges)

    async def industry_synonyms(self) -> dict[str, str]:
        return await self._call("industry_synonyms")

    async def neighbours(self, node_id: str, depth: int = 1,
                         types: list[RelationType] | None = None) -> list[Neighbour]:
        return await self._call("neighbours", node_id, depth, types)

    async def neighbourhood(self, node_id: str, depth: int = 1, types: list[RelationType] | None = None,
                            limit: int = MAX_NEIGHBOURS) -> Neighbourhood:
        return await self._call("neighbourhood", node_id, depth, types, limit)

    async def explain(self, source: str, target: str, max_depth: int = 6) -> GraphPath | None:
        return await self._call("explain", source, target, max_depth)

    async def best_channels(self, industry: str, persona: str, limit: int = 3) -> list[ChannelRecommendation]:
        return await self._call("best_channels", industry, persona, limit)


class LeadRecordsActor(ActorTier):
    async def erase(self, lead_id: UUID) -> dict[str, int]:
        return await self._call("erase", lead_id)

    async def erasure_finished(self, lead_id: UUID, removed: dict[str, int]) -> None:
        return await self._call("erasure_finished", lead_id, removed)

    async def export(self, lead_id: UUID) -> dict[str, Any] | None:
        return await self._call("export", lead_id)


TIER_PROXIES: dict[str, type[ActorTier]] = {"short_term": ShortTermActor, "long_term": LongTermActor,
                                            "episodic": EpisodicActor, "semantic": SemanticActor,
                                            "leads": LeadRecordsActor}


def _tier_handle(name: str, settings: Settings | None, namespace: str) -> ray.actor.ActorHandle:
    """The cluster's actor for the tier ``name``, created on first use and shared by name afterwards."""
    # mypy ignores class decorators, so it does not see @ray.remote turn the class into an ActorClass
    return MemoryTierActor.options(name=f"memory-{name}", namespace=namespace, get_if_exists=True,  # type: ignore[attr-defined]
                                   lifetime="detached").remote(name, settings)


def tier_actor(name: str, settings: Settings | None = None, namespace: str = "marketing_agents") -> ActorTier:
    """The proxy of the cluster's actor for the tier ``name``."""
    return TIER_PROXIES.get(name, ActorTier)(_tier_handle(name, settings, namespace))


def memory_manager_on_ray(settings: Settings | None = None, deadline_s: float = 0.25) -> UnifiedMemoryManager:
    def handle(name: str) -> ray.actor.ActorHandle:
        return _tier_handle(name, settings, "marketing_agents")

    return UnifiedMemoryManager(ShortTermActor(handle("short_term")), LongTermActor(handle("long_term")),
                                EpisodicActor(handle("episodic")), SemanticActor(handle("semantic")),
                                LeadRecordsActor(handle("leads")), deadline_s)
