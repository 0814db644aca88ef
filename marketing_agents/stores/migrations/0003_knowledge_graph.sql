-- The embedded knowledge graph: nodes and weighted, typed relationships with provenance, traversed
-- with recursive queries. Production uses Neo4j through the same port.

CREATE TABLE kg_nodes (
    id          text PRIMARY KEY,
    kind        text NOT NULL,
    name        text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_kg_node_kind ON kg_nodes (kind);

CREATE TABLE kg_edges (
    source      text NOT NULL REFERENCES kg_nodes (id) ON DELETE CASCADE,
    target      text NOT NULL REFERENCES kg_nodes (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('RELATES_TO', 'INFLUENCES', 'CONVERTS_TO', 'SIMILAR_TO', 'PRECEDES')),
    weight      double precision NOT NULL CHECK (weight BETWEEN 0 AND 1),
    provenance  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, target, type)
);
CREATE INDEX idx_kg_edge_target ON kg_edges (target, type);
