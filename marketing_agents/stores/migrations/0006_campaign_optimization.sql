-- The campaign optimizer's state.
--
-- optimizations: every decision stored (a dry run stores nothing), with its lifecycle:
--   proposed    escalated; waits for a person's approval, which applies it unchanged
--   applied     in effect: the campaign's allocation is (or was last set to) its proposed one
--   superseded  a later optimization changed the allocation, or a newer proposal replaced this one
--   rolled_back undone by the rollback optimization named in rolled_back_by
-- A rollback is itself an applied optimization (rollback_of), so it is audited and can be undone.
--
-- campaign_allocations: the budget split each campaign runs on now, one row per campaign, written
-- only in the transaction that stores the optimization that set it. Before the first decision a
-- campaign runs on an equal split over its arms; that split is written (optimization_id NULL) with
-- the first stored decision, so that every decision is checked against the allocation it was made from.
--
-- escalations: what the optimizer asks people to look at, open until acknowledged.

CREATE TABLE optimizations (
    id              uuid PRIMARY KEY,
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('proposed', 'applied', 'superseded', 'rolled_back')),
    decision        jsonb NOT NULL,
    as_of           date,
    rollback_of     uuid REFERENCES optimizations (id) ON DELETE CASCADE,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    applied_at      timestamptz,
    applied_by      text,
    superseded_at   timestamptz,
    superseded_by   uuid REFERENCES optimizations (id) ON DELETE SET NULL,
    rolled_back_at  timestamptz,
    rolled_back_by  uuid REFERENCES optimizations (id) ON DELETE SET NULL,
    CHECK ((status = 'proposed') = (applied_at IS NULL) OR status = 'superseded'),
    CHECK ((status = 'rolled_back') = (rolled_back_at IS NOT NULL))
);
CREATE INDEX idx_optimization_campaign ON optimizations (campaign_id, created_at DESC);
CREATE INDEX idx_optimization_proposed ON optimizations (campaign_id) WHERE status = 'proposed';

CREATE TABLE campaign_allocations (
    campaign_id      uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    shares           jsonb NOT NULL,
    paused           text[] NOT NULL DEFAULT '{}',
    optimization_id  uuid REFERENCES optimizations (id) ON DELETE SET NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN campaign_allocations.shares IS 'arm key (variant/channel) -> share of the budget; sums to 1';
COMMENT ON COLUMN campaign_allocations.paused IS 'paused arms; each holds share 0';

CREATE TABLE escalations (
    id               uuid PRIMARY KEY,
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    optimization_id  uuid NOT NULL REFERENCES optimizations (id) ON DELETE CASCADE,
    position         integer NOT NULL DEFAULT 0,  -- its place among its decision's escalations
    kind             text NOT NULL,
    arm              text,
    threshold        double precision NOT NULL,
    observed         double precision NOT NULL,
    message          text NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    note             text,
    CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL))
);
CREATE INDEX idx_escalation_open ON escalations (created_at) WHERE status = 'open';
CREATE INDEX idx_escalation_campaign ON escalations (campaign_id, created_at);
