"""How many PostgreSQL connections each kind of process may hold, so that the cluster fits the server.

Every Serve replica and memory tier actor opens its own asyncpg pool. Sized independently (50 each),
a burst of load let the first replicas and the tier actors take every connection PostgreSQL allows;
a replica the autoscaler started next could not connect at all, and answered 503 to every request
it was given until the idle connections aged out. The sizes below, times each deployment's
``max_replicas`` in ``ray_configs/serve_config.yaml``, plus the tier actors and ``HEADROOM`` for the
CLI, batch jobs and an operator's psql, stay within ``EMBEDDED_MAX_CONNECTIONS``; a unit test holds
them to it. ``MAS_POSTGRES_POOL_SIZE`` caps every one of them (and sizes single-process tools).
"""

from __future__ import annotations

from marketing_agents.settings import Settings

# The embedded server is configured for this many; an external server needs at least the sum the
# unit test computes for the deployments' max_replicas (see the README, "PostgreSQL connections").
EMBEDDED_MAX_CONNECTIONS = 200
HEADROOM = 30

POOL_SIZES = {
    # Serve deployments, per replica
    "ApiGateway": 2,
    "LeadOrchestrator": 10,
    "TriageAgent": 2,
    "EngagementFeedback": 4,
    "CampaignOptimizer": 4,
    "McpServer": 4,
    "MemoryConsolidator": 4,
    "TouchpointDispatcher": 4,
    "HandoffOrchestrator": 0,  # no database: it scores and sends packages
    "EngagementAgent": 0,  # no database: it plans
    # memory tier actors, one per tier in the cluster; each serves every replica's calls
    "memory-long_term": 10,
    "memory-episodic": 10,
    "memory-semantic": 4,
    "memory-leads": 2,
    "memory-short_term": 0,  # Redis only
    # a batch job's driver, which only reads pages and writes scores
    "batch-job": 2,
}


def connections_needed(serve_config: dict) -> int:
    """The most connections the cluster can hold: every deployment at its ``max_replicas`` (or fixed
    ``num_replicas``) with its pool full, the tier actors, and ``HEADROOM``."""
    total = HEADROOM + sum(size for owner, size in POOL_SIZES.items() if owner.startswith("memory-"))
    for application in serve_config["applications"]:
        for deployment in application["deployments"]:
            autoscaling = deployment.get("autoscaling_config") or {}
            replicas = autoscaling.get("max_replicas", deployment.get("num_replicas", 1))
            total += replicas * pool_size(deployment["name"])
    return total


def pool_size(owner: str) -> int:
    try:
        return POOL_SIZES[owner]
    except KeyError:
        raise ValueError(f"no PostgreSQL pool size for '{owner}'; known: {', '.join(POOL_SIZES)}") from None


def budgeted(settings: Settings, owner: str) -> Settings:
    """``settings`` with the pool size of ``owner``, never above ``MAS_POSTGRES_POOL_SIZE``."""
    return settings.model_copy(update={"postgres_pool_size": max(1, min(pool_size(owner),
                                                                        settings.postgres_pool_size))})
