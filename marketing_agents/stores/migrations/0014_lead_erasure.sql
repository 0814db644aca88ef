-- Erasure that leaves nothing and stays done (stores/postgres_erasure.py holds the rules).
--
-- mas_erasure_digest: the one hash of an erased identifier, the SHA-256 of its text in hex. Only
-- digests are kept: what was erased can be recognised when it is presented again, never read back.
--
-- lead_erasures: one row per erased lead, keyed by the digest of its id. PostgreSQL commits first
-- and the Redis keys go after; the row keeps the report, so that a retry after a Redis failure
-- answers it (not 404) while it finishes the Redis part, and completed_at says when that was done.
--
-- erased_identities: the suppression list, the digests of an erased lead's normalised e-mail
-- (trimmed, lower case) and of its external_id (as given). The import refuses to re-create a lead
-- for a suppressed external_id; the API accepts a person's fresh opt-in.
--
-- Handoff packages embed the leads recalled as similar (memory.similar_episodes): the GIN index
-- lets erasure find the packages of other leads that recall the erased one without reading them all.
--
-- api_audit keeps the path of each write, so a lead's id: erasure rewrites the rows already there,
-- and the trigger rewrites the ones written after it (the audit of the erasure itself is written once
-- the answer has gone), each id of an erased lead replaced by 'erased:<digest>'.

CREATE FUNCTION mas_erasure_digest(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT encode(sha256(convert_to(value, 'UTF8')), 'hex') $$;

CREATE TABLE lead_erasures (
    lead_digest   text PRIMARY KEY CHECK (lead_digest ~ '^[0-9a-f]{64}$'),
    removed       jsonb NOT NULL,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);

CREATE TABLE erased_identities (
    kind           text NOT NULL CHECK (kind IN ('email', 'external_id')),
    digest         text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    suppressed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, digest)
);

CREATE INDEX idx_handoff_recalled ON handoffs USING gin ((package -> 'memory' -> 'similar_episodes') jsonb_path_ops);

CREATE FUNCTION mas_redact_erased_ids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    found text;
BEGIN
    FOR found IN
        SELECT DISTINCT lower(m[1])
        FROM regexp_matches(NEW.path, '([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})', 'g') AS m
    LOOP
        IF EXISTS (SELECT 1 FROM lead_erasures WHERE lead_digest = mas_erasure_digest(found)) THEN
            NEW.path := regexp_replace(NEW.path, found, 'erased:' || mas_erasure_digest(found), 'gi');
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER api_audit_redact_erased BEFORE INSERT ON api_audit
    FOR EACH ROW EXECUTE FUNCTION mas_redact_erased_ids();
