-- Delivery state for the touchpoint outbox: a touchpoint is claimed ('sending') by one dispatcher,
-- then 'sent', or back to 'pending' with its next attempt time, or 'failed' after the last attempt.

ALTER TABLE touchpoints ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE touchpoints ADD COLUMN claimed_at timestamptz;
ALTER TABLE touchpoints ADD COLUMN delivery_ref text;
DROP INDEX idx_touchpoint_due;
CREATE INDEX idx_touchpoint_due ON touchpoints (coalesce(next_attempt_at, scheduled_at)) WHERE status = 'pending';
CREATE INDEX idx_touchpoint_sending ON touchpoints (claimed_at) WHERE status = 'sending';
