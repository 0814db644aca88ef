"""A handoff: the context one agent passes to the next, and the record that it happened."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field, SerializerFunctionWrapHandler, field_serializer, field_validator

from marketing_agents.domain.attribution import CampaignOffer
from marketing_agents.domain.common import DomainModel, Probability, Text
from marketing_agents.domain.lead import Lead
from marketing_agents.domain.recall import MemoryRecall
from marketing_agents.domain.triage import TriageResult

HANDOFF_SCHEMA_VERSION = 1


class ProvenanceEntry(DomainModel):
    """Who touched the context, doing what, when: the receiving agent can tell where each fact came from."""

    agent: str
    action: str
    at: datetime


class HandoffQuality(DomainModel):
    """Each part reported on its own so that a rejected package says what was wrong with it."""

    completeness: Probability
    freshness: Probability
    consistency: Probability
    score: Probability
    problems: list[str] = Field(default_factory=list)


class HandoffPackage(DomainModel):
    handoff_id: UUID
    schema_version: int = HANDOFF_SCHEMA_VERSION
    from_agent: str
    to_agent: str
    lead: Lead
    triage: TriageResult
    memory: MemoryRecall | None = Field(default=None, description="What the memory tiers recalled about the lead; "
                                                                 "None when they were not asked.")
    campaign: CampaignOffer | None = Field(default=None, description="The campaign the lead came from, with the "
                                                                    "allocation the engagement agent draws its arm by.")
    provenance: list[ProvenanceEntry]
    created_at: datetime

    # A package without a recall has always been stored (and sent) with ``"memory": {}``: it keeps that
    # shape, so that handoffs stored before the recall was typed load unchanged, and schema_version stays.
    @field_validator("memory", mode="before")
    @classmethod
    def _no_recall_from_json(cls, value: Any) -> Any:
        return None if isinstance(value, dict) and not value else value

    @field_serializer("memory", mode="wrap")
    def _no_recall_as_json(self, memory: MemoryRecall | None, handler: SerializerFunctionWrapHandler) -> Any:
        return {} if memory is None else handler(memory)


class HandoffStatus(StrEnum):
    PENDING = "pending"  # stored and being sent; a process that dies here leaves it for recovery
    COMPLETED = "completed"
    REJECTED = "rejected"  # the package was not good enough to send
    DEAD_LETTERED = "dead_lettered"  # the receiver kept failing


class HandoffRecord(DomainModel):
    """What is persisted about a handoff; the package itself travels through the object store."""

    id: UUID
    lead_id: UUID
    from_agent: str
    to_agent: str
    status: HandoffStatus
    quality: HandoffQuality
    reason: Text
    package_bytes: int = Field(ge=0, description="Size of the package as JSON; above 100 KiB it travels by reference "
                                                 "through the object store.")
    created_at: datetime
    completed_at: datetime | None = None
