-- Attribution: a lead may come from a campaign; the engagement agent gives it one of the campaign's arms
-- (a variant on a channel), which its plan and touchpoints carry; interactions and conversions are
-- attributed to the campaign and arm through their touchpoint or their lead.
--
-- campaigns.variants: the variants a campaign tests; its arms are variants x channels.
-- leads.captured_at: when the lead's source captured it (a form tool, an event scanner uploading the
--   day's scans), when that is earlier than its arrival; a campaign's leads are counted by that day.
ALTER TABLE campaigns ADD COLUMN variants text[] NOT NULL DEFAULT '{default}';
ALTER TABLE leads ADD COLUMN campaign_id uuid REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE leads ADD COLUMN captured_at timestamptz;
CREATE INDEX idx_lead_campaign ON leads (campaign_id) WHERE campaign_id IS NOT NULL;

ALTER TABLE engagement_plans ADD COLUMN campaign_id uuid REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE engagement_plans ADD COLUMN arm text;
CREATE INDEX idx_plan_campaign ON engagement_plans (campaign_id) WHERE campaign_id IS NOT NULL;

ALTER TABLE touchpoints ADD COLUMN campaign_id uuid REFERENCES campaigns (id) ON DELETE SET NULL;
ALTER TABLE touchpoints ADD COLUMN arm text;
CREATE INDEX idx_touchpoint_campaign ON touchpoints (campaign_id) WHERE campaign_id IS NOT NULL;

ALTER TABLE interactions ADD COLUMN touchpoint_id uuid;
ALTER TABLE interactions ADD COLUMN arm text;
CREATE INDEX idx_interaction_campaign ON interactions (campaign_id) WHERE campaign_id IS NOT NULL;

ALTER TABLE conversions ADD COLUMN arm text;
CREATE INDEX idx_conversion_campaign ON conversions (campaign_id) WHERE campaign_id IS NOT NULL;

-- What the system itself observed of each campaign, per arm and per day the leads were captured
-- (their cohort), counted from its own rows and rewritten whole by each refresh (the consolidator's,
-- and the optimizer's before it decides). arm NULL: the campaign's leads that got no arm (no arm on a
-- channel they consented to, or routed to people) and interactions attributed to the campaign alone.
CREATE TABLE campaign_observed (
    campaign_id       uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    arm               text,
    cohort_date       date NOT NULL,
    leads             integer NOT NULL,
    leads_engaged     integer NOT NULL,
    leads_converted   integer NOT NULL,
    touchpoints_sent  integer NOT NULL,
    opens             integer NOT NULL,
    clicks            integer NOT NULL,
    replies           integer NOT NULL,
    conversions       integer NOT NULL,
    revenue           numeric(14, 2) NOT NULL,
    refreshed_at      timestamptz NOT NULL
);
CREATE INDEX idx_campaign_observed ON campaign_observed (campaign_id, cohort_date);
