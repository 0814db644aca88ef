-- Episodic memory: episodes with an embedding of their situation for similarity search (pgvector,
-- HNSW, cosine), and the success patterns, best practices and lessons distilled from them.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE episodes (
    id             uuid PRIMARY KEY,
    lead_id        uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    segment        text NOT NULL,
    context        jsonb NOT NULL,
    actions        jsonb NOT NULL,
    outcome        text NOT NULL,
    outcome_value  double precision NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    embedding      vector(32) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX idx_episode_embedding ON episodes USING hnsw (embedding vector_cosine_ops);
CREATE INDEX idx_episode_outcome ON episodes (outcome);
CREATE INDEX idx_episode_lead ON episodes (lead_id);

CREATE TABLE episodic_insights (
    kind        text NOT NULL CHECK (kind IN ('success_pattern', 'best_practice', 'lesson')),
    segment     text NOT NULL,
    title       text NOT NULL,
    description text NOT NULL,
    support     integer NOT NULL CHECK (support >= 0),
    confidence  real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    evidence    jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, segment, title)
);
