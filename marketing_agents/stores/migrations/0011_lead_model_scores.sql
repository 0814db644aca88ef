-- Batch scoring writes each lead's model score beside the triage score, with the version that made it:
-- a resubmitted job skips the leads this version has already scored.
ALTER TABLE leads ADD COLUMN model_probability real CHECK (model_probability BETWEEN 0 AND 1);
ALTER TABLE leads ADD COLUMN model_version text;
ALTER TABLE leads ADD COLUMN model_scored_at timestamptz;
