"""The triage agent's judgment: a transparent rule-based score, a category and a route.

Every point added to a score is a named factor with its explanation, so a sales rep can see why a
lead is hot. The scoring-models issue puts a trained model's probability beside these rules.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from marketing_agents.actors.enrichment import Enricher
from marketing_agents.actors.model_opinion import ModelOpinion
from marketing_agents.actors.routing import Router, RoutingRules
from marketing_agents.domain import Lead, ScoreFactor, TriageCategory, TriageResult
from marketing_agents.domain.triage import LeadEnrichment

SCORING_MODEL = "rules-v1"

# Ordered: the first rule with a keyword among the title's words wins ("Director" is not "cto",
# and "Vice President" is a VP before it is a president).
SENIORITY_RULES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("student", ("student", "intern", "trainee"), 0.0),
    ("vp", ("vp", "vice president", "head of"), 25.0),
    ("c-level", ("chief", "ceo", "cto", "cmo", "cfo", "coo", "cio", "founder", "owner", "president"), 30.0),
    ("director", ("director",), 20.0),
    ("manager", ("manager", "lead"), 12.0),
)
DEFAULT_SENIORITY_POINTS = 5.0

TARGET_INDUSTRIES = frozenset(
    {
        "software", "saas", "technology", "information technology", "financial services", "fintech", "banking",
        "insurance", "healthcare", "manufacturing", "retail", "ecommerce", "e-commerce", "telecommunications",
        "professional services", "professional_services", "logistics", "media",
    }
)

SOURCE_POINTS: dict[str, float] = {
    "demo_request": 50.0,
    "contact_sales": 50.0,
    "referral": 40.0,
    "event": 35.0,
    "webinar": 35.0,
    "partner": 30.0,
    "web_form": 30.0,
    "content_download": 25.0,
    "paid_search": 20.0,
    "organic_search": 20.0,
    "paid_social": 15.0,
    "social": 15.0,
    "list_import": 5.0,
    "purchased_list": 5.0,
}
DEFAULT_SOURCE_POINTS = 10.0
POINTS_PER_CONSENTED_CHANNEL = 10.0

FIT_WEIGHT = 0.6
ENGAGEMENT_WEIGHT = 0.4
# With a model, lead_score = 40% fit + 20% engagement + 40% of 100 x the model's probability.
MODEL_WEIGHTS = (0.4, 0.2, 0.4)


def blended_score(fit: float, engagement: float, probability: float | None) -> float:
    """The one formula for lead_score, with or without a model's opinion."""
    if probability is None:
        return round(FIT_WEIGHT * fit + ENGAGEMENT_WEIGHT * engagement, 1)
    w_fit, w_engagement, w_model = MODEL_WEIGHTS
    return round(w_fit * fit + w_engagement * engagement + w_model * 100 * probability, 1)


SIZE_POINTS = {"1-10": 5.0, "11-50": 12.0, "51-200": 20.0, "201-1000": 25.0, "1001-5000": 25.0, "5000+": 22.0}


@dataclass(frozen=True)
class TriageThresholds:
    hot_min: float = 70.0
    warm_min: float = 50.0
    nurture_min: float = 25.0

    def __post_init__(self) -> None:
        if not (self.hot_min >= self.warm_min >= self.nurture_min):
            raise ValueError("triage thresholds must satisfy hot_min >= warm_min >= nurture_min")


def classify(t: TriageThresholds, lead_score: float, reachable: bool) -> tuple[TriageCategory, str]:
    """The category a score earns, and why. Shared with behavioural rescoring (``actors.behaviour_scoring``),
    so that a lead is never hot by one rule and warm by another; ``reachable``: consent on some channel."""
    if not reachable:
        return TriageCategory.DISQUALIFIED, "the lead gave no consent to be contacted on any channel"
    if lead_score >= t.hot_min:
        return TriageCategory.HOT, f"lead_score {lead_score} is at least the hot threshold {t.hot_min}"
    if lead_score >= t.warm_min:
        return TriageCategory.WARM, f"lead_score {lead_score} is at least the warm threshold {t.warm_min}"
    if lead_score >= t.nurture_min:
        return TriageCategory.NURTURE, f"lead_score {lead_score} is at least the nurture threshold {t.nurture_min}"
    return TriageCategory.DISQUALIFIED, f"lead_score {lead_score} is below the nurture threshold {t.nurture_min}"


