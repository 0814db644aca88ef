"""Shared builders for the unit tests: leads, triage results and handoff packages without Ray or stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from marketing_agents.actors.handoff import HandoffOrchestrator
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import (
    HandoffPackage,
    Lead,
    NewLead,
    ProvenanceEntry,
    ScoreFactor,
    TriageCategory,
    TriageResult,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def new_lead_fields(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid, unremarkable lead as a client would post them; overrides win."""
    fields: dict[str, Any] = {
        "email": "zelda.quinn@quuxcorp.io",
        "first_name": "Zelda",
        "last_name": "Quinn",
        "company": "Quuxcorp",
        "job_title": "Marketing Manager",
        "industry": "Software",
        "company_size": 120,
        "country": "DE",
        "source": "web_form",
        "consent": {"email": True},
    }
    fields.update(overrides)
    return fields


def build_lead(*, lead_id: UUID | None = None, created_at: datetime = NOW, **overrides: Any) -> Lead:
    """A stored lead, built the way intake builds it: validated as a NewLead first."""
    new_lead = NewLead(**new_lead_fields(**overrides))
    return Lead(**new_lead.model_dump(), id=lead_id or uuid4(), created_at=created_at)


def build_triage(
    lead: Lead,
    category: TriageCategory,
    *,
    triaged_at: datetime = NOW,
    route_to: str | None = "EngagementAgent",
) -> TriageResult:
    """A hand-made, internally consistent triage result with a chosen category (for the engagement agent)."""
    fit, engagement = 60.0, 50.0
    return TriageResult(
        lead_id=lead.id,
        lead_score=round(0.6 * fit + 0.4 * engagement, 1),
        fit_score=fit,
        engagement_score=engagement,
        triage_category=category,
        reason="hand-made for a test",
        factors=[
            ScoreFactor(name="fit", points=fit, explanation="test"),
            ScoreFactor(name="engagement", points=engagement, explanation="test"),
        ],
        route_to=None if category is TriageCategory.DISQUALIFIED else route_to,
        scoring_model="test",
        triaged_at=triaged_at,
    )


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def lead_fields() -> Callable[..., dict[str, Any]]:
    return new_lead_fields


@pytest.fixture
def make_lead() -> Callable[..., Lead]:
    return build_lead


@pytest.fixture
def make_triage() -> Callable[..., TriageResult]:
    return build_triage


@pytest.fixture
def triage_agent() -> TriageAgent:
    return TriageAgent(TriageThresholds())


@pytest.fixture
def orchestrator() -> HandoffOrchestrator:
    # 0.6 is the shipped default of ``handoff_min_quality``.
    return HandoffOrchestrator(min_quality=0.6)


@pytest.fixture
def make_package(orchestrator: HandoffOrchestrator) -> Callable[..., HandoffPackage]:
    def _make(lead: Lead, triage: TriageResult, at: datetime = NOW) -> HandoffPackage:
        provenance = [
            ProvenanceEntry(agent="LeadOrchestrator", action="received", at=lead.created_at),
            ProvenanceEntry(agent="TriageAgent", action="triaged", at=triage.triaged_at),
        ]
        return orchestrator.build_package(lead, triage, provenance, at)

    return _make
