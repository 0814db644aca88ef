"""TriageAgent: a transparent, deterministic score, a category that follows the thresholds, and a route."""

from __future__ import annotations

import pytest

from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import Channel, TriageCategory

ALL_CONSENT = {channel.value: True for channel in Channel}
FIT_FACTORS = {"company_size", "seniority", "industry", "email_domain"}
ENGAGEMENT_FACTORS = {"source", "consent"}

# Lead profiles meant to land in each category under the default thresholds.
PROFILES = {
    TriageCategory.HOT: dict(
        job_title="Chief Technology Officer", company_size=800, industry="Software",
        email="cto@quuxcorp.io", source="demo_request", consent={"email": True, "call": True},
    ),
    TriageCategory.WARM: dict(
        job_title="Marketing Manager", company_size=120, industry="Software",
        email="zelda@quuxcorp.io", source="web_form", consent={"email": True},
    ),
    TriageCategory.NURTURE: dict(
        job_title="Analyst", company_size=8, industry="Agriculture",
        email="zelda@gmail.com", source="web_form", consent={"email": True},
    ),
    TriageCategory.DISQUALIFIED: dict(
        job_title="Student", company_size=3, industry="Agriculture",
        email="zelda@gmail.com", source="flyer", consent={"email": True},
    ),
}


def factor(result, name):
    (found,) = [f for f in result.factors if f.name == name]
    return found


@pytest.mark.parametrize("category", list(TriageCategory))
def test_every_category_is_reachable(category, triage_agent, make_lead, now):
    result = triage_agent.triage(make_lead(**PROFILES[category]), now)

    assert result.triage_category is category
    if category is TriageCategory.DISQUALIFIED:
        assert result.route_to is None
    else:
        assert result.route_to == "EngagementAgent"


@pytest.mark.parametrize("category", list(TriageCategory))
def test_category_follows_the_thresholds(category, make_lead, now):
    thresholds = TriageThresholds()
    result = TriageAgent(thresholds).triage(make_lead(**PROFILES[category]), now)
    score = result.lead_score

    expected = (
        TriageCategory.HOT if score >= thresholds.hot_min
        else TriageCategory.WARM if score >= thresholds.warm_min
        else TriageCategory.NURTURE if score >= thresholds.nurture_min
        else TriageCategory.DISQUALIFIED
    )
    assert result.triage_category is expected
    assert result.reason


@pytest.mark.parametrize("consent", [{}, {"email": False, "sms": False}])
def test_no_consent_disqualifies_even_an_ideal_lead(consent, triage_agent, make_lead, now):
    ideal = {**PROFILES[TriageCategory.HOT], "consent": consent}

    result = triage_agent.triage(make_lead(**ideal), now)

    assert result.triage_category is TriageCategory.DISQUALIFIED
    assert result.route_to is None
    assert "consent" in result.reason


@pytest.mark.parametrize("category", list(TriageCategory))
def test_lead_score_is_the_weighted_sum_of_fit_and_engagement(category, triage_agent, make_lead, now):
    result = triage_agent.triage(make_lead(**PROFILES[category]), now)

    assert result.lead_score == round(0.6 * result.fit_score + 0.4 * result.engagement_score, 1)


@pytest.mark.parametrize("category", list(TriageCategory))
def test_factors_explain_every_point(category, triage_agent, make_lead, now):
    result = triage_agent.triage(make_lead(**PROFILES[category]), now)
    names = [f.name for f in result.factors]

    assert set(names) == FIT_FACTORS | ENGAGEMENT_FACTORS
    assert len(names) == len(set(names))
    assert sum(f.points for f in result.factors if f.name in FIT_FACTORS) == pytest.approx(result.fit_score)
    assert sum(f.points for f in result.factors if f.name in ENGAGEMENT_FACTORS) == pytest.approx(
        result.engagement_score
    )
    assert all(f.explanation.strip() for f in result.factors)


def test_factors_are_listed_most_important_first(triage_agent, make_lead, now):
    result = triage_agent.triage(make_lead(**PROFILES[TriageCategory.WARM]), now)
    points = [f.points for f in result.factors]

    assert points == sorted(points, reverse=True)


def test_factor_explanations_name_the_facts_they_rest_on(triage_agent, make_lead, now):
    lead = make_lead(**PROFILES[TriageCategory.HOT])

    result = triage_agent.triage(lead, now)

    assert lead.job_title in factor(result, "seniority").explanation
    assert lead.industry in factor(result, "industry").explanation
    assert lead.email_domain in factor(result, "email_domain").explanation
    assert lead.source in factor(result, "source").explanation
    assert str(lead.company_size) in factor(result, "company_size").explanation
    for channel in lead.consent.channels():
        assert channel.value in factor(result, "consent").explanation


def test_result_is_about_the_lead_and_stamped_with_now(triage_agent, make_lead, now):
    lead = make_lead()

    result = triage_agent.triage(lead, now)

    assert result.lead_id == lead.id
    assert result.triaged_at == now
    assert result.scoring_model


def test_scores_stay_within_0_and_100_for_the_best_possible_lead(triage_agent, make_lead, now):
    best = {**PROFILES[TriageCategory.HOT], "consent": ALL_CONSENT}

    result = triage_agent.triage(make_lead(**best), now)

    for score in (result.lead_score, result.fit_score, result.engagement_score):
        assert 0 <= score <= 100
    assert result.triage_category is TriageCategory.HOT


