-- Each claim of a touchpoint gets its own id. A dispatcher sends a touchpoint only while the row still
-- carries the id of its own claim: once its lease ran out and another dispatcher claimed the row again,
-- the first one can tell that the touchpoint is no longer its to send.
ALTER TABLE touchpoints ADD COLUMN claim_id uuid;
