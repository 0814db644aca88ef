-- Access control: API keys and the audit of every write made with one.
--
-- api_keys: only the SHA-256 of a key is stored (hex), with a short prefix to recognise it by. A key
-- is never deleted, only revoked (revoked_at), so that the audit always names an existing key. The
-- bootstrap admin key (MAS_ADMIN_API_KEY) has a fixed id; each API gateway replica upserts its row.
-- rate_limit_per_minute NULL: the role's or the system default.
--
-- api_audit: one row per write request (any method but GET, HEAD, OPTIONS) that a key was
-- authenticated for, with the answer's status.

CREATE TABLE api_keys (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    role                  text NOT NULL CHECK (role IN ('admin', 'operator', 'service', 'viewer')),
    key_hash              text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    prefix                text NOT NULL,
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            uuid REFERENCES api_keys (id),
    revoked_at            timestamptz
);

CREATE TABLE api_audit (
    id      bigserial PRIMARY KEY,
    key_id  uuid NOT NULL REFERENCES api_keys (id),
    method  text NOT NULL,
    path    text NOT NULL,
    status  integer NOT NULL,
    at      timestamptz NOT NULL
);
CREATE INDEX idx_api_audit_key ON api_audit (key_id, at);