class TriageAgent:
    """Scores, classifies and routes a lead. Deterministic: the same lead always gets the same answer."""

    def __init__(self, thresholds: TriageThresholds, enricher: Enricher | None = None,
                 model: Callable[[Lead, LeadEnrichment], ModelOpinion | None] | None = None,
                 router: Router | None = None) -> None:
        self.thresholds = thresholds
        self.enricher = enricher or Enricher()
        self.model = model
        self.router = router or Router(RoutingRules.load())

    def triage(self, lead: Lead, now: datetime, enrichment: LeadEnrichment | None = None) -> TriageResult:
        enrichment = enrichment or self.enricher.enrich(lead)
        return self._judge(lead, enrichment, self.model(lead, enrichment) if self.model else None, now)

    def triage_many(self, leads: list[tuple[Lead, LeadEnrichment]], now: datetime) -> list[TriageResult]:
        """Triages leads together: one model call scores them all, then each is judged as ``triage`` would.

        Queue capacities count the leads routed earlier in the same call, so a batch cannot overfill a
        human queue that a lead-by-lead submission would have overflowed.
        """
        if not leads:
            return []
        many = getattr(self.model, "many", None)
        if many is not None:
            opinions = many(leads)
        else:
            opinions = [self.model(lead, enrichment) if self.model else None for lead, enrichment in leads]
        routed: Counter[str] = Counter()
        router = Router(self.router.rules, lambda: Counter(self.router.queue_loads()) + routed)
        results = []
        for (lead, enrichment), opinion in zip(leads, opinions, strict=True):
            result = self._judge(lead, enrichment, opinion, now, router)
            if result.route_to is not None:
                routed[result.route_to] += 1
            results.append(result)
        return results

    def _judge(self, lead: Lead, enrichment: LeadEnrichment, opinion: ModelOpinion | None,
               now: datetime, router: Router | None = None) -> TriageResult:
        fit = self._fit_factors(lead, enrichment)
        engagement = self._engagement_factors(lead)
        fit_score = min(100.0, sum(f.points for f in fit))
        engagement_score = min(100.0, sum(f.points for f in engagement))
        model_factors = []
        if opinion is not None:
            label = f"model {opinion.version}{' (synthetic data)' if opinion.synthetic else ''}"
            model_factors.append(ScoreFactor(
                name="model", points=round(MODEL_WEIGHTS[2] * 100 * opinion.probability, 1),
                explanation=f"{label}: conversion probability {opinion.probability:.1%}; "
                            f"for: {opinion.factors_for or 'nothing notable'}; "
                            f"against: {opinion.factors_against or 'nothing notable'}"))
        lead_score = blended_score(fit_score, engagement_score, opinion.probability if opinion else None)
        category, reason = self._classify(lead, lead_score)
        route = (router or self.router).route(category, lead_score, enrichment)
        return TriageResult(
            lead_id=lead.id,
            lead_score=lead_score,
            fit_score=fit_score,
            engagement_score=engagement_score,
            triage_category=category,
            reason=f"{reason}; {route.reason}",
            factors=sorted(fit + engagement + model_factors, key=lambda f: -f.points),
            route_to=route.to,
            routing_rule=route.rule,
            scoring_model=f"{SCORING_MODEL}+{opinion.version}" if opinion else SCORING_MODEL,
            model_probability=opinion.probability if opinion else None,
            enrichment=enrichment,
            triaged_at=now,
        )

    def _classify(self, lead: Lead, lead_score: float) -> tuple[TriageCategory, str]:
        return classify(self.thresholds, lead_score, bool(lead.consent.channels()))

    def _fit_factors(self, lead: Lead, enrichment: LeadEnrichment) -> list[ScoreFactor]:
        band = enrichment.company_size_band
        size_points = SIZE_POINTS[band]
        title_words = " ".join(re.findall(r"[a-z0-9]+", lead.job_title.lower()))
        seniority, seniority_points = next(
            ((name, points) for name, words, points in SENIORITY_RULES
             if any(re.search(rf"\b{re.escape(w)}\b", title_words) for w in words)),
            ("individual contributor", DEFAULT_SENIORITY_POINTS),
        )
        in_target = lead.industry.lower() in TARGET_INDUSTRIES or enrichment.industry in TARGET_INDUSTRIES
        free_email = enrichment.email_domain_type == "free"
        return [
            ScoreFactor(name="company_size", points=size_points,
                        explanation=f"{lead.company_size} employees ({band} band)"),
            ScoreFactor(name="seniority", points=seniority_points,
                        explanation=f"job title '{lead.job_title}' reads as {seniority}"),
            ScoreFactor(name="industry", points=25.0 if in_target else 8.0,
                        explanation=f"industry '{lead.industry}' is {'a' if in_target else 'not a'} target industry"),
            ScoreFactor(name="email_domain", points=3.0 if free_email else 20.0,
                        explanation=f"{lead.email_domain} is {'a free' if free_email else 'a corporate'} email domain"),
        ]

    def _engagement_factors(self, lead: Lead) -> list[ScoreFactor]:
        channels = lead.consent.channels()
        return [
            ScoreFactor(name="source", points=SOURCE_POINTS.get(lead.source, DEFAULT_SOURCE_POINTS),
                        explanation=f"came in through '{lead.source}'"),
            ScoreFactor(name="consent", points=POINTS_PER_CONSENTED_CHANNEL * len(channels),
                        explanation=f"reachable on {len(channels)} channel(s): "
                                    f"{', '.join(c.value for c in channels) or 'none'}"),
        ]
