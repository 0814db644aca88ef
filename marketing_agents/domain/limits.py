"""Request size limits that more than one door checks: the REST routes, the MCP tools, the file import.

Each number lives here once because a client that learns a limit at one door should meet the same
limit at the others, and a change should not leave one door behind. The request body limit is not
here: it is an operator setting (``Settings.max_body_bytes``, 1 MiB by default).
"""

from __future__ import annotations

from datetime import timedelta

# Clocks disagree a little: a time a client sends (an interaction's occurred_at, a lead's captured_at)
# further in the future than this is a client's bug.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# A lead's source may hand it over late (an event scanner, a form tool's daily export), not months late:
# captured_at is at most this far back.
MAX_CAPTURE_AGE = timedelta(days=90)

# Idempotency keys: the ``Idempotency-Key`` header of ``POST /api/v1/leads`` and ``POST /api/v1/leads:batch``
# and the ``idempotency_key`` of the MCP tool ``triage_lead``. Printable ASCII without spaces, so a key
# survives any HTTP stack and log line unchanged.
MAX_IDEMPOTENCY_KEY_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"
# The MCP tool ``triage_leads`` derives one key per lead, '<prefix>-<index>'; a prefix of at most 200
# characters keeps each derived key one that ``triage_lead`` itself would accept.
MAX_IDEMPOTENCY_KEY_PREFIX_LENGTH = 200

# Items per request.
MAX_LEAD_BATCH = 1000  # POST /api/v1/leads:batch
MAX_INTERACTION_BATCH = 1000  # POST /api/v1/interactions with {"interactions": [...]}
MAX_SCORE_BATCH = 1000  # MCP score_leads: new leads and lead ids together
MAX_TRIAGE_BATCH = 100  # MCP triage_leads: each lead goes through the whole lead flow

# Identifiers from other systems, checked on the models and again by the interaction file import (which
# reads them from cells, not models): a lead's external id (its id in the client's CRM) and the id of
# the conversation an interaction belongs to.
MAX_EXTERNAL_ID_LENGTH = 128
MAX_CONVERSATION_ID_LENGTH = 128

# Numbers a client sends: PostgreSQL's bigint (and so every id and count we store) stops at 64 bits, and
# an offset makes the database walk past that many rows before the first one it answers: REST
# ?offset= and the MCP resources' offset stop here (a cursor, where a list has one, pages further).
INT64_MAX = 2**63 - 1
MAX_PAGE_OFFSET = 100_000
