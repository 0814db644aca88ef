"""The engagement agent's judgment: a multi-channel sequence for a lead, from its handoff package.

Consent is law: a channel the lead did not consent to never appears in a plan. The first touchpoint is
due at once; the rest are scheduled, all of them written to the ``touchpoints`` outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from string import Template
from uuid import uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marketing_agents.actors.enrichment import countries
from marketing_agents.actors.personalisation import MIN_AFFINITY, ChannelAffinity, channel_affinity
from marketing_agents.domain import CampaignStatus, Channel, EngagementPlan, HandoffPackage, Touchpoint, TriageCategory
from marketing_agents.domain.attribution import ArmDraw, draw_arm


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


# The step a channel gets when personalisation adds it to a sequence that lacks it.
CHANNEL_STEP_TEMPLATES = {
    Channel.EMAIL: "case-study",
    Channel.SMS: "meeting-reminder",
    Channel.LINKEDIN: "connect",
    Channel.CALL: "discovery-call",
    Channel.WEBINAR: "webinar-invite",
}


def personalise(steps: list[Step], affinity: ChannelAffinity, allowed: set[Channel]) -> tuple[list[Step], str]:
    """Makes the lead's best channel the first follow-up; returns the steps and the evidence it went by.

    The opening touch and the sequence's rhythm stay as designed: only which channel fills the
    second slot changes. A channel the sequence lacks is added there with its default step. When the
    design already has the best channel in front, nothing moves, and the evidence is still named.
    """
    best = affinity.best(allowed)
    if best is None or len(steps) < 1:
        strongest = affinity.strongest(allowed)
        if strongest is None:
            return steps, ""
        return steps, (f"memory: {strongest.value} has the strongest evidence ({affinity.evidence(strongest)}), "
                       f"below the {MIN_AFFINITY} it takes to change the designed sequence")
    if steps[0].channel is best:
        return steps, f"personalised: {best.value} opens the sequence ({affinity.evidence(best)})"
    if len(steps) > 1 and steps[1].channel is best:
        return steps, "personalised: " + affinity.explain(best)
    slots = [step.after for step in steps]
    existing = next((i for i, step in enumerate(steps) if step.channel is best), None)
    if existing is not None:
        chosen = steps[existing]
        rest = [step for i, step in enumerate(steps[1:], start=1) if i != existing]
        reordered = [steps[0], chosen, *rest]
        return [Step(step.channel, slot, step.template) for step, slot in zip(reordered, slots, strict=True)], \
            "personalised: " + affinity.explain(best)
    second = slots[1] / 2 if len(slots) > 1 else timedelta(days=1)
    added = Step(best, max(second, timedelta(hours=1)), CHANNEL_STEP_TEMPLATES[best])
    return [steps[0], added, *steps[1:]], "personalised: " + affinity.explain(best) + "; added to the sequence"


def open_with(steps: list[Step], channel: Channel) -> list[Step]:
    """The sequence opened on ``channel``: the arm a lead was given is what it hears first.

    The designed rhythm stays: the first step on that channel moves to the front and the others keep
    their order in the remaining slots; a sequence without the channel gets its default step in front.
    """
    if not steps or steps[0].channel is channel:
        return steps
    existing = next((i for i, step in enumerate(steps) if step.channel is channel), None)
    if existing is None:
        return [Step(channel, steps[0].after, CHANNEL_STEP_TEMPLATES[channel]), *steps]
    reordered = [steps[existing], *(step for i, step in enumerate(steps) if i != existing)]
    return [Step(step.channel, slot.after, step.template) for step, slot in zip(reordered, steps, strict=True)]


def campaign_arm(package: HandoffPackage, allowed: set[Channel]) -> tuple[ArmDraw | None, str]:
    """The arm of the lead's campaign it is given, and what the rationale says about it."""
    offer = package.campaign
    if offer is None:
        return None, ""
    draw = draw_arm(offer, package.lead.id, allowed)
    if draw is not None:
        return draw, draw.explain(offer.name)
    if offer.status is not CampaignStatus.ACTIVE:
        return None, f"campaign '{offer.name}' is {offer.status.value}: no arm given"
    return None, f"campaign '{offer.name}': no active arm on a channel the lead consented to, no arm given"


