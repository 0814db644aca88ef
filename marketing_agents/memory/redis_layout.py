"""The Redis layout the short-term ports share: the key names more than one port relies on, and how
long each kind of key lives.

Short-term memory, the event bus, the lock service and the rate limiter are separate ports over one
store adapter (``stores.redis.RedisShortTermStore``) and one keyspace. What one of them writes another
may have to find: erasing a lead (short-term memory) deletes the lead's events (the event bus), so the
names they share are defined here, once; a key only one port uses is named in that port.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID

from marketing_agents.settings import Settings

PREFIX = "mas"

# The topics every replica publishes on, besides one per lead (``lead:<id>``).
EVENT_TOPICS = ("leads", "handoffs", "touchpoints", "campaigns", "escalations", "reviews")


@dataclass(frozen=True)
class TtlPolicy:
    session_s: int = 24 * 3600
    cache_s: int = 3600
    temp_s: int = 15 * 60
    lock_s: int = 30
    rate_window_s: int = 3600
    # Each event topic keeps about this many of its latest events for replay, for this long after its last.
    event_replay: int = 1000
    event_replay_s: int = 24 * 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> TtlPolicy:
        return cls(settings.session_ttl_s, settings.cache_ttl_s, settings.temp_ttl_s, settings.lock_ttl_s,
                   settings.rate_limit_window_s, settings.ws_replay_events, settings.ws_replay_ttl_s)


DEFAULT_POLICY = TtlPolicy()


def lead_index(lead_id: UUID) -> str:
    """The set listing every key about the lead, so that erasing it needs no scan of the keyspace."""
    return f"{PREFIX}:lead:{lead_id}:keys"


# How long an erased lead's marker keeps late writers out: longer than anything started before the erasure
# can still be under way (a touchpoint's send, a handoff's lease, an event published after its commit).
ERASED_MARKER_S = 24 * 3600


def erased_marker(lead_id: UUID | str) -> str:
    """The key that says a lead was erased, named by the digest of its id (the key must not name the lead).

    Erasure sets it before anything is deleted; an event about the lead published after that is dropped
    rather than written back into the streams that erasure has just cleaned.
    """
    return f"{PREFIX}:erased:{hashlib.sha256(str(lead_id).encode()).hexdigest()}"


def event_stream(topic: str) -> str:
    """The capped stream of the topic's latest events (a key; channels are another namespace)."""
    return f"{PREFIX}:event-stream:{topic}"
