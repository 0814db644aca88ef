"""The errors our code raises on purpose, and how each one reaches a client.

    MarketingAgentsError                 status  code
    ├── ConfigError                      500     config_error
    ├── StorageError                     503     storage_unavailable  (driver errors, translated at the adapter)
    │   └── MigrationError               500     migration_failed
    ├── AgentError                       502     agent_failed
    └── RequestError                     400     bad_request
        ├── NotFound                     404     not_found
        ├── Conflict                     409     conflict
        │   └── LeadExists               409     lead_exists
        └── IdempotencyKeyReused         422     idempotency_key_reused

Every error carries a machine-readable ``code``, a message for people and ``details`` (JSON-safe), and
passes all of them to ``super().__init__`` so that it survives pickling between Ray processes: an
error raised in one Serve replica arrives in the caller as the same type.
"""

from __future__ import annotations

from typing import Any


class MarketingAgentsError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    retry_after_s: int | None = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message, details)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(MarketingAgentsError):
    code = "config_error"


class StorageError(MarketingAgentsError):
    status_code = 503
    code = "storage_unavailable"
    retry_after_s: int | None = 5


class MigrationError(StorageError):
    status_code = 500
    code = "migration_failed"
    retry_after_s = None


class AgentError(MarketingAgentsError):
    status_code = 502
    code = "agent_failed"


class RequestError(MarketingAgentsError):
    status_code = 400
    code = "bad_request"


class NotFound(RequestError):
    status_code = 404
    code = "not_found"


class Conflict(RequestError):
    status_code = 409
    code = "conflict"


class LeadExists(Conflict):
    code = "lead_exists"


class IdempotencyKeyReused(RequestError):
    status_code = 422
    code = "idempotency_key_reused"
