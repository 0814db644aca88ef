-- Handoffs are written before they are sent ('pending', with a lease), so that the death of any
-- process mid-handoff leaves a row that recovery finds and finishes: once the lease runs out, another
-- orchestrator claims it, sends the stored package again and completes or dead-letters it.
-- At most one engagement plan per handoff: a late original and a recovery cannot both engage a lead.

ALTER TABLE handoffs ADD COLUMN lease_until timestamptz;
ALTER TABLE handoffs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE handoffs ADD COLUMN last_error text;
CREATE INDEX idx_handoff_pending ON handoffs (lease_until) WHERE status = 'pending';
CREATE UNIQUE INDEX idx_plan_handoff ON engagement_plans (handoff_id);
