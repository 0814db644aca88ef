"""The memory tiers as Ray actors: each one holds its tier's connections and serves its methods.

Every Serve replica and job reaches the same actor per tier by name, so a cluster holds one set of
database connections per tier instead of one per replica. ``ActorTier`` makes an actor look like the
tier itself, so the unified memory manager works the same in-process and across the cluster.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from marketing_agents.errors import StorageError
from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
from marketing_agents.memory.short_term import ShortTermMemory, TtlPolicy
from marketing_agents.settings import Settings, get_settings
from marketing_agents.stores.connections import StoreConnections
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


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class MemoryTierActor:
    def __init__(self, tier: str, settings: Settings | None = None) -> None:
        self._name = tier
        self._settings = settings or get_settings()
        self._stores = StoreConnections(self._settings)
        self._tier: Any = None

    async def invoke(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._tier is None:
            self._tier = await build_tier(self._name, self._settings, self._stores)
        if method.startswith("_") or not callable(getattr(self._tier, method, None)):
            raise AttributeError(f"memory tier '{self._name}' has no method '{method}'")
        return await getattr(self._tier, method)(*args, **kwargs)


class ActorTier:
    """A tier actor behind the tier's own interface: ``await tier.profile(lead_id)``."""

    def __init__(self, handle: ray.actor.ActorHandle) -> None:
        self._handle = handle

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        async def call(*args: Any, **kwargs: Any):
            try:
                return await self._handle.invoke.remote(method, *args, **kwargs)
            except (RayActorError, ActorUnavailableError) as exc:
                # The tier's actor died or is restarting (its node went away): to callers that is a
                # store they cannot reach for a moment, which each of them already knows how to handle.
                raise StorageError(f"memory tier actor unavailable for {method}: {type(exc).__name__}") from exc

        return call


def tier_actor(name: str, settings: Settings | None = None, namespace: str = "marketing_agents") -> ActorTier:
    """The cluster's actor for the tier ``name``, created on first use and shared by name afterwards."""
    handle = MemoryTierActor.options(name=f"memory-{name}", namespace=namespace, get_if_exists=True,
                                     lifetime="detached").remote(name, settings)
    return ActorTier(handle)


def memory_manager_on_ray(settings: Settings | None = None, deadline_s: float = 0.25) -> UnifiedMemoryManager:
    tiers = {name: tier_actor(name, settings) for name in TIER_NAMES}
    return UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                tiers["leads"], deadline_s)
