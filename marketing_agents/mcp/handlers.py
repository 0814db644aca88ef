"""The MCP server's answers: a resource URI to its data, a tool name and its arguments to an agent call.

One class answers two kinds of caller: the MCP server (``mcp.server``, the official SDK over
Streamable HTTP at ``/mcp``) and in-cluster agents, which call the ``McpServer`` Serve deployment's
``read_resource(uri)`` / ``call_tool(name, args)`` without an HTTP hop. Everything it answers is
JSON-ready (``to_jsonable_python``), so an answer looks the same through either path.

What is offered is ``mcp.catalog``'s tables; who may ask is ``mcp.authorization``'s. A tool's
parameters here are its contract: the SDK builds the JSON schema clients see from this class's
signatures (:func:`tool_signature`), and :meth:`McpServer.call_tool` validates against the same.
The dry runs build their agents with ``actors.factory`` from the process's settings, as the Serve
deployments do, so a dry run plans what production would.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any, Literal, Protocol, TypeVar
from uuid import UUID

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

from marketing_agents.actors import factory
from marketing_agents.actors.engagement import SEQUENCES
from marketing_agents.actors.routing import ENGAGEMENT_AGENT
from marketing_agents.domain import (
    CampaignStatus,
    Channel,
    Lead,
    LeadProcessingResult,
    NewLead,
    ProvenanceEntry,
    utc_now,
)
from marketing_agents.domain.access import idempotency_scope
from marketing_agents.domain.episode import EpisodeOutcome, InsightKind
from marketing_agents.domain.field_errors import field_errors
from marketing_agents.domain.graph import NodeKind, RelationType, bounds_text, graph_bounds
from marketing_agents.domain.lead_views import LeadQuery
from marketing_agents.domain.limits import MAX_PAGE_OFFSET
from marketing_agents.domain.persona import persona_of
from marketing_agents.errors import Conflict, MarketingAgentsError, NotFound, RequestError
from marketing_agents.mcp.authorization import authorize_resource, authorize_tool
from marketing_agents.mcp.catalog import RESOURCES, TOOLS_BY_NAME, match_resource
from marketing_agents.memory.manager import UnifiedMemoryManager, situation_of
from marketing_agents.memory.semantic import SemanticMemory
from marketing_agents.scoring_models.errors import ModelNotFoundError
from marketing_agents.scoring_models.lead_features import lead_features
from marketing_agents.settings import Settings
from marketing_agents.stores.graph_port import MAX_DEPTH, MAX_NEIGHBOURS

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_SCORE_BATCH = 1000
MAX_TRIAGE_BATCH = 100
TRIAGE_CONCURRENCY = 8


class CampaignPort(Protocol):
    """The campaign optimizer agent, in-process or behind its Serve deployment."""

    async def list_campaigns(self, status, limit: int, offset: int): ...

    async def get_campaign(self, campaign_id: UUID): ...

    async def performance(self, campaign_id: UUID): ...

    async def optimize(self, campaign_id: UUID, dry_run: bool): ...


Submit = Callable[[NewLead, str | None], Awaitable[LeadProcessingResult]]


# ---- argument types of the tools (their JSON schemas are what MCP clients see) ----

LeadId = Annotated[UUID, Field(description="A stored lead's id.")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
                                      description="Makes a retried call return the first answer (kept 24 h).")]
GraphQueryKind = Literal["node", "neighbours", "path", "best_channels", "industry_channels", "nodes_of_kind"]


class Situation(BaseModel):
    """The features episodic memory compares situations by; give what you know."""

    model_config = ConfigDict(extra="forbid")

    industry: str | None = None
    seniority: str | None = None
    country: str | None = None
    source: str | None = None
    triage_category: str | None = None
    company_size: int | None = Field(default=None, ge=1)
    lead_score: float | None = Field(default=None, ge=0, le=100)
    channels: list[Channel] | None = None
    touches: int | None = Field(default=None, ge=0)


# ---- the server ----

class McpServer:
    def __init__(self, *, settings: Settings, leads, listing, reads, campaigns: CampaignPort,
                 memory: UnifiedMemoryManager, graph: SemanticMemory, submit: Submit,
                 active_scorer: Callable[[], Any], industry_synonyms: dict[str, str] | None = None,
                 recall_deadline_s: float = 2.0) -> None:
        """``settings``: the process's, which the agents of the dry runs are built from, as the Serve
        deployments build theirs; ``leads``: a LeadRepository; ``listing``: LeadListing; ``reads``:
        LeadReads; ``graph``: semantic memory over a graph store this process owns (summaries need the
        store's counts); ``active_scorer``: the model registry's ``active_scorer``; ``submit``: the
        LeadOrchestrator's submit (the whole lead flow); ``industry_synonyms``: the graph's, so that a
        lead scored here gets the features triage would give it."""
        self._leads = leads
        self._listing = listing
        self._reads = reads
        self._campaigns = campaigns
        self._memory = memory
        self._graph = graph
        self._submit = submit
        self._active_scorer = active_scorer
        self._enricher = factory.enricher(industry_synonyms)
        self._handoff = factory.handoff_orchestrator(settings)
        # No MessageRewriter: the dry run is read-only and closed-world, and rewording would send the
        # lead to an outside LLM. The plan is the one EngagementAgent makes before any rewording.
        self._engagement = factory.engagement_agent(settings)
        self._recall_deadline_s = recall_deadline_s

    # -- entry points ------------------------------------------------------------------------------

    async def read_resource(self, uri: str, role: str | None = "service") -> Any:
        """The data behind ``uri``, JSON-ready. NotFound for an unknown URI or an unknown id in it."""
        spec, params = match_resource(uri)
        authorize_resource(role, spec.name, uri)
        return to_jsonable_python(await _called(getattr(self, spec.method), params, role))

    async def call_tool(self, name: str, args: dict[str, Any] | None = None, role: str | None = "service",
                        caller: UUID | None = None) -> Any:
        """Validates ``args`` against the tool's signature, then runs it. RequestError for bad arguments.

        ``caller`` is the calling API key: an idempotency key (or prefix) is the caller's own name for
        it, stored scoped to that key and the tool (``domain.access.idempotency_scope``)."""
        spec = TOOLS_BY_NAME.get(name)
        if spec is None:
            raise NotFound(f"unknown tool '{name}'", {"tool": name, "known": sorted(TOOLS_BY_NAME)})
        authorize_tool(role, spec.name)
        try:
            validated = tool_arguments_model(name).model_validate(args or {})
        except ValidationError as exc:
            raise RequestError(f"invalid arguments for tool '{name}'", field_errors(exc.errors(), "arguments")) from None
        kwargs = {field: getattr(validated, field) for field in type(validated).model_fields}
        for field in IDEMPOTENCY_ARGUMENTS & kwargs.keys():
            kwargs[field] = idempotency_scope(caller, f"mcp.{name}", kwargs[field])
        return to_jsonable_python(await _called(getattr(self, name), kwargs, role))

    # -- resources: db:// --------------------------------------------------------------------------

    async def leads_page(self, limit: str | None = None, cursor: str | None = None, status: str | None = None,
                         triage_category: str | None = None, industry: str | None = None,
                         country: str | None = None, sort: str | None = None, order: str | None = None) -> Any:
        """The same page GET /api/v1/leads answers (one listing, one cursor format)."""
        given = {"limit": limit, "cursor": cursor, "status": status, "triage_category": triage_category,
                 "industry": industry, "country": country, "sort": sort, "order": order}
        try:
            query = LeadQuery.model_validate({k: v for k, v in given.items() if v not in (None, "")})
        except ValidationError as exc:
            raise RequestError("invalid lead list parameters", field_errors(exc.errors(), "arguments")) from None
        return await self._listing.page(query)

    async def lead(self, lead_id: str) -> Any:
        detail = await self._leads.get_detail(_uuid("lead_id", lead_id))
        if detail is None:
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": lead_id})
        return detail

    async def campaigns_page(self, status: str | None = None, limit: str | None = None,
                             offset: str | None = None) -> Any:
        state = _enum("status", status, CampaignStatus) if status else None
        return await self._campaigns.list_campaigns(state, _int("limit", limit, 1, 500, 100),
                                                    _int("offset", offset, 0, MAX_PAGE_OFFSET, 0))

    async def campaign(self, campaign_id: str) -> Any:
        return await self._campaigns.get_campaign(_uuid("campaign_id", campaign_id))

    async def interactions(self, lead_id: str, limit: str | None = None) -> dict[str, Any]:
        lead = _uuid("lead_id", lead_id)
        if not await self._listing.exists(lead):
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": lead_id})
        return {"lead_id": lead, "interactions": await self._reads.interactions(lead, _int("limit", limit, 1, 500, 100))}

    # -- resources: kg:// --------------------------------------------------------------------------

    async def graph_summary(self) -> dict[str, Any]:
        store = self._graph.store
        nodes, edges = await store.counts()
        kinds = {kind.value: [{"id": n.id, "name": n.name} for n in await store.nodes_of_kind(kind)]
                 for kind in NodeKind}
        return {"nodes": nodes, "relationships": edges, "nodes_by_kind": kinds,
                "relationship_types": [t.value for t in RelationType],
                "templates": [r.uri for r in RESOURCES if r.uri.startswith("kg://semantic/")]}

    async def graph_node(self, node_id: str) -> Any:
        node = await self._graph.store.node(node_id)
        if node is None:
            raise NotFound(f"no graph node with id '{node_id}'", {"node_id": node_id})
        return node

    async def graph_neighbours(self, node_id: str, depth: str | None = None, types: str | list[str] | None = None,
                               limit: str | None = None, caller_role: str | None = None) -> Any:
        """The strongest nodes around ``node_id``, as deep and as many as the caller's role may read."""
        bounds = graph_bounds(caller_role)
        hops = _role_bounded("depth", _int("depth", depth, 1, MAX_DEPTH, 1), bounds.max_depth, caller_role)
        size = _role_bounded("limit", _int("limit", limit, 1, MAX_NEIGHBOURS, bounds.max_nodes), bounds.max_nodes,
                             caller_role)
        relation_types = _relation_types(types)
        await self.graph_node(node_id)
        return await self._graph.neighbourhood(node_id, hops, relation_types, size)

    async def industry_channels(self, industry: str, persona: str | None = None,
                                limit: str | None = None) -> dict[str, Any]:
        size = _int("limit", limit, 1, 50, 5)
        industry_id = graph_id(NodeKind.INDUSTRY, industry)
        await self.graph_node(industry_id)
        if persona:
            persona_id = graph_id(NodeKind.PERSONA, persona)
            await self.graph_node(persona_id)
            return {"industry": industry_id, "persona": persona_id,
                    "recommendations": await self._graph.best_channels(industry_id, persona_id, size)}
        # The port scores channels per (industry, persona); the industry's own CONVERTS_TO weights are
        # the first edge of each recommendation's evidence, so every persona together reveals them all.
        weights: dict[str, tuple[Any, float]] = {}
        for node in await self._graph.store.nodes_of_kind(NodeKind.PERSONA):
            for rec in await self._graph.best_channels(industry_id, node.id, 50):
                edge = next(e for e in rec.evidence if e.source == industry_id)
                weights[rec.channel.id] = (rec.channel, edge.weight)
        ranked = sorted(weights.values(), key=lambda cw: (-cw[1], cw[0].id))[:size]
        return {"industry": industry_id, "persona": None,
                "channels": [{"channel": channel, "weight": weight} for channel, weight in ranked]}

    async def graph_path(self, source: str, target: str, caller_role: str | None = None) -> dict[str, Any]:
        """A shortest path of at most as many hops as the caller's role may traverse."""
        path = await self._graph.explain(source, target, graph_bounds(caller_role).max_depth)
        return {"source": source, "target": target, "path": path, "length": path.length if path else None}

    async def graph_kind(self, kind: str) -> dict[str, Any]:
        node_kind = _enum("kind", kind, NodeKind)
        return {"kind": node_kind, "nodes": await self._graph.store.nodes_of_kind(node_kind)}

    # -- resources: memory:// ----------------------------------------------------------------------

    async def short_term(self, session_id: str) -> dict[str, Any]:
        tier = self._memory.short_term
        session, conversation = await asyncio.gather(tier.session(session_id), tier.conversation(session_id))
        lead_context = None
        try:
            lead_context = await tier.context(UUID(session_id))
        except ValueError:
            pass
        return {"session_id": session_id, "session": session, "conversation": conversation,
                "lead_context": lead_context}

    async def episodic_insights(self) -> dict[str, Any]:
        insights = await self._memory.episodic.insights(None, None)
        return {"insights": insights[:100], "kinds": [k.value for k in InsightKind]}

    async def similar_episodes(self, lead_id: str, limit: str | None = None, outcome: str | None = None) -> Any:
        lead = await self._lead(_uuid("lead_id", lead_id))
        wanted = _enum("outcome", outcome, EpisodeOutcome) if outcome else None
        similar = await self._memory.episodic.recall_similar(situation_of(lead), _int("limit", limit, 1, 50, 5), wanted)
        return {"lead_id": lead.id, "situation": situation_of(lead), "similar_episodes": similar}

    async def lead_episodes(self, lead_id: str) -> dict[str, Any]:
        lead = await self._lead(_uuid("lead_id", lead_id))
        return {"lead_id": lead.id, "episodes": await self._memory.episodic.episodes_of(lead.id)}

    # -- tools -------------------------------------------------------------------------------------

    async def triage_lead(self, lead: NewLead, idempotency_key: IdempotencyKey | None = None) -> LeadProcessingResult:
        """Submits a new lead to the lead flow, exactly as POST /api/v1/leads does: it is triaged
        (scored, classified, routed), handed off and engaged, and all of it is stored. Returns the
        lead's id, category, score, status, engagement plan and next actions."""
        return await self._submit(lead, idempotency_key)

    async def triage_leads(
        self,
        leads: Annotated[list[NewLead], Field(min_length=1, max_length=MAX_TRIAGE_BATCH)],
        idempotency_key_prefix: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
        | None = None,
    ) -> dict[str, Any]:
        """Submits up to 100 new leads to the lead flow, each as triage_lead would. One result per
        lead, in order: its answer, or its error (a failing lead does not stop the others). With
        idempotency_key_prefix, lead i gets the key '<prefix>-<i>', so the whole batch can be retried."""
        gate = asyncio.Semaphore(TRIAGE_CONCURRENCY)

        async def one(index: int, lead: NewLead) -> dict[str, Any]:
            key = f"{idempotency_key_prefix}-{index}" if idempotency_key_prefix else None
            async with gate:
                try:
                    return {"index": index, "result": await self._submit(lead, key)}
                except MarketingAgentsError as exc:
                    return {"index": index, "error": _error(exc)}
                except Exception as exc:  # one lead's failure is reported (log.exception), the others go on
                    log.exception("triage_leads: lead %d failed", index)
                    return {"index": index, "error": {"code": "internal_error", "message": str(exc), "details": None}}

        results = await asyncio.gather(*(one(i, lead) for i, lead in enumerate(leads)))
        failed = sum(1 for r in results if "error" in r)
        return {"submitted": len(leads), "succeeded": len(leads) - failed, "failed": failed, "results": results}

    async def score_leads(
        self,
        leads: Annotated[list[NewLead], Field(max_length=MAX_SCORE_BATCH,
                                              description="New leads to score (nothing is stored).")] | None = None,
        lead_ids: Annotated[list[UUID], Field(max_length=MAX_SCORE_BATCH,
                                              description="Stored leads to score.")] | None = None,
    ) -> dict[str, Any]:
        """Scores up to 1,000 leads (new ones, stored ones by id, or both) with the active scoring
        model: per lead the conversion probability, lead_score (0..100) and the factors for and
        against. Nothing is stored. Results come in input order, new leads first."""
        leads, lead_ids = leads or [], lead_ids or []
        if not leads and not lead_ids:
            raise RequestError("give leads, lead_ids or both", {"fields": ["leads", "lead_ids"]})
        if len(leads) + len(lead_ids) > MAX_SCORE_BATCH:
            raise RequestError(f"at most {MAX_SCORE_BATCH} leads per call, got {len(leads) + len(lead_ids)}",
                               {"max": MAX_SCORE_BATCH})
        stored = await self._reads.leads(lead_ids) if lead_ids else {}
        now = utc_now()
        rows: list[tuple[dict[str, Any], Lead | None]] = []
        for index, new in enumerate(leads):
            rows.append(({"index": index, "email": new.email},
                         Lead(**new.model_dump(), id=UUID(int=index), created_at=now)))
        for index, lead_id in enumerate(lead_ids, start=len(leads)):
            rows.append(({"index": index, "lead_id": lead_id}, stored.get(lead_id)))
        return await asyncio.to_thread(self._score, rows)

    def _score(self, rows: list[tuple[dict[str, Any], Lead | None]]) -> dict[str, Any]:
        try:
            scorer = self._active_scorer()
        except ModelNotFoundError as exc:
            raise Conflict(f"no active scoring model: {exc}", {"model": None}) from None
        known = [(head, lead) for head, lead in rows if lead is not None]
        features = [lead_features(lead, self._enricher.enrich(lead)) for _, lead in known]
        frame = pd.DataFrame([{c: row.get(c) for c in scorer.feature_columns} for row in features],
                             columns=scorer.feature_columns)
        scored = scorer.score_frame(frame, explain=True, top=3) if known else None
        results: dict[int, dict[str, Any]] = {}
        if scored is not None:  # None only when no lead is known
            for position, (head, _) in enumerate(known):
                row = scored.iloc[position]
                results[head["index"]] = {**head, "probability": round(float(row["probability"]), 6),
                                          "lead_score": float(row["lead_score"]),
                                          "factors_for": str(row["top_factors_for"] or ""),
                                          "factors_against": str(row["top_factors_against"] or "")}
        for head, lead in rows:
            if lead is None:
                results[head["index"]] = {**head, "error": {"code": "not_found",
                                                            "message": f"no lead with id {head['lead_id']}"}}
        return {"model_version": scorer.version, "synthetic_model": scorer.synthetic,
                "scored": len(known), "not_found": len(rows) - len(known),
                "results": [results[i] for i in sorted(results)]}

    async def plan_engagement(self, lead_id: LeadId) -> dict[str, Any]:
        """The engagement plan the EngagementAgent would make for a stored lead now, from its latest
        triage and what memory recalls about it, as a dry run: nothing is stored or sent. Says
        whether triage routed the lead to the engagement agent (else a person would handle it)."""
        detail = await self._leads.get_detail(lead_id)
        if detail is None:
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})
        lead, triage = detail.lead, detail.triage
        if triage.triage_category not in SEQUENCES:
            raise Conflict(f"lead {lead_id} is {triage.triage_category.value}: there is no engagement sequence "
                           "for it", {"lead_id": str(lead_id), "triage_category": triage.triage_category.value})
        now = utc_now()
        recalled = await self._memory.recall(lead, persona_of(lead.job_title), deadline_s=self._recall_deadline_s)
        package = self._handoff.build_package(
            lead, triage.model_copy(update={"route_to": ENGAGEMENT_AGENT}),
            [ProvenanceEntry(agent="McpServer", action="dry_run", at=now)], now,
            memory=recalled)
        plan = self._engagement.plan(package, now)
        return {"lead_id": lead_id, "dry_run": True, "routed_to": triage.route_to,
                "routed_to_engagement_agent": triage.route_to == ENGAGEMENT_AGENT,
                "triage_category": triage.triage_category, "memory_missing": recalled.missing, "plan": plan,
                "existing_plan_id": detail.engagement_plan.id if detail.engagement_plan else None}

    async def query_graph(
        self,
        query: Annotated[GraphQueryKind, Field(description=(
            "node: one node (node_id); neighbours: nodes within depth hops of node_id, optionally over "
            "relation_types, strongest first and cut at the role's size (truncated says so); path: a shortest "
            "path from node_id to target within the role's depth; best_channels: channels for an "
            "industry and a persona; industry_channels: every channel an industry converts to; nodes_of_kind: "
            "every node of kind."))],
        node_id: str | None = None,
        target: str | None = None,
        depth: Annotated[int, Field(ge=1, le=MAX_DEPTH, description=(
            f"Hops for neighbours, bounded by the key's role ({bounds_text()}); a path goes as far as the role may."))] = 1,
        relation_types: list[RelationType] | None = None,
        industry: str | None = None,
        persona: str | None = None,
        kind: NodeKind | None = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 5,
        caller_role: str | None = None,
    ) -> dict[str, Any]:
        """Asks the knowledge graph (industries, personas, products, channels, content, campaigns,
        segments and their weighted relationships) one question; see query for the kinds."""
        def need(**values: _T | None) -> list[_T]:
            """The values, in order; RequestError naming every one that is missing."""
            missing = [name for name, value in values.items() if value is None]
            if missing:
                raise RequestError(f"query '{query}' needs {', '.join(missing)}", {"missing": missing})
            return [value for value in values.values() if value is not None]

        if query == "node":
            (node,) = need(node_id=node_id)
            return {"query": query, "node": await self.graph_node(node)}
        if query == "neighbours":
            (node,) = need(node_id=node_id)
            near = await self.graph_neighbours(node, str(depth), [t.value for t in relation_types or []],
                                               caller_role=caller_role)
            return {"query": query, **near.model_dump(mode="json")}
        if query == "path":
            source, to = need(node_id=node_id, target=target)
            return {"query": query, **await self.graph_path(source, to, caller_role)}
        if query == "best_channels":
            named_industry, named_persona = need(industry=industry, persona=persona)
            return {"query": query, **await self.industry_channels(named_industry, named_persona, str(limit))}
        if query == "industry_channels":
            (named_industry,) = need(industry=industry)
            return {"query": query, **await self.industry_channels(named_industry, None, str(limit))}
        (node_kind,) = need(kind=kind)
        return {"query": query, **await self.graph_kind(node_kind.value)}

    async def analyse_campaign(self, campaign_id: Annotated[UUID, Field(description="The campaign's id.")]) -> dict:
        """The campaign optimizer's view of a campaign: the campaign and its allocation, CTR, CVR, CPA,
        ROAS and ROI per arm and in total, and the optimization it would make now as a dry run
        (nothing is stored or applied; when it cannot optimize, why not)."""
        detail = await self._campaigns.get_campaign(campaign_id)
        performance = await self._campaigns.performance(campaign_id)
        try:
            proposal, reason = await self._campaigns.optimize(campaign_id, True), None
        except Conflict as exc:
            proposal, reason = None, exc.message
        return {"campaign": detail, "performance": performance, "dry_run_optimization": proposal,
                "cannot_optimize_because": reason}

    async def search_episodes(
        self,
        lead_id: Annotated[UUID | None, Field(description="Find episodes like this stored lead's situation.")] = None,
        situation: Annotated[Situation | None, Field(description="...or like this situation.")] = None,
        outcome: EpisodeOutcome | None = None,
        limit: Annotated[int, Field(ge=1, le=50)] = 5,
    ) -> dict[str, Any]:
        """Past episodes (lead journeys with what was done and how they ended) most similar to a
        stored lead's situation or to a described one, best first; optionally only those that ended
        with outcome."""
        if lead_id is not None and situation is None:
            features = situation_of(await self._lead(lead_id))
        elif situation is not None and lead_id is None:
            features = situation.model_dump(mode="json", exclude_none=True)
        else:
            raise RequestError("give exactly one of lead_id and situation", {"fields": ["lead_id", "situation"]})
        similar = await self._memory.episodic.recall_similar(features, limit, outcome)
        return {"situation": features, "similar_episodes": similar}

    # -- helpers -----------------------------------------------------------------------------------

    async def _lead(self, lead_id: UUID) -> Lead:
        found = (await self._reads.leads([lead_id])).get(lead_id)
        if found is None:
            raise NotFound(f"no lead with id {lead_id}", {"lead_id": str(lead_id)})
        return found


