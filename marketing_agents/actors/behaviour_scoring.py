"""The triage agent's second look: what a lead does after intake moves the engagement part of its score.

Triage judged the lead once, from who it is (fit) and how it arrived (source, consent). Each stored
interaction is new evidence, so the lead is judged again with it, by the same formula and thresholds:

- engagement = min(100, intake engagement + the decayed points of everything the lead did so far)
  (``domain.behaviour``); fit and the model's probability stay as triage saw them, because behaviour
  says nothing about company size or seniority;
- lead_score = ``blended_score(fit, engagement, probability)``, categorised by ``classify``, the one
  rule triage uses, so that a category means the same whoever set it; as behaviour fades, the next
  interaction can move a lead down again;
- the intake factors stay and one ``behaviour`` factor, replaced at every rescoring, says what the
  behaviour added, naming the interaction that prompted it;
- a lead that *turns* hot while ``engaged`` gets the hot sequence's call step, as if triage had
  called it hot at intake: due at the next allowed time in its business hours, only with call consent,
  only when its plan has no call pending or done (never a second one), and only within the weekly cap.
  A lead in conversation already has a salesperson; a warm lead dropping back keeps its plan.

Not rescored: converted leads (customers now), disqualified ones (out of the funnel) and leads that
triage never saw (imported placeholders: the store finds no triage to start from).
"""

from __future__ import annotations

from string import Template
from uuid import uuid4

from marketing_agents.actors.engagement import SEQUENCES, TEMPLATES, ContactPolicy, fits_weekly_cap, lead_zone
from marketing_agents.actors.triage import TriageThresholds, blended_score, classify
from marketing_agents.domain import Channel, LeadStatus, ScoreFactor, Touchpoint, TriageCategory, TriageResult
from marketing_agents.domain.behaviour import FACTOR, BehaviourRules, behaviour_engagement, intake_engagement
from marketing_agents.domain.feedback import Rescore, RescoreContext, RescoreDecision

SUFFIX = "+behaviour"
NOT_RESCORED = frozenset({LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED})
CALL_STEP_TEMPLATE = next(step.template for step in SEQUENCES[TriageCategory.HOT].steps
                          if step.channel is Channel.CALL)


class BehaviourScorer:
    """Rescores one lead after one interaction (plain Python, no I/O: the store reads and writes)."""

    def __init__(self, rules: BehaviourRules, thresholds: TriageThresholds, contact: ContactPolicy) -> None:
        self.rules = rules
        self.thresholds = thresholds
        self.contact = contact

    def rescore(self, context: RescoreContext) -> RescoreDecision | None:
        """The lead's new triage and what changed; None when nothing does or the lead is not rescored."""
        lead, before = context.lead, context.triage
        if lead.status in NOT_RESCORED or before.triage_category is TriageCategory.DISQUALIFIED:
            return None
        engagement, factor = behaviour_engagement(self.rules, intake_engagement(before.factors), context.behaviour,
                                                  context.latest, context.now)
        lead_score = blended_score(before.fit_score, engagement, before.model_probability)
        category, why = classify(self.thresholds, lead_score, bool(lead.consent.channels()))
        if lead_score == before.lead_score and category is before.triage_category:
            return None
        touchpoint = None
        if category is before.triage_category:
            reason = f"still {category.value}: {why}"
        elif category is TriageCategory.HOT:
            touchpoint, note = self._call_step(context, factor)
            reason = f"{before.triage_category.value} -> hot: {why}; {note}"
        else:
            reason = f"{before.triage_category.value} -> {category.value}: {why}; the plan stays as it is"
        after = TriageResult.model_validate({
            **before.model_dump(),
            "lead_score": lead_score, "engagement_score": engagement, "triage_category": category,
            "reason": f"{why}, with the lead's behaviour counted; the route stays {before.route_to or 'none'}",
            "factors": sorted([f for f in before.factors if f.name != FACTOR] + [factor], key=lambda f: -f.points),
            "scoring_model": before.scoring_model.removesuffix(SUFFIX) + SUFFIX,
            "triaged_at": context.now,
        })
        return RescoreDecision(after, Rescore(
            lead_score_before=before.lead_score, lead_score=lead_score,
            engagement_score_before=before.engagement_score, engagement_score=engagement,
            triage_category_before=before.triage_category, triage_category=category,
            factor=factor, touchpoint=touchpoint, reason=reason))

    def _call_step(self, context: RescoreContext, factor: ScoreFactor) -> tuple[Touchpoint | None, str]:
        lead = context.lead
        if lead.status is not LeadStatus.ENGAGED:
            return None, f"no call task: the lead is {lead.status.value}, not engaged"
        if not lead.consent.call:
            return None, "no call task: the lead has not consented to calls"
        if lead.plan_id is None:
            return None, "no call task: the lead has no engagement plan to add it to"
        if context.plan_has_call:
            return None, "no call task: its plan has a call pending or done already"
        when = self.contact.next_allowed(context.now, lead_zone(lead.timezone, lead.country))
        if not fits_weekly_cap(when, [c.at for c in lead.contacts], self.contact.max_per_week):
            return None, (f"no call task: a call at {when:%Y-%m-%d %H:%M} UTC would exceed "
                          f"{self.contact.max_per_week} contacts in 7 days")
        _, body = TEMPLATES[CALL_STEP_TEMPLATE]
        values = {"first_name": lead.first_name, "last_name": lead.last_name, "job_title": lead.job_title,
                  "company": lead.company}
        touchpoint = Touchpoint(
            id=uuid4(), lead_id=lead.lead_id, plan_id=lead.plan_id, step=lead.next_step, channel=Channel.CALL,
            template=CALL_STEP_TEMPLATE, subject=None, scheduled_at=when,
            body=f"{Template(body).safe_substitute(values)} They turned hot by their behaviour: {factor.explanation}.")
        return touchpoint, f"the hot sequence's call step is due {when:%Y-%m-%d %H:%M} UTC"
