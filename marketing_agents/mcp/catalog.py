"""What the MCP server offers: every resource URI (or URI template) and every tool, as data.

Kept apart from the handlers so that the SDK wiring (``mcp.server``) can list resources, templates
and tools with no backend and no stores; the handlers (``mcp.handlers``) answer a URI with the
method its row names and a tool with the method of the tool's name. Exact URIs are matched before
templates, templates in the order below, which is also the order the MCP SDK tries them in.

Resources (read-only; who may read each is ``mcp.authorization``'s, from the REST policy)::

    db://leads                       recent leads, newest first; db://leads{?limit,cursor} pages on
    db://leads/{lead_id}             a lead with its triage, handoffs and engagement plan
    db://campaigns                   campaigns, newest first; db://campaigns{?status,limit,offset}
    db://campaigns/{campaign_id}     a campaign with its budget allocation
    db://interactions/{lead_id}      the lead's interactions, newest first ({?limit})
    kg://semantic                    the knowledge graph: counts, nodes by kind, relationship types
    kg://semantic/...                node, neighbours, an industry's channels, a path, nodes of a kind
    memory://short-term/{session_id} a session's state and conversation turns (and a lead's working
                                     context when the id is a lead id)
    memory://episodic                learned insights: success patterns, best practices, lessons
    memory://episodic/similar/{lead_id}, memory://episodic/lead/{lead_id}

Tools: ``triage_lead`` and ``triage_leads`` write (they run the real lead flow: triage, handoff,
engagement, all stored) and need a role that may POST leads; the others only read: ``score_leads``,
``plan_engagement`` (a dry run), ``query_graph``, ``analyse_campaign`` (performance and a dry-run
optimization), ``search_episodes``. Who may call each is ``mcp.authorization``'s, from the REST
policy: the interactions, short-term memory and episodes of leads only for the roles that may export.
Lists are how batches arrive: MCP has no JSON-RPC batches since 2025-06-18.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from mcp.shared.uri_template import UriTemplate

from marketing_agents.domain.graph import bounds_text
from marketing_agents.errors import NotFound
from marketing_agents.mcp.authorization import roles_for


@dataclass(frozen=True)
class ResourceSpec:
    uri: str = ""
    name: str = ""
    title: str = ""
    description: str = ""
    method: str = ""

    @property
    def is_template(self) -> bool:
        return "{" in self.uri

    @property
    def parameters(self) -> list[str]:
        return UriTemplate.parse(self.uri).variable_names

    @property
    def query_parameters(self) -> frozenset[str]:
        return UriTemplate.parse(self.uri).query_variable_names


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    read_only: bool
    idempotent: bool = True

    @property
    def roles(self) -> frozenset[str]:
        """The roles of the REST request the tool equals (``mcp.authorization``: one policy for both)."""
        return roles_for(self.name)


RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec("db://leads", "leads", "Recent leads",
                 "The 50 newest leads (summaries); next_cursor pages on through db://leads{?limit,cursor,...}.",
                 "leads_page"),
    ResourceSpec("db://campaigns", "campaigns", "Campaigns", "Campaigns, newest first (the first 100).",
                 "campaigns_page"),
    ResourceSpec("kg://semantic", "knowledge-graph", "Knowledge graph summary",
                 "Node and relationship counts, every node by kind, and the relationship types.", "graph_summary"),
    ResourceSpec("memory://episodic", "episodic-insights", "Episodic memory insights",
                 "Success patterns, best practices and lessons learned from past episodes, most confident first.",
                 "episodic_insights"),
    ResourceSpec("db://leads{?limit,cursor,status,triage_category,industry,country,sort,order}", "leads-page",
                 "A page of leads",
                 "Lead summaries as GET /api/v1/leads lists them: limit 1..200 (default 50), cursor (the previous "
                 "page's next_cursor), filters status, triage_category, industry, country; sort created_at "
                 "(default) or lead_score, order desc (default) or asc.", "leads_page"),
    ResourceSpec("db://leads/{lead_id}", "lead", "A lead",
                 "The stored lead with its latest triage, its handoffs and its engagement plan.", "lead"),
    ResourceSpec("db://campaigns{?status,limit,offset}", "campaigns-page", "A page of campaigns",
                 "Campaigns, newest first, optionally by status (draft, active, paused, completed).",
                 "campaigns_page"),
    ResourceSpec("db://campaigns/{campaign_id}", "campaign", "A campaign",
                 "The campaign with the budget allocation it runs on.", "campaign"),
    ResourceSpec("db://interactions/{lead_id}{?limit}", "interactions", "A lead's interactions",
                 "Replies, opens, clicks, visits, purchases and the like, newest first (limit 1..500, default 100).",
                 "interactions"),
    ResourceSpec("kg://semantic/node/{node_id}", "graph-node", "A graph node",
                 "One node of the knowledge graph by id, e.g. industry:software.", "graph_node"),
    ResourceSpec("kg://semantic/node/{node_id}/neighbours{?depth,types,limit}", "graph-neighbours",
                 "A node's neighbours",
                 "Nodes within depth hops (default 1), optionally only over the given relationship types "
                 "(comma-separated: RELATES_TO, INFLUENCES, CONVERTS_TO, SIMILAR_TO, PRECEDES), nearest and "
                 "strongest first, at most limit of them (truncated says more were cut). Depth and limit are "
                 f"bounded by the key's role ({bounds_text()}); limit defaults to the role's.", "graph_neighbours"),
    ResourceSpec("kg://semantic/industry/{industry}/channels{?persona,limit}", "industry-channels",
                 "Channels that convert for an industry",
                 "Without persona: every channel the industry converts to, by the industry's weight. With persona: "
                 "the best channels for both, scored by the product of the weights, with the edges as evidence.",
                 "industry_channels"),
    ResourceSpec("kg://semantic/path/{source}/{target}", "graph-path", "How two nodes relate",
                 f"A shortest path between two nodes within the key's role's hops ({bounds_text()}), or null.",
                 "graph_path"),
    ResourceSpec("kg://semantic/kind/{kind}", "graph-kind", "Nodes of one kind",
                 "Every node of a kind: industry, persona, product, channel, content, campaign or segment.",
                 "graph_kind"),
    ResourceSpec("memory://short-term/{session_id}", "short-term", "Short-term memory of a session",
                 "A session's state and its conversation turns; for a lead id, also the lead's working context.",
                 "short_term"),
    ResourceSpec("memory://episodic/similar/{lead_id}{?limit,outcome}", "similar-episodes",
                 "Episodes like a lead's situation",
                 "Past episodes most similar to the lead's situation, best first (limit 1..50, default 5), "
                 "optionally only those with an outcome (converted, engaged, no_response, unsubscribed, lost).",
                 "similar_episodes"),
    ResourceSpec("memory://episodic/lead/{lead_id}", "lead-episodes", "A lead's episodes",
                 "The episodes of one lead's journey, oldest first.", "lead_episodes"),
)

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("triage_lead", "Triage a new lead", read_only=False, idempotent=False),
    ToolSpec("triage_leads", "Triage a batch of new leads", read_only=False, idempotent=False),
    ToolSpec("score_leads", "Score leads with the active model", read_only=True),
    ToolSpec("plan_engagement", "Plan engagement for a lead (dry run)", read_only=True),
    ToolSpec("query_graph", "Query the knowledge graph", read_only=True),
    ToolSpec("analyse_campaign", "Analyse a campaign", read_only=True),
    ToolSpec("search_episodes", "Find similar episodes", read_only=True),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


@cache
def _parsed(uri: str) -> UriTemplate:
    return UriTemplate.parse(uri)


def match_resource(uri: str) -> tuple[ResourceSpec, dict[str, Any]]:
    """The resource ``uri`` names and the values of its template's variables: exact URIs first, then
    templates in the order of RESOURCES (the order the MCP SDK also tries them in)."""
    for spec in RESOURCES:
        if not spec.is_template and spec.uri == uri:
            return spec, {}
    for spec in RESOURCES:
        if spec.is_template:
            params = _parsed(spec.uri).match(uri)
            if params is not None:
                return spec, params
    raise NotFound(f"unknown resource: {uri}", {"uri": uri})
