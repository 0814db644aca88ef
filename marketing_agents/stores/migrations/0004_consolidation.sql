-- Where the memory consolidator has got to, per step. `position` is the interaction id up to which
-- everything is consolidated; while a run works towards `target`, `cursor` is the last lead done.
-- Both move only in the transaction that commits the work, so a run killed midway resumes there.

CREATE TABLE consolidation_watermarks (
    step        text PRIMARY KEY,
    position    bigint NOT NULL DEFAULT 0,
    target      bigint,
    cursor      uuid,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
