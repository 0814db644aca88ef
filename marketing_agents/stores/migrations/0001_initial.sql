-- The seed's tables, plus what one lead's flow needs: triage results, handoffs, engagement plans,
-- the touchpoint outbox and idempotency keys. Every row about a lead goes when the lead goes.

CREATE TABLE leads (
    id              uuid PRIMARY KEY,
    external_id     text UNIQUE,
    email           text NOT NULL,
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    company         text NOT NULL,
    job_title       text NOT NULL,
    industry        text NOT NULL,
    company_size    integer NOT NULL CHECK (company_size > 0),
    country         char(2) NOT NULL,
    source          text NOT NULL,
    consent         jsonb NOT NULL,
    attributes      jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL,
    lead_score      real CHECK (lead_score BETWEEN 0 AND 100),
    triage_category text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_lead_score ON leads (lead_score DESC NULLS LAST);
CREATE INDEX idx_industry ON leads (industry);
CREATE INDEX idx_lead_email ON leads (email);
CREATE INDEX idx_lead_created ON leads (created_at);

CREATE TABLE campaigns (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL,
    channels    text[] NOT NULL,
    objective   text NOT NULL DEFAULT '',
    budget      numeric(14, 2) NOT NULL CHECK (budget >= 0),
    start_date  date NOT NULL,
    end_date    date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (end_date IS NULL OR end_date >= start_date)
);

CREATE TABLE campaign_metrics (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    variant      text NOT NULL DEFAULT 'default',
    channel      text NOT NULL,
    metric_date  date NOT NULL,
    impressions  bigint NOT NULL CHECK (impressions >= 0),
    clicks       bigint NOT NULL CHECK (clicks >= 0 AND clicks <= impressions),
    conversions  bigint NOT NULL CHECK (conversions >= 0 AND conversions <= clicks),
    spend        numeric(14, 2) NOT NULL CHECK (spend >= 0),
    revenue      numeric(14, 2) NOT NULL CHECK (revenue >= 0),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, variant, channel, metric_date)
);
CREATE INDEX idx_campaign_date ON campaign_metrics (campaign_id, metric_date);

