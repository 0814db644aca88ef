"""The knowledge graph's vocabulary: typed nodes, weighted relationships with provenance, paths.

The graph holds domain knowledge (industries, personas, channels, ...), never personal data: a lead
is not a node, so forgetting a lead has nothing to remove here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from marketing_agents.domain.access import Role
from marketing_agents.domain.common import DomainModel

NodeId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[a-z_]+:[A-Za-z0-9_.\-]+$")]


class NodeKind(StrEnum):
    INDUSTRY = "industry"
    PERSONA = "persona"
    PRODUCT = "product"
    CHANNEL = "channel"
    CONTENT = "content"
    CAMPAIGN = "campaign"
    SEGMENT = "segment"


class RelationType(StrEnum):
    """The seed's relationship types."""

    RELATES_TO = "RELATES_TO"
    INFLUENCES = "INFLUENCES"
    CONVERTS_TO = "CONVERTS_TO"
    SIMILAR_TO = "SIMILAR_TO"
    PRECEDES = "PRECEDES"


class GraphNode(DomainModel):
    id: NodeId = Field(description="'<kind>:<key>', e.g. 'industry:software'.")
    kind: NodeKind
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


class GraphEdge(DomainModel):
    source: NodeId
    target: NodeId
    type: RelationType
    weight: float = Field(ge=0.0, le=1.0)
    provenance: str = Field(description="Where the relationship comes from: 'starter-graph', 'consolidator', ...")


class Neighbour(DomainModel):
    node: GraphNode
    distance: int = Field(ge=1)
    weight: float = Field(ge=0.0, le=1.0, description=(
        "The strongest relationship that reaches the node from the ring before it: its rank within its distance."))


class Neighbourhood(DomainModel):
    """The nodes around one node, ring by ring, strongest first: at most ``limit`` of them.

    A neighbourhood grows with every hop (a hub at two hops can reach the whole graph), so it is cut at
    ``limit`` and says so: ``truncated`` means more nodes lie within ``depth`` than were returned.
    """

    node_id: str
    depth: int = Field(ge=1)
    limit: int = Field(ge=1)
    truncated: bool
    neighbours: list[Neighbour]


@dataclass(frozen=True)
class GraphBounds:
    """How far and how wide one caller may read the graph in one request."""

    max_depth: int
    max_nodes: int


# The one table of what each role may traverse. A viewer key is the weakest: it gets the neighbourhoods a
# dashboard shows; machine integrations and operators a hop more; admins the widest. Every traversal is
# also bounded in time (Settings.graph_query_timeout_s), whoever asks.
GRAPH_BOUNDS: dict[Role, GraphBounds] = {
    Role.VIEWER: GraphBounds(max_depth=2, max_nodes=100),
    Role.SERVICE: GraphBounds(max_depth=3, max_nodes=250),
    Role.OPERATOR: GraphBounds(max_depth=3, max_nodes=250),
    Role.ADMIN: GraphBounds(max_depth=4, max_nodes=500),
}


def bounds_text() -> str:
    """The table in words, for the descriptions MCP clients read: 'viewer: 2 hops, 100 nodes; ...'."""
    return "; ".join(f"{role.value}: {b.max_depth} hops, {b.max_nodes} nodes" for role, b in GRAPH_BOUNDS.items())


def graph_bounds(role: str | None) -> GraphBounds:
    """The role's bounds; an unknown or missing role gets the narrowest (a viewer's)."""
    try:
        return GRAPH_BOUNDS[Role(role or "")]
    except ValueError:
        return GRAPH_BOUNDS[Role.VIEWER]


class GraphPath(DomainModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]

    @property
    def length(self) -> int:
        return len(self.edges)


class ChannelRecommendation(DomainModel):
    channel: GraphNode
    score: float = Field(ge=0.0, le=1.0, description="Product of the industry's and the persona's conversion weights.")
    evidence: list[GraphEdge] = Field(description="The CONVERTS_TO edges that justify the score.")


def industry_synonyms(nodes: list[GraphNode]) -> dict[str, str]:
    """Every spelling the graph knows for an industry (its name, key and synonyms) -> the industry key."""
    synonyms: dict[str, str] = {}
    for node in nodes:
        if node.kind is not NodeKind.INDUSTRY:
            continue
        key = node.id.split(":", 1)[1]
        for spelling in [key, key.replace("_", " "), node.name, *node.properties.get("synonyms", [])]:
            synonyms[str(spelling).strip().lower()] = key
    return synonyms
