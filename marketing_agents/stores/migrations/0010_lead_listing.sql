-- GET /api/v1/leads pages with a cursor (the sort key and the id that breaks its ties), walking one of
-- these indexes in either direction instead of sorting the table for every page. A lead without a
-- score (an imported placeholder) sorts as -1, below every scored lead.
CREATE INDEX idx_lead_created_id ON leads (created_at, id);
CREATE INDEX idx_lead_score_id ON leads ((coalesce(lead_score, -1)), id);
-- (created_at, id) serves everything the single-column index did.
DROP INDEX IF EXISTS idx_lead_created;