def test_triage_is_deterministic(make_lead, now):
    lead = make_lead(**PROFILES[TriageCategory.WARM])

    first = TriageAgent(TriageThresholds()).triage(lead, now)
    again = TriageAgent(TriageThresholds()).triage(lead, now)
    copy = TriageAgent(TriageThresholds()).triage(lead.model_copy(deep=True), now)

    assert first == again == copy


@pytest.mark.parametrize("free_domain", ["gmail.com", "outlook.com", "gmx.de", "yahoo.com"])
def test_free_mail_domain_scores_lower_than_a_corporate_domain(free_domain, triage_agent, make_lead, now):
    corporate = triage_agent.triage(make_lead(email="zelda@quuxcorp.io"), now)
    free = triage_agent.triage(make_lead(email=f"zelda@{free_domain}"), now)

    assert free.fit_score < corporate.fit_score
    assert free.lead_score < corporate.lead_score
    assert factor(free, "email_domain").points < factor(corporate, "email_domain").points


def test_free_mail_is_recognised_whatever_the_case(triage_agent, make_lead, now):
    lower = triage_agent.triage(make_lead(email="zelda@gmail.com"), now)
    upper = triage_agent.triage(make_lead(email="Zelda@GMAIL.COM"), now)

    assert upper.fit_score == lower.fit_score


def test_target_industry_scores_higher(triage_agent, make_lead, now):
    target = triage_agent.triage(make_lead(industry="Software"), now)
    other = triage_agent.triage(make_lead(industry="Agriculture"), now)

    assert target.fit_score > other.fit_score


def test_more_consented_channels_mean_more_engagement(triage_agent, make_lead, now):
    scores = [
        triage_agent.triage(make_lead(consent=dict.fromkeys(list(ALL_CONSENT)[:n], True)), now).engagement_score
        for n in range(1, len(ALL_CONSENT) + 1)
    ]

    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)


def test_demo_request_outscores_a_purchased_list(triage_agent, make_lead, now):
    demo = triage_agent.triage(make_lead(source="demo_request"), now)
    bought = triage_agent.triage(make_lead(source="purchased_list"), now)

    assert demo.engagement_score > bought.engagement_score


def test_seniority_ranks_clear_titles_in_order(triage_agent, make_lead, now):
    titles = ["Chief Executive Officer", "VP Marketing", "Engineering Manager", "Analyst", "Marketing Intern"]

    points = [factor(triage_agent.triage(make_lead(job_title=t), now), "seniority").points for t in titles]

    assert points == sorted(points, reverse=True)
    assert len(set(points)) == len(points)


# Seniority is read by word: 'doctoral' and 'director' contain 'cto', 'coordinator' contains 'coo',
# 'vice president' contains 'president', 'international' and 'internal' contain 'intern'.
@pytest.mark.parametrize(
    ("title", "should_rank_like"),
    [
        ("Doctoral Researcher", "Researcher"),
        ("Vice President of Sales", "VP Sales"),
        ("Marketing Coordinator", "Marketing Specialist"),
        ("International Sales Manager", "Sales Manager"),
        ("Internal Auditor", "Auditor"),
    ],
)
def test_seniority_reads_titles_by_word(title, should_rank_like, triage_agent, make_lead, now):
    got = triage_agent.triage(make_lead(job_title=title), now)
    like = triage_agent.triage(make_lead(job_title=should_rank_like), now)

    assert factor(got, "seniority").points == factor(like, "seniority").points


def test_a_director_ranks_between_vp_and_manager(triage_agent, make_lead, now):
    def seniority(title):
        return factor(triage_agent.triage(make_lead(job_title=title), now), "seniority").points

    assert seniority("VP Marketing") > seniority("Marketing Director") > seniority("Marketing Manager")


def test_thresholds_are_configurable(make_lead, now):
    lead = make_lead(**PROFILES[TriageCategory.WARM])
    default = TriageAgent(TriageThresholds()).triage(lead, now)
    score = default.lead_score
    assert default.triage_category is TriageCategory.WARM

    # A threshold is inclusive: a score exactly at hot_min is hot.
    lenient = TriageAgent(TriageThresholds(hot_min=score, warm_min=score, nurture_min=0)).triage(lead, now)
    strict = TriageAgent(TriageThresholds(hot_min=100, warm_min=100, nurture_min=score + 0.1)).triage(lead, now)
    nurture = TriageAgent(TriageThresholds(hot_min=100, warm_min=score + 0.1, nurture_min=score)).triage(lead, now)

    assert lenient.triage_category is TriageCategory.HOT
    assert nurture.triage_category is TriageCategory.NURTURE
    assert strict.triage_category is TriageCategory.DISQUALIFIED
    assert strict.route_to is None
    # Thresholds change the category, never the score.
    assert lenient.lead_score == strict.lead_score == nurture.lead_score == score


def test_equal_thresholds_are_allowed():
    thresholds = TriageThresholds(hot_min=50, warm_min=50, nurture_min=50)

    assert thresholds.hot_min == thresholds.warm_min == thresholds.nurture_min


@pytest.mark.parametrize(
    ("hot_min", "warm_min", "nurture_min"),
    [(50, 70, 25), (70, 20, 25), (70, 50, 60), (10, 20, 30)],
)
def test_thresholds_out_of_order_are_refused(hot_min, warm_min, nurture_min):
    with pytest.raises(ValueError, match="hot_min >= warm_min >= nurture_min"):
        TriageThresholds(hot_min=hot_min, warm_min=warm_min, nurture_min=nurture_min)
