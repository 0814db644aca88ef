"""Typed configuration, read in one place.

Every setting comes from the environment with the ``MAS_`` prefix (``MAS_HTTP_PORT=9090``) or from its
default here. The defaults are the embedded local run: no variable needs to be set for ``make run``.
Production points ``MAS_POSTGRES_DSN`` and ``MAS_REDIS_URL`` at real servers and changes nothing else.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAS_", extra="ignore", frozen=True)

    # Where the embedded stores keep their data, the run's pid file and its effective Serve config.
    data_dir: Path = Path(".mas")

    # External stores. Unset means: start the embedded server under data_dir.
    postgres_dsn: SecretStr | None = None
    redis_url: SecretStr | None = None
    neo4j_uri: str | None = None
    # Neo4j's credentials (or the URI's userinfo, neo4j://user:password@host), its driver's pool size per
    # process, and the longest a graph query may run on either backend before it is cancelled.
    neo4j_user: str | None = None
    neo4j_password: SecretStr | None = None
    neo4j_pool_size: int = Field(default=50, ge=1, le=1000)
    graph_query_timeout_s: float = Field(default=5.0, gt=0, le=300)

    # Pool sizes per process. The seed's production figures: 50 for PostgreSQL, 20 for Redis.
    postgres_pool_size: int = Field(default=50, ge=1, le=500)
    postgres_pool_min_size: int = Field(default=1, ge=0, le=500)
    postgres_command_timeout_s: float = Field(default=30.0, gt=0)
    redis_pool_size: int = Field(default=20, ge=1, le=1000)
    embedded_valkey_port: int = Field(default=6380, ge=1, le=65535)
    embedded_postgres_database: str = "marketing_agents"

    # The local Ray head and Serve's HTTP proxy.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    # Where the Ray node serves every Ray metric, ours included (ray_mas_*), in Prometheus text format.
    metrics_export_port: int = Field(default=8090, ge=1, le=65535)
    serve_config: Path = Path("ray_configs/serve_config.yaml")
    serve_ready_timeout_s: float = Field(default=300.0, gt=0)
    load_demo_data: bool = True

    # Request handling.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    # Interactions: occurred_at no earlier than this (interactions are stored in monthly partitions, and
    # far-apart dates would create one each), and at most this many new months per request or file.
    interactions_earliest: date = date(2000, 1, 1)
    max_new_partitions_per_request: int = Field(default=24, ge=1, le=1200)

    # Access control (marketing_agents/domain/access.py, serve_app/access_control.py). The bootstrap admin key;
    # `make run` generates one into MAS_DATA_DIR/admin-api-key when unset. Each key may make
    # rate_limit_per_minute requests in any sliding minute: its own limit if it was created with one,
    # else its role's from rate_limits_by_role (JSON, e.g. {"service": 6000}), else this default. A
    # replica remembers a verified key for api_key_cache_s: a revoked key stops working within that time.
    admin_api_key: SecretStr | None = Field(default=None, min_length=16)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    rate_limits_by_role: dict[Literal["admin", "operator", "service", "viewer"], Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict)
    api_key_cache_s: float = Field(default=5.0, ge=0, le=300)
    # What the rate limiter does when Redis does not answer: "reject" answers 503 with Retry-After (no key
    # gets unmetered use while the counter is away); "allow" lets requests through unmetered.
    rate_limit_when_store_down: Literal["reject", "allow"] = "reject"

    # Short-term memory TTLs, the seed's policy: sessions 24 h, cache 1 h (a lead's working context),
    # temp data 15 min, locks 30 s, rate-limit windows 1 h.
    session_ttl_s: int = Field(default=24 * 3600, ge=1)
    cache_ttl_s: int = Field(default=3600, ge=1)
    temp_ttl_s: int = Field(default=15 * 60, ge=1)
    lock_ttl_s: int = Field(default=30, ge=1)
    rate_limit_window_s: int = Field(default=3600, ge=1)

    # The WebSocket gateway (/ws, serve_app/websocket.py). A ping every ws_heartbeat_s, which the client
    # answers with a pong; one unanswered for twice that closes the connection. At most ws_send_queue
    # events wait for a client and at most as many are sent but not yet acknowledged by a pong: a client
    # that falls further behind is disconnected (1013). Each topic keeps its latest ws_replay_events
    # events, for ws_replay_ttl_s after its last one, for clients that reconnect with last_event_id. A
    # connection is closed (1001) after ws_max_session_s (0: never), to end before the Serve proxy's
    # request_timeout_s (ray_configs/serve_config.yaml) would cut it off without a close frame.
    ws_heartbeat_s: float = Field(default=20.0, gt=0)
    ws_send_queue: int = Field(default=256, ge=8, le=100_000)
    ws_replay_events: int = Field(default=1000, ge=1, le=100_000)
    ws_replay_ttl_s: int = Field(default=24 * 3600, ge=1)
    ws_max_session_s: float = Field(default=55.0, ge=0)
    # At most this many open sockets per API key (across replicas) and per replica; at most
    # ws_subscribe_per_minute subscribe/unsubscribe messages per socket, because each may replay events.
    ws_max_per_key: int = Field(default=20, ge=1, le=10_000)
    ws_max_per_replica: int = Field(default=1000, ge=1, le=100_000)
    ws_subscribe_per_minute: int = Field(default=60, ge=1, le=10_000)

    # Triage thresholds on lead_score (0..100); below nurture_min a lead is disqualified.
    triage_hot_min: float = Field(default=70.0, ge=0, le=100)
    triage_warm_min: float = Field(default=50.0, ge=0, le=100)
    triage_nurture_min: float = Field(default=25.0, ge=0, le=100)

    # Behavioural scoring (domain/behaviour.py): every stored interaction adds engagement points that halve
    # every behaviour_half_life_days, and the lead is rescored. MAS_BEHAVIOUR_POINTS is a JSON object of
    # "type" or "type/channel" -> points (0..100), merged over the defaults (open 1, click 5, visit 3,
    # form_submit 15, reply 20, meeting 30), e.g. {"reply/linkedin": 25, "open": 0}; a key that names no
    # interaction type or channel stops the start-up with a ConfigError naming it.
    behaviour_half_life_days: float = Field(default=30.0, gt=0, le=3650)
    behaviour_points: dict[str, float] = Field(default_factory=dict)

    # Routing rules (YAML; see marketing_agents/actors/data/routing_rules.yaml, used when unset).
    routing_rules_file: Path | None = None

    # The memory consolidator runs in the cluster this often (seconds); 0 turns the schedule off.
    consolidate_every_s: int = Field(default=3600, ge=0)

    # Touchpoint delivery: the dispatcher runs in the cluster this often (seconds; 0 turns it off).
    # Email goes to the SMTP server, every other channel to the webhook. `make run` starts local
    # sinks for both that write what they receive to MAS_DATA_DIR/outbox (.eml and .json files).
    dispatch_every_s: float = Field(default=10.0, ge=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    mail_from: str = "marketing@localhost"
    webhook_url: str | None = None
    local_sinks: bool = True
    webhook_sink_port: int = Field(default=2526, ge=1, le=65535)

    # Optional LLM rewording of engagement messages through an OpenAI-compatible /chat/completions
    # endpoint (e.g. https://api.openai.com/v1 or a local server). Unset: templates are sent as filled.
    llm_rewriter_url: str | None = None
    llm_rewriter_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None
    llm_rewriter_timeout_s: float = Field(default=5.0, gt=0)

    # A handoff package scoring below this never reaches the receiving agent.
    handoff_min_quality: float = Field(default=0.6, ge=0, le=1)

    # A failing receiver is tried this often, waiting first_backoff, then twice as long each time.
    handoff_attempts: int = Field(default=5, ge=1, le=20)
    handoff_first_backoff_s: float = Field(default=0.2, ge=0)
    # A stored handoff whose process died is resumed once its lease runs out; recovery looks this often.
    handoff_lease_s: int = Field(default=60, ge=1)
    # A person's claim on a lead under review lapses after this long, so a lead someone walked away
    # from goes back to the others by itself.
    review_claim_ttl_s: int = Field(default=900, ge=10, le=7 * 24 * 3600)
    handoff_recovery_every_s: float = Field(default=15.0, ge=0)

    # The campaign optimizer's policy, MAS_OPTIMIZER_*: one field per OptimizerPolicy field
    # (domain/optimization.py documents each; the defaults are the policy's own). Shares are
    # fractions of the budget; the escalation thresholds are inclusive. MAS_OPTIMIZER_SEED varies the
    # random stream, which is otherwise fixed per campaign and day of metrics.
    optimizer_rate_basis: str = Field(default="impression", pattern="^(impression|click)$")
    optimizer_prior_weight: float = Field(default=100.0, gt=0)
    optimizer_posterior_draws: int = Field(default=10_000, ge=100)
    optimizer_pause_below_p_best: float = Field(default=0.05, ge=0, le=1)
    optimizer_min_impressions_to_pause: int = Field(default=3_000, ge=0)
    optimizer_min_clicks_to_pause: int = Field(default=30, ge=0)
    optimizer_min_active_arms: int = Field(default=2, ge=1)
    optimizer_min_share: float = Field(default=0.01, ge=0, le=1)
    optimizer_max_share: float = Field(default=1.0, ge=0, le=1)
    optimizer_max_daily_change: float = Field(default=0.2, ge=0, le=1)
    optimizer_escalate_roi_at: float = -0.2
    optimizer_roi_min_spend: float = Field(default=1000.0, ge=0)
    optimizer_escalate_budget_spent_at: float = Field(default=0.9, gt=0)
    optimizer_escalate_pause_share_at: float = Field(default=0.3, ge=0, le=1)
    optimizer_escalate_share_drop_at: float | None = Field(default=0.5, ge=0, le=1)
    optimizer_seed: int = Field(default=0, ge=0)
    # The optimizer as an agent: a round over the active campaigns this often (seconds; 0 turns it off).
    # Each campaign takes at most one step per day of evidence, however often the rounds come.
    optimizer_every_s: float = Field(default=300.0, ge=0)

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