-- Interactions are the largest table (the seed: 50M rows): one partition per month, created ahead
-- by mas_ensure_interaction_partitions; a default partition keeps any row outside them.
CREATE TABLE interactions (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    lead_id          uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    type             text NOT NULL,
    channel          text,
    campaign_id      uuid REFERENCES campaigns (id) ON DELETE SET NULL,
    conversation_id  text,
    value            numeric(14, 2),
    occurred_at      timestamptz NOT NULL,
    attributes       jsonb NOT NULL DEFAULT '{}',
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE interactions_default PARTITION OF interactions DEFAULT;
CREATE INDEX idx_conversation ON interactions (conversation_id);
CREATE INDEX idx_interaction_lead ON interactions (lead_id, occurred_at);

-- Creates the monthly partitions covering [from_ts, to_ts]. Rows that already sit in the default
-- partition for such a month are moved into the new partition, so it can be called at any time.
CREATE FUNCTION mas_ensure_interaction_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', from_ts AT TIME ZONE 'UTC')::date;
    last_month  date := date_trunc('month', to_ts AT TIME ZONE 'UTC')::date;
    part_name   text;
    created     integer := 0;
BEGIN
    WHILE month_start <= last_month LOOP
        part_name := format('interactions_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(part_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE interactions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part_name);
            EXECUTE format(
                'WITH moved AS (DELETE FROM interactions_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
                'INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM moved',
                month_start::timestamp AT TIME ZONE 'UTC', (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC', part_name);
            EXECUTE format('ALTER TABLE interactions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                part_name, month_start::timestamp AT TIME ZONE 'UTC', (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        month_start := (month_start + interval '1 month')::date;
    END LOOP;
    RETURN created;
END;
$$;

SELECT mas_ensure_interaction_partitions(now() - interval '12 months', now() + interval '3 months');

CREATE TABLE conversions (
    id           uuid PRIMARY KEY,
    lead_id      uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    campaign_id  uuid REFERENCES campaigns (id) ON DELETE SET NULL,
    channel      text,
    value        numeric(14, 2) NOT NULL DEFAULT 0 CHECK (value >= 0),
    converted_at timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_conversion_lead ON conversions (lead_id);
CREATE INDEX idx_conversion_time ON conversions (converted_at);

CREATE TABLE lead_profiles (
    lead_id                uuid PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
    profile                jsonb NOT NULL DEFAULT '{}',
    engagement_by_channel  jsonb NOT NULL DEFAULT '{}',
    score_history          jsonb NOT NULL DEFAULT '[]',
    last_activity_at       timestamptz,
    recency_days           integer,
    frequency              integer,
    monetary               numeric(14, 2),
    r_score                smallint CHECK (r_score BETWEEN 1 AND 5),
    f_score                smallint CHECK (f_score BETWEEN 1 AND 5),
    m_score                smallint CHECK (m_score BETWEEN 1 AND 5),
    rfm_segment            text,
    rfm_as_of              date,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE triage_results (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id           uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    lead_score        real NOT NULL,
    fit_score         real NOT NULL,
    engagement_score  real NOT NULL,
    triage_category   text NOT NULL,
    route_to          text,
    scoring_model     text NOT NULL,
    result            jsonb NOT NULL,
    triaged_at        timestamptz NOT NULL
);
CREATE INDEX idx_triage_lead ON triage_results (lead_id, triaged_at DESC);

CREATE TABLE handoffs (
    id             uuid PRIMARY KEY,
    lead_id        uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    from_agent     text NOT NULL,
    to_agent       text NOT NULL,
    status         text NOT NULL,
    quality_score  real NOT NULL CHECK (quality_score BETWEEN 0 AND 1),
    quality        jsonb NOT NULL,
    reason         text NOT NULL,
    package        jsonb NOT NULL,
    package_bytes  integer NOT NULL,
    created_at     timestamptz NOT NULL,
    completed_at   timestamptz
);
CREATE INDEX idx_handoff_time ON handoffs (created_at);
CREATE INDEX idx_handoff_lead ON handoffs (lead_id);

CREATE TABLE engagement_plans (
    id          uuid PRIMARY KEY,
    lead_id     uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    handoff_id  uuid NOT NULL REFERENCES handoffs (id) ON DELETE CASCADE,
    sequence    text NOT NULL,
    rationale   text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX idx_plan_lead ON engagement_plans (lead_id, created_at DESC);

-- The outbox: a dispatcher delivers each due touchpoint exactly once.
CREATE TABLE touchpoints (
    id            uuid PRIMARY KEY,
    lead_id       uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    plan_id       uuid NOT NULL REFERENCES engagement_plans (id) ON DELETE CASCADE,
    step          integer NOT NULL,
    channel       text NOT NULL,
    template      text NOT NULL,
    subject       text,
    body          text NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    status        text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    sent_at       timestamptz,
    UNIQUE (plan_id, step)
);
CREATE INDEX idx_touchpoint_due ON touchpoints (scheduled_at) WHERE status = 'pending';
CREATE INDEX idx_touchpoint_lead ON touchpoints (lead_id);

-- The audit log of every agent decision: inputs, output and the reason, in the order they happened.
CREATE TABLE agent_actions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent        text NOT NULL,
    action       text NOT NULL,
    lead_id      uuid REFERENCES leads (id) ON DELETE CASCADE,
    campaign_id  uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    inputs       jsonb NOT NULL DEFAULT '{}',
    output       jsonb NOT NULL DEFAULT '{}',
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_agent_action_lead ON agent_actions (lead_id, created_at);
CREATE INDEX idx_optimization ON agent_actions (campaign_id, created_at) WHERE agent = 'CampaignOptimizer';

-- A retried request with the same Idempotency-Key gets the first answer and stores nothing twice.
CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    lead_id       uuid REFERENCES leads (id) ON DELETE CASCADE,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idx_idempotency_expiry ON idempotency_keys (expires_at);
