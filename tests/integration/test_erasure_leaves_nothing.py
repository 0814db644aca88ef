"""Erasure through ``DELETE /api/v1/leads/{id}`` (in-process ASGI, access control and audit included) against
the real PostgreSQL and Valkey: it leaves nothing about the lead in any table or key, including what
other leads' handoffs recalled of it; a Redis failure half-way is finished by the retry, which answers
the report rather than 404; and an import does not bring the erased lead back."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from marketing_agents.domain import NewLead
from marketing_agents.domain.episode import Episode, EpisodeOutcome
from marketing_agents.memory.event_bus import EventBus, OutgoingEvent, publish_after_commit
from marketing_agents.memory.interaction_import import import_interactions
from marketing_agents.memory.interaction_writer import ERASED_LEAD
from marketing_agents.memory.lead_rights import LeadDataRights
from marketing_agents.memory.manager import UnifiedMemoryManager, situation_of
from marketing_agents.memory.redis_layout import TtlPolicy
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.memory.tier_actors import TIER_NAMES, build_tier
from marketing_agents.serve_app.access_control import install_access_control
from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.serve_app.lead_routes import add_lead_routes
from marketing_agents.stores.connections import StoreConnections
from marketing_agents.stores.postgres_lead_listing import LeadListing
from marketing_agents.stores.redis import RedisShortTermStore
from tests.support import InProcessAgents, free_port, lead_payload

ADMIN_KEY = "mas_erasure_admin_key_0123456789abc"
T0 = datetime(2026, 4, 1, tzinfo=UTC)


class LeadRights:
    """The orchestrator deployment's rights methods, over whichever memory manager the test gives it."""

    def __init__(self, manager: UnifiedMemoryManager, pool) -> None:
        self.manager, self._exists = manager, LeadListing(pool).exists

    async def export_lead(self, lead_id):
        return await LeadDataRights(self.manager, self._exists).export(lead_id)

    async def erase_lead(self, lead_id):
        return await LeadDataRights(self.manager, self._exists).erase(lead_id)


@pytest.fixture
async def system(migrated, pool, repository) -> AsyncIterator[tuple]:
    settings = migrated.settings(admin_api_key=ADMIN_KEY, api_key_cache_s=60)
    stores = StoreConnections(settings)
    tiers = {name: await build_tier(name, settings, stores) for name in TIER_NAMES}
    manager = UnifiedMemoryManager(tiers["short_term"], tiers["long_term"], tiers["episodic"], tiers["semantic"],
                                   tiers["leads"])
    rights = LeadRights(manager, pool)
    app = FastAPI()
    install_error_handlers(app)
    add_lead_routes(app, rights)
    access = install_access_control(app, stores, settings)
    intake = InProcessAgents().intake(repository, tiers["short_term"], memory=manager)
    yield app, access, rights, manager, intake, tiers
    await stores.close()


