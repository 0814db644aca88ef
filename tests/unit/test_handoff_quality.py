"""HandoffOrchestrator: a package carries its own provenance, is scored on its parts, and a bad one is held."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from marketing_agents.actors.handoff import HandoffOrchestrator
from marketing_agents.domain import HandoffStatus, TriageCategory

GOOD_LEAD = dict(
    job_title="Chief Technology Officer", company_size=800, industry="Software",
    email="cto@quuxcorp.io", source="demo_request", consent={"email": True, "call": True},
)
WEAK_LEAD = dict(
    job_title="Student", company_size=3, industry="Agriculture",
    email="zelda@gmail.com", source="flyer", consent={"email": True},
)


@pytest.fixture
def fresh(triage_agent, make_lead, make_package, now):
    """A lead, its triage and the package built from them, all at ``now``."""
    lead = make_lead(**GOOD_LEAD)
    triage = triage_agent.triage(lead, now)
    return lead, triage, make_package(lead, triage, now)


def new_problems(bad, good):
    return [p for p in bad.problems if p not in good.problems]


# --- build_package -----------------------------------------------------------------------------


def test_package_goes_where_triage_routed_it_and_records_provenance(fresh, now):
    lead, triage, package = fresh

    assert package.to_agent == triage.route_to
    assert package.lead == lead
    assert package.triage == triage
    assert package.created_at == now
    assert [(e.agent, e.action) for e in package.provenance[:2]] == [
        ("LeadOrchestrator", "received"), ("TriageAgent", "triaged"),
    ]
    last = package.provenance[-1]
    assert last.agent == "HandoffOrchestrator"
    assert last.at == now


def test_package_keeps_a_given_handoff_id_and_makes_new_ones_otherwise(orchestrator, fresh, now):
    lead, triage, _ = fresh
    given = uuid4()

    assert orchestrator.build_package(lead, triage, [], now, handoff_id=given).handoff_id == given
    assert (orchestrator.build_package(lead, triage, [], now).handoff_id
            != orchestrator.build_package(lead, triage, [], now).handoff_id)


def test_building_a_package_does_not_change_the_callers_provenance(orchestrator, fresh, now):
    lead, triage, package = fresh
    provenance = list(package.provenance[:2])

    orchestrator.build_package(lead, triage, provenance, now)

    assert len(provenance) == 2


# --- assess: a good package --------------------------------------------------------------------


def test_a_fresh_consistent_package_scores_well_and_is_accepted(orchestrator, fresh, now):
    _, _, package = fresh

    quality = orchestrator.assess(package, now)

    assert quality.score >= 0.6
    assert orchestrator.accepts(quality)
    assert quality.problems == []
    assert quality.completeness == quality.freshness == quality.consistency == quality.score == 1.0


@pytest.mark.parametrize("age", [timedelta(0), timedelta(seconds=30), timedelta(minutes=2)])
def test_a_triage_minutes_old_is_fully_fresh(age, triage_agent, orchestrator, make_lead, make_package, now):
    lead = make_lead(**GOOD_LEAD)
    package = make_package(lead, triage_agent.triage(lead, now - age), now)

    assert orchestrator.assess(package, now).freshness == 1.0


# --- assess: freshness -------------------------------------------------------------------------


def test_a_stale_triage_lowers_freshness_and_says_how_old_it_is(triage_agent, orchestrator, make_lead,
                                                                   make_package, fresh, now):
    lead = make_lead(**GOOD_LEAD)
    package = make_package(lead, triage_agent.triage(lead, now - timedelta(hours=23)), now)
    good = orchestrator.assess(fresh[2], now)

    quality = orchestrator.assess(package, now)

    assert quality.freshness < 0.1
    assert quality.score < good.score
    assert quality.completeness == good.completeness
    assert quality.consistency == good.consistency
    (problem,) = new_problems(quality, good)
    assert str(23 * 3600) in problem
    assert "old" in problem


def test_freshness_falls_with_age_and_reaches_zero_after_a_day(triage_agent, orchestrator, make_lead,
                                                                make_package, now):
    lead = make_lead(**GOOD_LEAD)
    ages = [timedelta(hours=h) for h in (1, 6, 12, 18, 23)] + [timedelta(hours=25), timedelta(days=7)]

    freshness = [
        orchestrator.assess(make_package(lead, triage_agent.triage(lead, now - age), now), now).freshness
        for age in ages
    ]

    assert all(0.0 <= f < 1.0 for f in freshness)
    assert freshness[:5] == sorted(freshness[:5], reverse=True)
    assert len(set(freshness[:5])) == 5
    assert freshness[5:] == [0.0, 0.0]


# --- assess: consistency -----------------------------------------------------------------------


def test_a_triage_about_another_lead_is_inconsistent(triage_agent, orchestrator, make_lead, make_package,
                                                     fresh, now):
    lead, triage, good_package = fresh
    other = make_lead(**GOOD_LEAD)
    assert other.id != lead.id
    good = orchestrator.assess(good_package, now)

    quality = orchestrator.assess(make_package(other, triage, now), now)

    assert quality.consistency < 1.0
    assert quality.score < good.score
    (problem,) = new_problems(quality, good)
    assert "inconsistent" in problem
    assert "lead" in problem


@pytest.mark.parametrize("to_agent", ["CampaignOptimizer", "", "engagementagent"])
def test_a_package_sent_elsewhere_than_triage_routed_it_is_inconsistent(to_agent, orchestrator, fresh, now):
    _, _, package = fresh
    good = orchestrator.assess(package, now)

    package.to_agent = to_agent
    quality = orchestrator.assess(package, now)

    assert quality.consistency < 1.0
    assert quality.score < good.score
    (problem,) = new_problems(quality, good)
    assert "inconsistent" in problem
    assert "rout" in problem


def test_a_lead_score_that_does_not_add_up_is_inconsistent(orchestrator, fresh, now):
    _, triage, package = fresh
    good = orchestrator.assess(package, now)

    tampered = triage.model_copy(deep=True)
    tampered.lead_score = min(100.0, triage.lead_score + 10) if triage.lead_score < 90 else triage.lead_score - 10
    package.triage = tampered
    quality = orchestrator.assess(package, now)

    assert quality.consistency < 1.0
    (problem,) = new_problems(quality, good)
    assert "lead_score" in problem


def test_several_inconsistencies_lower_consistency_further(triage_agent, orchestrator, make_lead,
                                                           make_package, fresh, now):
    lead, triage, _ = fresh
    one = make_package(make_lead(**GOOD_LEAD), triage, now)
    two = make_package(make_lead(**GOOD_LEAD), triage, now)
    two.to_agent = "CampaignOptimizer"

    assert orchestrator.assess(two, now).consistency < orchestrator.assess(one, now).consistency < 1.0


# --- assess: a disqualified lead ---------------------------------------------------------------


@pytest.fixture
def disqualified_package(triage_agent, make_lead, make_package, now):
    lead = make_lead(**WEAK_LEAD)
    triage = triage_agent.triage(lead, now)
    assert triage.triage_category is TriageCategory.DISQUALIFIED
    return make_package(lead, triage, now)


def test_a_package_from_a_disqualified_triage_is_flagged_inconsistent(orchestrator, disqualified_package, now):
    quality = orchestrator.assess(disqualified_package, now)

    assert quality.consistency < 1.0
    assert any("disqualified" in p for p in quality.problems)
    # Nobody was routed to, so the package has nowhere consistent to go either.
    assert disqualified_package.to_agent == ""
    assert any("rout" in p for p in quality.problems)


def test_a_package_from_a_disqualified_triage_is_rejected(orchestrator, disqualified_package, now):
    quality = orchestrator.assess(disqualified_package, now)

    assert not orchestrator.accepts(quality)


def test_a_lead_without_consent_is_incomplete(triage_agent, orchestrator, make_lead, make_package, fresh, now):
    lead = make_lead(**{**GOOD_LEAD, "consent": {}})
    good = orchestrator.assess(fresh[2], now)

    quality = orchestrator.assess(make_package(lead, triage_agent.triage(lead, now), now), now)

    assert quality.completeness < 1.0
    assert quality.score < good.score
    assert any("consent" in p for p in quality.problems)


def test_a_triage_without_factors_is_incomplete(orchestrator, fresh, now):
    _, triage, package = fresh
    good = orchestrator.assess(package, now)

    package.triage = triage.model_copy(update={"factors": []})
    quality = orchestrator.assess(package, now)

    assert quality.completeness < 1.0
    (problem,) = new_problems(quality, good)
    assert "factors" in problem


def test_quality_parts_are_probabilities_even_for_a_very_bad_package(triage_agent, orchestrator, make_lead,
                                                                     make_package, now):
    lead = make_lead(**{**WEAK_LEAD, "consent": {}})
    triage = triage_agent.triage(make_lead(**WEAK_LEAD), now - timedelta(days=3))
    package = make_package(lead, triage.model_copy(update={"factors": []}), now)

    quality = orchestrator.assess(package, now)

    for part in (quality.completeness, quality.freshness, quality.consistency, quality.score):
        assert 0.0 <= part <= 1.0
    assert quality.score < 0.6
    assert not orchestrator.accepts(quality)


# --- accepts -----------------------------------------------------------------------------------


def test_the_minimum_quality_is_inclusive_and_configurable(triage_agent, make_lead, make_package, now):
    lead = make_lead(**GOOD_LEAD)
    package = make_package(lead, triage_agent.triage(lead, now - timedelta(hours=6)), now)
    quality = HandoffOrchestrator(min_quality=0.6).assess(package, now)
    assert 0.6 < quality.score < 1.0
    assert quality.problems  # only its age is wrong with it

    assert HandoffOrchestrator(min_quality=quality.score).accepts(quality)
    assert not HandoffOrchestrator(min_quality=quality.score + 0.001).accepts(quality)
    assert HandoffOrchestrator(min_quality=0.0).accepts(quality)


def test_a_very_stale_package_is_rejected_even_when_its_overall_score_meets_the_minimum(
    triage_agent, orchestrator, make_lead, make_package, now,
):
    lead = make_lead(**GOOD_LEAD)
    package = make_package(lead, triage_agent.triage(lead, now - timedelta(hours=23)), now)
    quality = orchestrator.assess(package, now)
    assert quality.score >= orchestrator.min_quality  # complete and consistent, only stale

    assert not orchestrator.accepts(quality)
    record = orchestrator.record(package, quality, 10, now, accepted=False)
    assert "freshness" in record.reason
    assert all(problem in record.reason for problem in quality.problems)


# --- record ------------------------------------------------------------------------------------


def test_an_accepted_handoff_is_recorded_as_pending_until_delivered(orchestrator, fresh, now):
    lead, _, package = fresh
    quality = orchestrator.assess(package, now)
    later = now + timedelta(seconds=2)

    record = orchestrator.record(package, quality, package_bytes=1234, now=later, accepted=True)

    assert record.status is HandoffStatus.PENDING
    assert record.id == package.handoff_id
    assert record.lead_id == lead.id
    assert (record.from_agent, record.to_agent) == (package.from_agent, package.to_agent)
    assert record.quality == quality
    assert record.package_bytes == 1234
    assert record.created_at == package.created_at
    assert record.completed_at is None
    assert record.reason


def test_a_rejected_handoff_is_recorded_with_its_problems(triage_agent, orchestrator, make_lead, make_package, now):
    triage = triage_agent.triage(make_lead(**GOOD_LEAD), now - timedelta(hours=30))
    package = make_package(make_lead(**GOOD_LEAD), triage, now)
    package.to_agent = "CampaignOptimizer"
    quality = orchestrator.assess(package, now)
    assert not orchestrator.accepts(quality)
    assert len(quality.problems) >= 3

    record = orchestrator.record(package, quality, package_bytes=99, now=now, accepted=False)

    assert record.status is HandoffStatus.REJECTED
    assert record.completed_at is None
    assert record.quality == quality
    for problem in quality.problems:
        assert problem in record.reason


def test_accepted_and_rejected_reasons_differ(orchestrator, fresh, now):
    _, _, package = fresh
    quality = orchestrator.assess(package, now)

    accepted = orchestrator.record(package, quality, 10, now, accepted=True)
    rejected = orchestrator.record(package, quality, 10, now, accepted=False)

    assert accepted.reason != rejected.reason
    assert rejected.status is HandoffStatus.REJECTED
