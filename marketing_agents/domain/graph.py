"""The knowledge graph's vocabulary: typed nodes, weighted relationships with provenance, paths.

The graph holds domain knowledge (industries, personas, channels, ...), never personal data: a lead
is not a node, so forgetting a lead has nothing to remove here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

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
