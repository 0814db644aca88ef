"""The domain models every part of the system exchanges: the contract between agents, stores and API."""

from marketing_agents.domain.campaign import Campaign, CampaignMetrics, CampaignStatus
from marketing_agents.domain.common import Channel, DomainModel, utc_now
from marketing_agents.domain.engagement import EngagementPlan, NextAction, Touchpoint, TouchpointStatus
from marketing_agents.domain.handoff import (
    HANDOFF_SCHEMA_VERSION,
    HandoffPackage,
    HandoffQuality,
    HandoffRecord,
    HandoffStatus,
    ProvenanceEntry,
)
from marketing_agents.domain.interaction import Interaction, InteractionType
from marketing_agents.domain.lead import Consent, Lead, LeadStatus, NewLead
from marketing_agents.domain.results import (
    LeadDetail,
    LeadProcessingResult,
    UnsubscribeRequest,
    UnsubscribeResult,
)
from marketing_agents.domain.triage import ScoreFactor, TriageCategory, TriageResult

__all__ = [
    "HANDOFF_SCHEMA_VERSION",
    "Campaign",
    "CampaignMetrics",
    "CampaignStatus",
    "Channel",
    "Consent",
    "DomainModel",
    "EngagementPlan",
    "HandoffPackage",
    "HandoffQuality",
    "HandoffRecord",
    "HandoffStatus",
    "Interaction",
    "InteractionType",
    "Lead",
    "LeadDetail",
    "LeadProcessingResult",
    "LeadStatus",
    "NewLead",
    "NextAction",
    "ProvenanceEntry",
    "ScoreFactor",
    "Touchpoint",
    "TouchpointStatus",
    "TriageCategory",
    "TriageResult",
    "UnsubscribeRequest",
    "UnsubscribeResult",
    "utc_now",
]
