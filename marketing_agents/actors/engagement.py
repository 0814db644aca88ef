"""The engagement agent's judgment: a multi-channel sequence for a lead, from its handoff package.

Consent is law: a channel the lead did not consent to never appears in a plan. The first touchpoint is
due at once; the rest are scheduled, all of them written to the ``touchpoints`` outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template
from uuid import uuid4

from marketing_agents.domain import Channel, EngagementPlan, HandoffPackage, Touchpoint, TriageCategory


@dataclass(frozen=True)
class Step:
    channel: Channel
    after: timedelta
    template: str


@dataclass(frozen=True)
class Sequence:
    name: str
    steps: tuple[Step, ...]
    rationale: str


SEQUENCES: dict[TriageCategory, Sequence] = {
    TriageCategory.HOT: Sequence(
        "hot-fast-track",
        (
            Step(Channel.EMAIL, timedelta(0), "intro-personal"),
            Step(Channel.CALL, timedelta(hours=4), "discovery-call"),
            Step(Channel.LINKEDIN, timedelta(days=1), "connect"),
            Step(Channel.SMS, timedelta(days=2), "meeting-reminder"),
            Step(Channel.EMAIL, timedelta(days=4), "case-study"),
        ),
        "hot lead: reach out personally at once and get a sales conversation within the day",
    ),
    TriageCategory.WARM: Sequence(
        "warm-build-interest",
        (
            Step(Channel.EMAIL, timedelta(0), "intro-value"),
            Step(Channel.LINKEDIN, timedelta(days=2), "connect"),
            Step(Channel.EMAIL, timedelta(days=5), "case-study"),
            Step(Channel.WEBINAR, timedelta(days=10), "webinar-invite"),
        ),
        "warm lead: show value over two weeks and invite to a webinar",
    ),
    TriageCategory.NURTURE: Sequence(
        "nurture-educate",
        (
            Step(Channel.EMAIL, timedelta(0), "welcome-content"),
            Step(Channel.EMAIL, timedelta(days=7), "educational-guide"),
            Step(Channel.WEBINAR, timedelta(days=14), "webinar-invite"),
            Step(Channel.EMAIL, timedelta(days=30), "check-in"),
        ),
        "nurture lead: educate with content over a month until intent shows",
    ),
}

TEMPLATES: dict[str, tuple[str | None, str]] = {
    "intro-personal": ("$first_name, a quick idea for $company",
                       "Hi $first_name, teams like $company in $industry use us to grow pipeline. "
                       "Could we find 20 minutes this week?"),
    "intro-value": ("How $industry teams grow pipeline",
                    "Hi $first_name, here is how $industry companies of $company's size cut their cost per lead."),
    "welcome-content": ("Welcome, $first_name", "Hi $first_name, thanks for your interest. Here is our starter guide."),
    "discovery-call": (None, "Call $first_name $last_name ($job_title at $company) to qualify needs and timeline."),
    "connect": (None, "Hi $first_name, I'd like to connect and share what we see working in $industry."),
    "meeting-reminder": (None, "Hi $first_name, can we set up a short call about $company's goals? Reply YES."),
    "case-study": ("A $industry case study for $company",
                   "Hi $first_name, this is how a company like $company reached its targets with us."),
    "educational-guide": ("A guide for $job_title roles", "Hi $first_name, a practical guide for your role."),
    "webinar-invite": ("You're invited, $first_name", "Hi $first_name, join our live session for $industry teams."),
    "check-in": ("Still exploring, $first_name?", "Hi $first_name, anything we can help $company with?"),
}


class EngagementAgent:
    def plan(self, package: HandoffPackage, now: datetime) -> EngagementPlan:
        lead = package.lead
        sequence = SEQUENCES[package.triage.triage_category]
        allowed = set(lead.consent.channels())
        steps = [step for step in sequence.steps if step.channel in allowed]
        plan_id = uuid4()
        values = lead.model_dump(include={"first_name", "last_name", "company", "job_title", "industry"})
        touchpoints = []
        for index, step in enumerate(steps):
            subject, body = TEMPLATES[step.template]
            touchpoints.append(
                Touchpoint(
                    id=uuid4(),
                    lead_id=lead.id,
                    plan_id=plan_id,
                    step=index,
                    channel=step.channel,
                    template=step.template,
                    subject=Template(subject).safe_substitute(values) if subject else None,
                    body=Template(body).safe_substitute(values),
                    # Steps keep their spacing from the first one that consent allows.
                    scheduled_at=now + (step.after - steps[0].after),
                )
            )
        skipped = [step.channel.value for step in sequence.steps if step.channel not in allowed]
        rationale = sequence.rationale
        if skipped:
            rationale += f"; skipped {', '.join(dict.fromkeys(skipped))} for lack of consent"
        return EngagementPlan(
            id=plan_id,
            lead_id=lead.id,
            handoff_id=package.handoff_id,
            sequence=sequence.name,
            rationale=rationale,
            touchpoints=touchpoints,
            created_at=now,
        )