@asynccontextmanager
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def unreachable_redis(policy: TtlPolicy) -> ShortTermMemory:
    """Short-term memory over a real client whose server is not there: every call fails as a dead Redis does."""
    return ShortTermMemory(RedisShortTermStore(aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")), policy)


async def tables_mentioning(pool, needles: list[str]) -> dict[str, int]:
    """Every table of the schema whose rows, read as text (every column), contain one of ``needles``."""
    tables = await pool.fetch("""SELECT table_name FROM information_schema.tables
                                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'""")
    found = {}
    for (table,) in tables:
        n = await pool.fetchval(f'SELECT count(*) FROM "{table}" t WHERE t::text ILIKE ANY($1::text[])',
                                [f"%{needle}%" for needle in needles])
        if n:
            found[table] = n
    return found


async def keys_mentioning(redis_client, needles: list[str]) -> list[str]:
    """Every Redis key whose name or value (any type) contains one of ``needles``."""
    wanted = [needle.lower().encode() for needle in needles]
    found = []
    async for key in redis_client.scan_iter(count=1000):
        kind = (await redis_client.type(key)).decode()
        if kind == "string":
            parts = [await redis_client.get(key) or b""]
        elif kind == "hash":
            parts = [b for kv in (await redis_client.hgetall(key)).items() for b in kv]
        elif kind == "set":
            parts = list(await redis_client.smembers(key))
        elif kind == "zset":
            parts = list(await redis_client.zrange(key, 0, -1))
        elif kind == "list":
            parts = list(await redis_client.lrange(key, 0, -1))
        elif kind == "stream":
            parts = [b for _id, fields in await redis_client.xrange(key) for kv in fields.items() for b in kv]
        else:
            parts = []
        text = b"\n".join([key, *parts]).lower()
        if any(needle in text for needle in wanted):
            found.append(key.decode())
    return found


async def remembered_lead(manager, intake, tiers, pool) -> tuple[uuid.UUID, uuid.UUID, dict]:
    """A lead every tier knows something about, and another lead whose handoff recalls its episode.

    Returns both ids and what identifies the first: its id, e-mail, external id and episode id.
    """
    tag = uuid.uuid4().hex[:8]
    email, external_id = f"Erase.Me.{tag}@Acme-Robotics.com", f"crm-{tag}"
    # An uncommon company size, so that the second lead's recall finds the first lead's episode first.
    features = {"company_size": 777}
    erased = (await intake.submit(NewLead(**lead_payload(email=email, external_id=external_id, **features)),
                                  idempotency_key=f"k-{tag}")).lead_id
    stored = await pool.fetchrow("SELECT email FROM leads WHERE id = $1", erased)
    situation = situation_of((await intake._leads.get_detail(erased)).lead)
    episode_id = uuid.uuid4()
    await manager.record_episode(Episode(
        id=episode_id, lead_id=erased, segment="manufacturing/mid_market", context=situation,
        actions=[{"channel": "email"}], outcome=EpisodeOutcome.CONVERTED, started_at=T0, ended_at=T0 + timedelta(days=2)))
    await manager.record_activity(erased, "email", T0)
    await pool.execute("INSERT INTO interactions (lead_id, type, value, occurred_at) VALUES ($1, 'purchase', 120, $2)",
                       erased, T0)
    await tiers["short_term"].add_turn(erased, f"conv-{erased}", "lead", f"write to me at {email}")
    await tiers["short_term"].remember_session(f"sess-{erased}", {"email": email}, erased)
    other = (await intake.submit(NewLead(**lead_payload(email=f"other.{tag}@acme-robotics.com", **features)))).lead_id
    identity = {"id": str(erased), "email": stored["email"], "external_id": external_id, "episode": str(episode_id),
                "payload": lead_payload(email=email, external_id=external_id, **features)}
    return erased, other, identity


def needles_of(identity: dict) -> list[str]:
    return [identity["id"], identity["email"], identity["external_id"], identity["episode"]]


async def test_erasure_through_the_api_leaves_nothing_in_any_table_or_key(system, pool, redis_client):
    app, access, _rights, manager, intake, tiers = system
    erased, other, identity = await remembered_lead(manager, intake, tiers, pool)
    async with admin(app) as client:
        recalled = (await client.get(f"/api/v1/leads/{other}/export")).json()
        assert identity["episode"] in str(recalled["tables"]["handoffs"]), "the other lead's handoff recalls it"
        assert await keys_mentioning(redis_client, needles_of(identity))

        answer = await client.delete(f"/api/v1/leads/{erased}")
        assert answer.status_code == 200, answer.text

        kept = await client.get(f"/api/v1/leads/{other}/export")
        assert kept.status_code == 200 and kept.json()["tables"]["handoffs"], "the other lead keeps its handoff"
    await access.audit.flush()  # the erasure's own audit row is written after its answer

    # What was under way when the lead was erased (a touchpoint being sent, say) announces it afterwards:
    # the events are dropped, not written back into the streams erasure cleaned.
    await publish_after_commit(EventBus(RedisShortTermStore(redis_client)), [OutgoingEvent(
        (f"lead:{erased}", "touchpoints"), "touchpoint.sent", {"lead_id": str(erased), "channel": "email"})],
        "a late delivery")
    late = tiers["short_term"]  # and so are its context, a session and a conversation turn written late
    await late.cache_context(erased, {"email": identity["email"]})
    await late.remember_session(f"late-{erased}", {"email": identity["email"]}, erased)
    await late.add_turn(erased, f"conv-late-{erased}", "lead", f"still {identity['email']}")
    assert await tables_mentioning(pool, needles_of(identity)) == {}
    assert await keys_mentioning(redis_client, needles_of(identity)) == []
    assert await pool.fetchval("SELECT count(*) FROM api_audit WHERE method = 'DELETE' AND path = $1",
                               f"/api/v1/leads/erased:{hashlib.sha256(str(erased).encode()).hexdigest()}") == 1
    assert answer.json()["removed"]["postgres"]["recalls_in_other_handoffs"] >= 1


async def test_a_retry_after_redis_failed_finishes_the_erasure_and_answers_its_report(system, pool, redis_client):
    app, _access, rights, manager, intake, tiers = system
    erased, _other, identity = await remembered_lead(manager, intake, tiers, pool)
    async with admin(app) as client:
        # Redis dies after PostgreSQL committed: 503, and the keys are still there.
        working = rights.manager
        dying = unreachable_redis(tiers["short_term"].policy)
        dying.seal_lead = working.short_term.seal_lead  # it died after erasure marked the lead, before the cleanup
        rights.manager = UnifiedMemoryManager(dying, working.long_term, working.episodic, working.semantic,
                                              working.leads)
        failed = await client.delete(f"/api/v1/leads/{erased}")
        assert failed.status_code == 503, failed.text
        assert (await client.get(f"/api/v1/leads/{erased}/export")).status_code == 404
        assert await keys_mentioning(redis_client, [identity["id"]])

        # The retry finishes the erasure and answers the report; so does any later one.
        rights.manager = working
        retried = await client.delete(f"/api/v1/leads/{erased}")
        assert retried.status_code == 200, retried.text
        report = retried.json()
        assert report["lead_id"] == identity["id"]
        assert report["removed"]["postgres"]["leads"] == 1 and report["removed"]["postgres"]["episodes"] == 1
        assert report["removed"]["short_term"]["keys"] >= 3
        assert await keys_mentioning(redis_client, needles_of(identity)) == []
        again = await client.delete(f"/api/v1/leads/{erased}")
        assert again.status_code == 200, again.text
        assert (again.json()["removed"], again.json()["total"]) == (report["removed"], report["total"])
        assert (await client.delete(f"/api/v1/leads/{uuid.uuid4()}")).status_code == 404, "never a lead: 404"


async def test_an_import_does_not_re_create_an_erased_lead_but_the_person_may_opt_in_again(system, pool, tmp_path):
    app, _access, _rights, manager, intake, tiers = system
    erased, _other, identity = await remembered_lead(manager, intake, tiers, pool)
    async with admin(app) as client:
        assert (await client.delete(f"/api/v1/leads/{erased}")).status_code == 200

    new_id = f"crm-new-{uuid.uuid4().hex[:8]}"
    file = tmp_path / "purchases.csv"
    file.write_text(f"customer,day,amount\n{identity['external_id']},2026-04-03,10\n{new_id},2026-04-03,12\n")
    result = await import_interactions(pool, file, {"lead_id": "customer", "occurred_at": "day", "value": "amount"},
                                       "purchase")
    assert result.rejected == [(2, ERASED_LEAD)], "the erased lead's line is refused, saying why"
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE external_id = $1", identity["external_id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE external_id = $1", new_id) == 1
    assert result.imported == 1

    # The person can still come back and opt in anew, through the API: a new lead.
    back = await intake.submit(NewLead(**identity["payload"]))
    assert back.lead_id != erased and back.success