@dataclass(frozen=True)
class ContactPolicy:
    """When follow-ups may reach a lead, in the lead's own time zone.

    Follow-ups land inside business hours on weekdays and never more than ``max_per_week`` in any
    seven days; a step that would break either moves later, never earlier. The first touchpoint goes
    out at once: the lead has just asked to hear from us.
    """

    day_start_hour: int = 9
    day_end_hour: int = 18
    weekdays_only: bool = True
    max_per_week: int = 3

    def next_allowed(self, when: datetime, zone: ZoneInfo) -> datetime:
        local = when.astimezone(zone)
        for _ in range(8):
            if self.weekdays_only and local.weekday() >= 5:
                local = (local + timedelta(days=7 - local.weekday())).replace(hour=self.day_start_hour, minute=0,
                                                                              second=0, microsecond=0)
                continue
            if local.hour < self.day_start_hour:
                local = local.replace(hour=self.day_start_hour, minute=0, second=0, microsecond=0)
            elif local.hour >= self.day_end_hour:
                local = (local + timedelta(days=1)).replace(hour=self.day_start_hour, minute=0, second=0,
                                                            microsecond=0)
                continue
            break
        return local.astimezone(when.tzinfo)

    def schedule(self, offsets: list[timedelta], now: datetime, zone: ZoneInfo) -> list[datetime]:
        times: list[datetime] = []
        for index, offset in enumerate(offsets):
            if index == 0:
                times.append(now)
                continue
            when = self.next_allowed(max(now + offset, times[-1] + timedelta(minutes=1)), zone)
            while sum(1 for t in times if when - t < timedelta(days=7)) >= self.max_per_week:
                oldest_in_window = min(t for t in times if when - t < timedelta(days=7))
                when = self.next_allowed(oldest_in_window + timedelta(days=7), zone)
            times.append(when)
        return times


def fits_weekly_cap(at: datetime, others: list[datetime], max_per_week: int) -> bool:
    """Whether one more contact at ``at`` keeps every 7-day window at ``max_per_week`` contacts or fewer.

    The fullest window containing ``at`` starts at ``at`` or at one of the other contacts in the 7 days
    before it, so those are the only windows to count.
    """
    week = timedelta(days=7)
    starts = [at, *(t for t in others if at - week < t <= at)]
    return all(sum(1 for t in others if start <= t < start + week) + 1 <= max_per_week for start in starts)


def lead_zone(timezone: str | None, country: str) -> ZoneInfo:
    """The lead's time zone: the one triage stored, else its country's, else UTC (a name this Python
    does not know must not stop a plan change)."""
    name = timezone or countries().get(country, {}).get("timezone", "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class EngagementAgent:
    def __init__(self, policy: ContactPolicy | None = None) -> None:
        self.policy = policy

    def plan(self, package: HandoffPackage, now: datetime) -> EngagementPlan:
        lead = package.lead
        sequence = SEQUENCES[package.triage.triage_category]
        allowed = set(lead.consent.channels())
        steps = [step for step in sequence.steps if step.channel in allowed]
        draw, campaign_note = campaign_arm(package, allowed)
        if draw is not None:
            steps = open_with(steps, draw.channel)
        affinity = channel_affinity(package.memory)
        steps, personalised = personalise(steps, affinity, allowed)
        plan_id = uuid4()
        values = lead.model_dump(include={"first_name", "last_name", "company", "job_title", "industry"})
        # Steps keep their spacing from the first one that consent allows, then the contact policy
        # moves follow-ups into the lead's business hours and under the weekly cap.
        offsets = [step.after - steps[0].after for step in steps]
        enrichment = package.triage.enrichment
        if self.policy is not None and enrichment is not None:
            times = self.policy.schedule(offsets, now, ZoneInfo(enrichment.timezone))
        else:
            times = [now + offset for offset in offsets]
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
                    scheduled_at=times[index],
                    campaign_id=draw.campaign_id if draw else None,
                    arm=draw.arm if draw else None,
                )
            )
        skipped = [step.channel.value for step in sequence.steps if step.channel not in allowed]
        rationale = sequence.rationale
        if skipped:
            rationale += f"; skipped {', '.join(dict.fromkeys(skipped))} for lack of consent"
        if campaign_note:
            rationale += f"; {campaign_note}"
        if personalised:
            rationale += f"; {personalised}"
        return EngagementPlan(
            id=plan_id,
            lead_id=lead.id,
            handoff_id=package.handoff_id,
            sequence=sequence.name,
            rationale=rationale,
            touchpoints=touchpoints,
            created_at=now,
            campaign_id=draw.campaign_id if draw else None,
            arm=draw.arm if draw else None,
        )
