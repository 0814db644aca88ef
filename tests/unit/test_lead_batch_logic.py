"""Batch triage (one model call, the same judgment as one lead at a time, queue capacity counted across
the batch) and the listing cursor, without servers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from marketing_agents.actors.model_opinion import ModelOpinion
from marketing_agents.actors.routing import Router, RoutingRules
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import Lead, NewLead
from marketing_agents.domain.lead_views import LeadProfile, LeadQuery, LeadSort, SortOrder
from marketing_agents.errors import RequestError
from marketing_agents.stores.postgres_lead_listing import InvalidCursor, decode_cursor, encode_cursor
from tests.support import lead_payload

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def lead(**overrides) -> Lead:
    return Lead(**NewLead(**lead_payload(**overrides)).model_dump(), id=uuid.uuid4(), created_at=NOW)


class CountingModel:
    """A model that knows both ways of being asked, and counts the calls."""

    def __init__(self) -> None:
        self.single_calls = 0
        self.batch_calls: list[int] = []

    def _opinion(self, lead: Lead) -> ModelOpinion:
        return ModelOpinion(probability=min(0.99, lead.company_size / 10_000), version="v0007-test", synthetic=True,
                            factors_for="company_size (+0.3)", factors_against="")

    def __call__(self, lead, enrichment):
        self.single_calls += 1
        return self._opinion(lead)

    def many(self, leads):
        self.batch_calls.append(len(leads))
        return [self._opinion(lead) for lead, _ in leads]


def test_a_batch_is_scored_in_one_model_call_and_judged_as_one_lead_at_a_time():
    model = CountingModel()
    agent = TriageAgent(TriageThresholds(), model=model)
    leads = [lead(email=f"p{i}@acme-robotics.com", company_size=100 * (i + 1), job_title=title, consent=consent)
             for i, (title, consent) in enumerate([("VP Marketing", {"email": True}), ("Intern", {}),
                                                   ("Director of Sales", {"email": True, "call": True})])]
    together = agent.triage_many([(lead, agent.enricher.enrich(lead)) for lead in leads], NOW)
    assert model.batch_calls == [3] and model.single_calls == 0
    one_by_one = [agent.triage(lead, NOW) for lead in leads]
    assert together == one_by_one
    assert together[1].triage_category == "disqualified" and together[1].route_to is None
    assert agent.triage_many([], NOW) == []


def test_without_a_batch_method_the_model_is_asked_per_lead():
    calls = []
    agent = TriageAgent(TriageThresholds(), model=lambda lead, e: calls.append(lead.id))
    leads = [lead(email=f"q{i}@acme-robotics.com") for i in range(3)]
    results = agent.triage_many([(lead, agent.enricher.enrich(lead)) for lead in leads], NOW)
    assert calls == [lead.id for lead in leads] and all(r.scoring_model == "rules-v1" for r in results)


def test_a_batch_cannot_overfill_a_queue_with_a_capacity():
    rules = RoutingRules.load()
    capacity = next(r.capacity for r in rules.rules if r.route_to == "EnterpriseSales")
    agent = TriageAgent(TriageThresholds(), router=Router(rules, lambda: {"EnterpriseSales": capacity - 2}))
    enterprise = [lead(email=f"cxo{i}@acme-robotics.com", company_size=5000, job_title="Chief Revenue Officer")
                  for i in range(4)]
    routes = [r.route_to for r in agent.triage_many([(x, agent.enricher.enrich(x)) for x in enterprise], NOW)]
    assert routes == ["EnterpriseSales", "EnterpriseSales", "EngagementAgent", "EngagementAgent"]
    # The agent's own router is left as it was: the next batch counts from the stored loads again.
    assert agent.router.queue_loads() == {"EnterpriseSales": capacity - 2}


@pytest.mark.parametrize("sort, key", [(LeadSort.CREATED_AT, datetime(2026, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)),
                                       (LeadSort.LEAD_SCORE, 71.30000305175781), (LeadSort.LEAD_SCORE, -1.0)])
def test_a_cursor_round_trips_its_sort_key_exactly(sort, key):
    lead_id = uuid.uuid4()
    cursor = encode_cursor(sort, SortOrder.ASC, key, lead_id)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, sort, SortOrder.ASC) == (key, lead_id)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "", "e30", "eyJzIjoxfQ", "%%%",
                                    encode_cursor(LeadSort.LEAD_SCORE, SortOrder.DESC, 50.0, uuid.uuid4()),
                                    encode_cursor(LeadSort.CREATED_AT, SortOrder.ASC, NOW, uuid.uuid4())])
def test_a_cursor_the_api_did_not_give_out_for_this_sort_and_order_is_a_400(cursor):
    with pytest.raises(InvalidCursor) as raised:
        decode_cursor(cursor, LeadSort.CREATED_AT, SortOrder.DESC)
    assert isinstance(raised.value, RequestError) and raised.value.status_code == 400


def test_a_query_refuses_a_reversed_score_range_and_a_time_without_zone():
    with pytest.raises(ValueError, match="min_score"):
        LeadQuery(min_score=80, max_score=20)
    with pytest.raises(ValueError, match="time zone"):
        LeadQuery(created_after=datetime(2026, 1, 1))


def test_a_profile_reads_its_row_and_an_empty_one():
    lead_id = uuid.uuid4()
    empty = LeadProfile.from_row(lead_id, None)
    assert empty.rfm is None and empty.behaviour.score_history == [] and empty.profile == {}
    row = {"profile": {"segment": "smb"}, "engagement_by_channel": {"email": 3}, "last_activity_at": NOW,
           "score_history": [{"lead_score": 80.0, "at": "2026-11-25T12:00:00+00:00"},
                             {"lead_score": 60.0, "at": "2026-11-01T12:00:00+00:00"}],
           "recency_days": 3, "frequency": 2, "monetary": 240, "r_score": 5, "f_score": 4, "m_score": 3,
           "rfm_segment": "Champions", "rfm_as_of": NOW.date(), "updated_at": NOW}
    profile = LeadProfile.from_row(lead_id, row)
    assert [p.lead_score for p in profile.behaviour.score_history] == [60.0, 80.0]
    assert profile.rfm.rfm_segment == "Champions" and profile.behaviour.engagement_by_channel == {"email": 3}
