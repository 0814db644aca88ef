"""The MCP handlers (``McpServer``) against the real embedded PostgreSQL and Valkey, agents in-process:
every resource family read through a URI, every tool called by name with JSON arguments, and the roles."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from marketing_agents.domain import NewLead
from marketing_agents.domain.campaign import MetricsRow
from marketing_agents.domain.campaign_views import NewCampaign
from marketing_agents.domain.episode import Episode, EpisodeOutcome, Insight, InsightKind
from marketing_agents.errors import Conflict, NotFound, RequestError
from marketing_agents.mcp.authorization import Forbidden
from marketing_agents.mcp.catalog import TOOLS
from marketing_agents.memory.semantic import starter_graph
from tests.mcp_support import router_world, trained_models
from tests.support import lead_payload

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)

# A person's interactions, sessions and episodes are for the roles that may export (mcp.authorization).
OPERATOR = "operator"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return trained_models(tmp_path_factory)


@pytest.fixture
async def world(migrated, pool, repository, models):
    async with router_world(migrated, pool, repository, models) as world:
        yield world


def new_lead(**overrides) -> dict:
    return lead_payload(**{"email": f"mcp-{uuid.uuid4().hex[:10]}@acme-robotics.com", **overrides})


async def triaged(router, **overrides) -> dict:
    return await router.call_tool("triage_lead", {"lead": new_lead(**overrides)})


# ---- db:// ----

async def test_triage_lead_runs_the_lead_flow_and_the_lead_is_readable_as_resources(world, pool):
    router = world.router
    answer = await triaged(router)
    assert answer["success"] is True and answer["triage_category"] == "hot" and answer["status"] == "engaged"
    lead_id = answer["lead_id"]
    assert await pool.fetchval("SELECT count(*) FROM engagement_plans WHERE lead_id = $1", uuid.UUID(lead_id)) == 1

    detail = await router.read_resource(f"db://leads/{lead_id}")
    assert detail["lead"]["id"] == lead_id
    assert detail["triage"]["triage_category"] == "hot"
    assert detail["engagement_plan"]["id"] == answer["engagement_plan"]["id"]
    json.dumps(detail)  # JSON-ready as it comes

    recent = await router.read_resource("db://leads")
    assert recent["items"][0]["id"] == lead_id  # newest first


async def test_leads_page_with_a_cursor_never_repeats_or_skips(world):
    router = world.router
    ids = [(await triaged(router))["lead_id"] for _ in range(3)]
    first = await router.read_resource("db://leads?limit=2")
    second = await router.read_resource(f"db://leads?limit=2&cursor={first['next_cursor']}")
    seen = [lead["id"] for lead in first["items"] + second["items"]]
    assert seen[:3] == ids[::-1]
    assert len(seen) == len(set(seen))
    by_score = await router.read_resource("db://leads?sort=lead_score&order=asc&triage_category=hot&limit=200")
    scores = [lead["lead_score"] for lead in by_score["items"]]
    assert scores == sorted(scores) and {lead["triage_category"] for lead in by_score["items"]} == {"hot"}
    with pytest.raises(RequestError, match="cursor"):
        await router.read_resource("db://leads?cursor=not-a-cursor")
    with pytest.raises(RequestError, match="invalid lead list parameters") as bad:
        await router.read_resource("db://leads?limit=0&sort=name")
    assert {e["field"] for e in bad.value.details} == {"limit", "sort"}


async def test_interactions_of_a_lead_newest_first(world, pool):
    router = world.router
    lead_id = (await triaged(router))["lead_id"]
    for hours, kind in ((1, "email_open"), (2, "email_click")):
        await pool.execute("INSERT INTO interactions (lead_id, type, channel, occurred_at) VALUES ($1, $2, 'email', $3)",
                           uuid.UUID(lead_id), kind, T0 + timedelta(hours=hours))
    answer = await router.read_resource(f"db://interactions/{lead_id}", OPERATOR)
    assert [i["type"] for i in answer["interactions"]] == ["email_click", "email_open"]
    assert len((await router.read_resource(f"db://interactions/{lead_id}?limit=1", OPERATOR))["interactions"]) == 1
    with pytest.raises(NotFound):
        await router.read_resource(f"db://interactions/{uuid.uuid4()}", OPERATOR)


async def test_unknown_and_malformed_lead_ids(world):
    with pytest.raises(NotFound, match="no lead"):
        await world.router.read_resource(f"db://leads/{uuid.uuid4()}")
    with pytest.raises(RequestError, match="lead_id must be a UUID"):
        await world.router.read_resource("db://leads/not-a-uuid")


async def campaign_with_metrics(campaigns, metrics: bool = True):
    campaign = await campaigns.create_campaign(NewCampaign(
        name=f"mcp {uuid.uuid4().hex[:6]}", status="active", channels=["email", "linkedin"],
        budget=Decimal("100000.00"), start_date=date(2025, 3, 1)))
    if metrics:
        rows = [MetricsRow(variant=v, channel=c, metric_date=date(2025, 3, 1), impressions=5000, clicks=1000,
                           conversions=conv, spend=Decimal("25.00"), revenue=Decimal("100.00"))
                for (v, c), conv in {("A", "email"): 200, ("B", "email"): 190, ("A", "linkedin"): 185,
                                     ("B", "linkedin"): 20}.items()]
        await campaigns.ingest_metrics(campaign.id, rows)
    return campaign


async def test_campaigns_and_analyse_campaign_as_a_dry_run(world, pool):
    router = world.router
    campaign = await campaign_with_metrics(world.campaigns)
    listed = await router.read_resource("db://campaigns")
    assert str(campaign.id) in [c["id"] for c in listed["campaigns"]]
    active = await router.read_resource("db://campaigns?status=active&limit=500")
    assert all(c["status"] == "active" for c in active["campaigns"])
    detail = await router.read_resource(f"db://campaigns/{campaign.id}")
    assert detail["campaign"]["name"] == campaign.name

    stored_before = await pool.fetchval("SELECT count(*) FROM optimizations WHERE campaign_id = $1", campaign.id)
    analysis = await router.call_tool("analyse_campaign", {"campaign_id": str(campaign.id)})
    assert analysis["performance"]["campaign_id"] == str(campaign.id)
    assert analysis["dry_run_optimization"] is not None and analysis["cannot_optimize_because"] is None
    assert await pool.fetchval("SELECT count(*) FROM optimizations WHERE campaign_id = $1",
                               campaign.id) == stored_before == 0

    empty = await campaign_with_metrics(world.campaigns, metrics=False)
    analysis = await router.call_tool("analyse_campaign", {"campaign_id": str(empty.id)})
    assert analysis["dry_run_optimization"] is None
    assert "no metrics" in analysis["cannot_optimize_because"]
    with pytest.raises(NotFound):
        await router.call_tool("analyse_campaign", {"campaign_id": str(uuid.uuid4())})
    with pytest.raises(RequestError, match="status must be one of"):
        await router.read_resource("db://campaigns?status=sleeping")


# ---- kg:// ----

async def test_the_graph_summary_and_its_queries(world):
    router = world.router
    nodes, edges = starter_graph()
    summary = await router.read_resource("kg://semantic")
    assert (summary["nodes"], summary["relationships"]) == (len(nodes), len(edges))
    assert {"id": "industry:software", "name": "Software"} in summary["nodes_by_kind"]["industry"]

    assert (await router.read_resource("kg://semantic/node/industry:software"))["name"] == "Software"
    near = await router.read_resource("kg://semantic/node/industry:software/neighbours?types=CONVERTS_TO")
    assert {n["node"]["id"] for n in near["neighbours"]} >= {"channel:email", "channel:linkedin"}
    assert all(n["distance"] == 1 for n in near["neighbours"])
    wider = await router.read_resource("kg://semantic/node/industry:software/neighbours?depth=2")
    assert len(wider["neighbours"]) > len(near["neighbours"])

    weights = {e.target: e.weight for e in edges if e.source == "industry:software" and e.type == "CONVERTS_TO"}
    channels = await router.read_resource("kg://semantic/industry/Software/channels?limit=50")
    got = [(c["channel"]["id"], c["weight"]) for c in channels["channels"]]
    assert got == sorted(got, key=lambda cw: -cw[1]) and all(weights[c] == w for c, w in got)
    assert got[0][0] == max(weights, key=weights.get)
    best = await router.read_resource("kg://semantic/industry/software/channels?persona=cto&limit=3")
    assert len(best["recommendations"]) == 3 and best["persona"] == "persona:cto"

    path = await router.read_resource("kg://semantic/path/industry:software/persona:cto")
    assert path["path"]["nodes"][0]["id"] == "industry:software" and path["length"] >= 1
    kind = await router.read_resource("kg://semantic/kind/channel")
    assert {n["id"] for n in kind["nodes"]} == {n.id for n in nodes if n.kind == "channel"}

    with pytest.raises(NotFound):
        await router.read_resource("kg://semantic/node/industry:nothing")
    with pytest.raises(RequestError, match="depth must be between 1 and 6"):
        await router.read_resource("kg://semantic/node/industry:software/neighbours?depth=9")
    with pytest.raises(RequestError, match="types must be one of"):
        await router.read_resource("kg://semantic/node/industry:software/neighbours?types=LIKES")


async def test_query_graph_tool(world):
    router = world.router
    assert (await router.call_tool("query_graph", {"query": "node", "node_id": "persona:cto"}))["node"]["kind"] == "persona"
    near = await router.call_tool("query_graph", {"query": "neighbours", "node_id": "industry:software",
                                                  "relation_types": ["CONVERTS_TO"]})
    assert near["neighbours"]
    best = await router.call_tool("query_graph", {"query": "best_channels", "industry": "software",
                                                  "persona": "cmo", "limit": 2})
    assert len(best["recommendations"]) == 2
    assert (await router.call_tool("query_graph", {"query": "industry_channels", "industry": "fintech"}))["channels"]
    path = await router.call_tool("query_graph", {"query": "path", "node_id": "channel:email",
                                                  "target": "persona:cfo"})
    assert path["path"] is not None
    assert (await router.call_tool("query_graph", {"query": "nodes_of_kind", "kind": "segment"}))["nodes"]
    with pytest.raises(RequestError, match="needs target"):
        await router.call_tool("query_graph", {"query": "path", "node_id": "channel:email"})
    with pytest.raises(RequestError, match="invalid arguments"):
        await router.call_tool("query_graph", {"query": "everything"})


# ---- memory:// ----

async def test_short_term_memory_of_a_session_and_of_a_lead(world):
    router, short_term = world.router, world.tiers["short_term"]
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    await short_term.remember_session(session_id, {"page": "/pricing", "visits": 3})
    await short_term.add_turn(uuid.uuid4(), session_id, "lead", "How much is it?")
    answer = await router.read_resource(f"memory://short-term/{session_id}", OPERATOR)
    assert answer["session"] == {"page": "/pricing", "visits": 3}
    assert [t["text"] for t in answer["conversation"]] == ["How much is it?"]
    assert answer["lead_context"] is None

    lead_id = (await triaged(router))["lead_id"]
    context = (await router.read_resource(f"memory://short-term/{lead_id}", OPERATOR))["lead_context"]
    assert context["lead"]["id"] == lead_id


async def test_episodic_insights_similar_episodes_and_a_leads_episodes(world):
    router = world.router
    title = f"webinars convert {uuid.uuid4().hex[:6]}"
    await world.tiers["episodic"].learn(Insight(kind=InsightKind.SUCCESS_PATTERN, segment="manufacturing/enterprise",
                                                title=title, description="they do", support=12, confidence=0.8))
    insights = await router.read_resource("memory://episodic")
    assert title in [i["title"] for i in insights["insights"]]

    lead_id = uuid.UUID((await triaged(router))["lead_id"])
    lead = (await world.memory.leads.export(lead_id))["lead"]
    episode = Episode(id=uuid.uuid4(), lead_id=lead_id, segment="manufacturing/enterprise",
                      context={"industry": lead["industry"].lower(), "country": lead["country"],
                               "source": lead["source"], "company_size": lead["company_size"],
                               "channels": ["email", "linkedin", "call"]},
                      actions=[{"channel": "webinar"}], outcome=EpisodeOutcome.CONVERTED, outcome_value=5000,
                      started_at=T0, ended_at=T0 + timedelta(days=9))
    await world.memory.record_episode(episode)
    similar = await router.read_resource(f"memory://episodic/similar/{lead_id}?outcome=converted&limit=3", OPERATOR)
    assert similar["similar_episodes"][0]["episode"]["id"] == str(episode.id)
    assert similar["similar_episodes"][0]["similarity"] == pytest.approx(1.0)
    own = await router.read_resource(f"memory://episodic/lead/{lead_id}", OPERATOR)
    assert [e["id"] for e in own["episodes"]] == [str(episode.id)]

    by_lead = await router.call_tool("search_episodes", {"lead_id": str(lead_id), "outcome": "converted"}, OPERATOR)
    assert by_lead["similar_episodes"][0]["episode"]["id"] == str(episode.id)
    by_situation = await router.call_tool("search_episodes", {"situation": episode.context, "limit": 1}, OPERATOR)
    assert by_situation["similar_episodes"][0]["episode"]["id"] == str(episode.id)
    with pytest.raises(RequestError, match="exactly one of lead_id and situation"):
        await router.call_tool("search_episodes", {}, OPERATOR)


# ---- the other tools ----

async def test_score_leads_new_and_stored_in_order_with_unknown_ids_reported(world, pool):
    router = world.router
    stored = (await triaged(router))["lead_id"]
    before = await pool.fetchval("SELECT count(*) FROM leads")
    unknown = str(uuid.uuid4())
    answer = await router.call_tool("score_leads", {
        "leads": [new_lead(), new_lead(job_title="Student", source="purchased_list", company_size=3)],
        "lead_ids": [stored, unknown]})
    assert answer["model_version"].endswith("-synthetic") and answer["synthetic_model"] is True
    assert (answer["scored"], answer["not_found"]) == (3, 1)
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[2]["lead_id"] == stored and results[3]["error"]["code"] == "not_found"
    assert 0 <= results[1]["lead_score"] < results[0]["lead_score"] <= 100
    assert results[0]["lead_score"] == round(100 * results[0]["probability"], 1)
    assert await pool.fetchval("SELECT count(*) FROM leads") == before  # scoring stores nothing

    with pytest.raises(RequestError, match="give leads, lead_ids or both"):
        await router.call_tool("score_leads", {})
    with pytest.raises(RequestError, match="invalid arguments"):
        await router.call_tool("score_leads", {"lead_ids": [str(uuid.uuid4())] * 1001})


async def test_score_leads_without_a_model_is_a_conflict(migrated, pool, repository):
    async with router_world(migrated, pool, repository, None) as world:
        with pytest.raises(Conflict, match="no active scoring model"):
            await world.router.call_tool("score_leads", {"leads": [new_lead()]})


async def test_plan_engagement_is_a_dry_run(world, pool):
    router = world.router
    answer = await triaged(router)
    lead_id = uuid.UUID(answer["lead_id"])
    plans = await pool.fetchval("SELECT count(*) FROM engagement_plans WHERE lead_id = $1", lead_id)
    touchpoints = await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1", lead_id)
    dry = await router.call_tool("plan_engagement", {"lead_id": str(lead_id)})
    assert dry["dry_run"] is True and dry["routed_to_engagement_agent"] is True
    assert dry["plan"]["sequence"] == answer["engagement_plan"]["sequence"]
    assert dry["plan"]["id"] != answer["engagement_plan"]["id"]
    assert dry["existing_plan_id"] == answer["engagement_plan"]["id"]
    assert {t["channel"] for t in dry["plan"]["touchpoints"]} <= {"email", "linkedin", "call"}  # consent holds
    assert await pool.fetchval("SELECT count(*) FROM engagement_plans WHERE lead_id = $1", lead_id) == plans
    assert await pool.fetchval("SELECT count(*) FROM touchpoints WHERE lead_id = $1", lead_id) == touchpoints

    silent = await triaged(router, consent={})  # no consent at all: disqualified
    assert silent["triage_category"] == "disqualified"
    with pytest.raises(Conflict, match="no engagement sequence"):
        await router.call_tool("plan_engagement", {"lead_id": silent["lead_id"]})
    with pytest.raises(NotFound):
        await router.call_tool("plan_engagement", {"lead_id": str(uuid.uuid4())})


async def test_triage_leads_reports_each_lead_and_goes_on_after_a_failure(world, pool):
    router = world.router
    taken = f"crm-{uuid.uuid4().hex[:8]}"
    await triaged(router, external_id=taken)
    prefix = f"batch-{uuid.uuid4().hex[:8]}"
    leads = [new_lead(), new_lead(external_id=taken), new_lead()]
    answer = await router.call_tool("triage_leads", {"leads": leads, "idempotency_key_prefix": prefix})
    assert (answer["submitted"], answer["succeeded"], answer["failed"]) == (3, 2, 1)
    assert [r["index"] for r in answer["results"]] == [0, 1, 2]
    assert answer["results"][1]["error"]["code"] == "lead_exists"
    again = await router.call_tool("triage_leads", {"leads": leads, "idempotency_key_prefix": prefix})
    assert again["results"][0]["result"]["lead_id"] == answer["results"][0]["result"]["lead_id"]  # retried safely
    with pytest.raises(RequestError, match="invalid arguments"):
        await router.call_tool("triage_leads", {"leads": []})


# ---- roles ----

async def test_roles_every_role_reads_only_writers_triage(world):
    router = world.router
    for role in ("admin", "operator", "service", "viewer"):
        assert "nodes" in await router.read_resource("kg://semantic", role)
        assert (await router.call_tool("query_graph", {"query": "node", "node_id": "persona:cto"}, role))["node"]
    for role in ("admin", "operator", "service"):
        assert (await router.call_tool("triage_lead", {"lead": new_lead()}, role))["success"]
    with pytest.raises(Forbidden, match="viewer role may not call 'triage_lead'"):
        await router.call_tool("triage_lead", {"lead": new_lead()}, "viewer")
    with pytest.raises(Forbidden):
        await router.call_tool("triage_leads", {"leads": [new_lead()]}, "viewer")
    with pytest.raises(Forbidden):
        await router.read_resource("kg://semantic", None)
    with pytest.raises(Forbidden):
        await router.call_tool("query_graph", {"query": "node", "node_id": "persona:cto"}, "stranger")
    assert {t.name for t in TOOLS if not t.read_only} == {"triage_lead", "triage_leads"}


async def test_unknown_tools_and_bad_arguments(world):
    with pytest.raises(NotFound, match="unknown tool 'nope'"):
        await world.router.call_tool("nope", {})
    with pytest.raises(RequestError) as raised:
        await world.router.call_tool("triage_lead", {"lead": {**new_lead(), "company_size": "12"}})
    assert raised.value.details[0]["field"] == "lead.company_size"
    with pytest.raises(RequestError, match="invalid arguments"):
        await world.router.call_tool("plan_engagement", {"lead_id": str(uuid.uuid4()), "extra": 1})
    assert isinstance(NewLead(**new_lead()), NewLead)