# ---- the tools' schemas, from the methods above ----

def tool_signature(name: str) -> inspect.Signature:
    """The tool's parameters (resolved annotations, no ``self``): the MCP SDK builds its schema from it."""
    method = getattr(McpServer, name)
    signature = inspect.signature(method, eval_str=True)
    return signature.replace(parameters=[p for p in signature.parameters.values()
                                         if p.name not in ("self", CALLER_ROLE)])


def tool_description(name: str) -> str:
    return inspect.getdoc(getattr(McpServer, name)) or ""


@cache
def tool_arguments_model(name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {p.name: (p.annotation, ... if p.default is inspect.Parameter.empty else p.default)
              for p in tool_signature(name).parameters.values()}
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


# The parameter by which a handler learns its caller's role, to bound what it answers (the graph's reads,
# by ``domain.graph.GRAPH_BOUNDS``). Filled by read_resource and call_tool, never from the caller's
# arguments: it is not in any tool's schema, and no URI template names it.
CALLER_ROLE = "caller_role"


# The tools' arguments that name an idempotency key (triage_lead) or the prefix of a batch's (triage_leads).
IDEMPOTENCY_ARGUMENTS = frozenset({"idempotency_key", "idempotency_key_prefix"})


def _called(method: Callable[..., Awaitable[Any]], kwargs: dict[str, Any], role: str | None) -> Awaitable[Any]:
    if CALLER_ROLE in inspect.signature(method).parameters:
        kwargs = {**kwargs, CALLER_ROLE: role}
    return method(**kwargs)


# ---- small parsers for template variables (always strings on the wire) ----

def graph_id(kind: NodeKind, key: str) -> str:
    """'software' -> 'industry:software'; an id that already names its kind is kept."""
    return key if key.startswith(f"{kind.value}:") else f"{kind.value}:{key.strip().lower().replace(' ', '_')}"


def _uuid(name: str, value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise RequestError(f"{name} must be a UUID, got '{value}'", {name: value}) from None


def _int(name: str, value: str | None, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a whole number, got '{value}'", {name: value}) from None
    if not low <= number <= high:
        raise RequestError(f"{name} must be between {low} and {high}, got {number}", {name: number})
    return number


def _role_bounded(name: str, value: int, most: int, role: str | None) -> int:
    if value > most:
        raise RequestError(f"{name} must be at most {most} for the {role or 'anonymous'} role, got {value}",
                           {name: value, "max": most, "role": role})
    return value


def _enum(name: str, value: str, kind):
    try:
        return kind(value)
    except ValueError:
        raise RequestError(f"{name} must be one of {', '.join(k.value for k in kind)}, got '{value}'",
                           {name: value}) from None


def _relation_types(types: str | list[str] | None) -> list[RelationType] | None:
    if not types:
        return None
    names = types if isinstance(types, list) else types.split(",")
    return [_enum("types", name.strip().upper(), RelationType) for name in names if name.strip()]


def _error(exc: MarketingAgentsError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}
