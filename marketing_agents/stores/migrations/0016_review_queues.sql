-- People in the loop. A lead waiting for a person names its queue and since when it waits; it leaves
-- the queue (both columns NULL) through a decision. A claim says who works the lead now. A merged lead's
-- id points at the lead it went into, so that a client holding the old id learns where it went.

ALTER TABLE leads ADD COLUMN review_queue text, ADD COLUMN review_since timestamptz;

-- Leads already waiting: the queue their latest triage routed them to, or HumanReview when that was
-- the engagement agent (a rejected or dead-lettered handoff).
UPDATE leads l SET review_queue = coalesce(nullif(t.route_to, 'EngagementAgent'), 'HumanReview'),
                   review_since = l.updated_at
FROM (SELECT DISTINCT ON (lead_id) lead_id, route_to FROM triage_results
      ORDER BY lead_id, triaged_at DESC, id DESC) t
WHERE l.status = 'needs_review' AND t.lead_id = l.id;
UPDATE leads SET review_queue = 'HumanReview', review_since = updated_at
WHERE status = 'needs_review' AND review_queue IS NULL;

-- One rule, held here for every path that changes a status: a lead waits in a queue exactly while it
-- needs review. Whoever puts it in review names the queue; leaving review (a decision, a conversion
-- reported meanwhile) takes it out of its queue and ends any claim on it.
ALTER TABLE leads ADD CONSTRAINT lead_in_review_has_queue CHECK (status <> 'needs_review' OR review_queue IS NOT NULL);

CREATE FUNCTION mas_leave_review() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'needs_review' THEN
        NEW.review_queue := NULL;
        NEW.review_since := NULL;
    ELSIF NEW.review_queue IS DISTINCT FROM OLD.review_queue OR OLD.status <> 'needs_review' THEN
        NEW.review_since := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER lead_leaves_review BEFORE UPDATE OF status, review_queue ON leads
    FOR EACH ROW EXECUTE FUNCTION mas_leave_review();

CREATE FUNCTION mas_end_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM review_claims WHERE lead_id = NEW.id;
    RETURN NULL;
END $$;

-- A queue's leads, oldest first, and its count.
CREATE INDEX idx_lead_review_queue ON leads (review_queue, created_at, id) WHERE review_queue IS NOT NULL;

CREATE TABLE review_claims (
    lead_id     uuid PRIMARY KEY REFERENCES leads (id) ON DELETE CASCADE,
    key_id      uuid NOT NULL,
    key_name    text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE lead_merges (
    merged_id   uuid PRIMARY KEY,
    into_id     uuid NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    merged_by   text NOT NULL,
    merged_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER lead_claim_ends AFTER UPDATE OF status, review_queue ON leads
    FOR EACH ROW WHEN (NEW.review_queue IS DISTINCT FROM OLD.review_queue OR NEW.status <> OLD.status)
    EXECUTE FUNCTION mas_end_claim();
