"""Where a triaged lead goes next: the routing rules a marketing team edits, not code.

Rules are read from a YAML file (``MAS_ROUTING_RULES_FILE``; the bundled ``routing_rules.yaml`` when
unset) and tried in order; the first whose conditions all hold decides. A rule sends the lead either
to an agent (``EngagementAgent``) or to a named human queue (any other name: the queue people work
through in the CRM). Conditions are lists (any of) over the category, the region, the normalised
industry and the company size band, plus a minimum lead_score.

Capacity: a queue rule may say how many open leads its queue holds at most. A full queue overflows to
``overflow_to`` (an agent, so that a hot lead is never parked behind a full desk) and the reason says
so. How full a queue is comes from the caller (:class:`QueueLoad`), counted in PostgreSQL.

Two routes are not configurable, because no rule should be able to undo them: a disqualified lead
goes nowhere, and a possible duplicate goes to ``HumanReview`` before any rule is tried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Self

import yaml
from pydantic import Field, ValidationError, model_validator

from marketing_agents.domain import DomainModel, TriageCategory
from marketing_agents.domain.review import QueueName
from marketing_agents.domain.triage import LeadEnrichment
from marketing_agents.errors import ConfigError

ENGAGEMENT_AGENT = "EngagementAgent"
HUMAN_REVIEW = "HumanReview"  # the queue for leads a person must look at before anyone contacts them
AGENTS = frozenset({ENGAGEMENT_AGENT})

# An agent's name or a human queue's: both take the shape of a queue name, which a person may reassign to.
RouteName = QueueName

# How many leads each human queue holds now; a queue missing from the mapping is empty.
QueueLoad = Callable[[], Mapping[str, int]]


def is_agent(route: str | None) -> bool:
    return route in AGENTS


def review_queue_for(route: str | None) -> str:
    """The queue a lead held for review waits in: its route's, when that is a human queue, else
    HumanReview (a duplicate, a rejected or dead-lettered handoff, a disqualified lead a person reopens)."""
    return route if route is not None and not is_agent(route) else HUMAN_REVIEW


class RoutingRule(DomainModel):
    name: RouteName
    route_to: RouteName
    categories: list[TriageCategory] | None = Field(default=None, description="Any of these; omitted means any.")
    regions: list[str] | None = Field(default=None, description="EMEA, AMER, APAC or unknown; omitted means any.")
    industries: list[str] | None = Field(default=None, description="Normalised industry keys; omitted means any.")
    size_bands: list[str] | None = Field(default=None, description="Company size bands, e.g. '1001-5000'.")
    min_score: float | None = Field(default=None, ge=0, le=100)
    capacity: int | None = Field(default=None, ge=1, description="At most this many open leads in the queue.")
    overflow_to: RouteName | None = Field(default=None, description="Where a lead goes when the queue is full.")

    @model_validator(mode="after")
    def _capacity_needs_a_queue_and_an_overflow(self) -> Self:
        if TriageCategory.DISQUALIFIED in (self.categories or []):
            raise ValueError("a disqualified lead is never routed; drop 'disqualified' from categories")
        if self.capacity is not None:
            if is_agent(self.route_to):
                raise ValueError(f"capacity limits a human queue, but '{self.route_to}' is an agent")
            if self.overflow_to is None:
                raise ValueError("a rule with a capacity needs overflow_to: where leads go when the queue is full")
        elif self.overflow_to is not None:
            raise ValueError("overflow_to only applies with a capacity")
        return self

    def matches(self, category: TriageCategory, score: float, enrichment: LeadEnrichment) -> bool:
        return (
            (self.categories is None or category in self.categories)
            and (self.regions is None or enrichment.region in self.regions)
            and (self.industries is None or enrichment.industry in {i.lower() for i in self.industries})
            and (self.size_bands is None or enrichment.company_size_band in self.size_bands)
            and (self.min_score is None or score >= self.min_score)
        )


class RoutingRules(DomainModel):
    rules: list[RoutingRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique_and_last_rule_catches_all(self) -> Self:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        last = self.rules[-1]
        if any(getattr(last, c) is not None for c in ("categories", "regions", "industries", "size_bands", "min_score")):
            raise ValueError(f"the last rule ('{last.name}') must have no conditions, so that every lead has a route")
        return self

    @classmethod
    def load(cls, path: Path | None = None) -> RoutingRules:
        """The rules in ``path``, or the bundled ones. A broken file stops the start with its problem named."""
        if path is None:
            text = resources.files("marketing_agents.actors").joinpath("data/routing_rules.yaml").read_text()
            source = "the bundled routing_rules.yaml"
        else:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read the routing rules file {path}: {exc.strerror}") from exc
            source = str(path)
        try:
            return cls.model_validate(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{source} has invalid routing rules: {problems}") from exc


@dataclass(frozen=True)
class Route:
    to: str | None
    rule: str | None
    reason: str


class Router:
    def __init__(self, rules: RoutingRules, queue_load: QueueLoad = dict) -> None:
        self.rules = rules
        self._queue_load = queue_load

    def queue_loads(self) -> Mapping[str, int]:
        """How many leads wait in each human queue, as the caller counts them."""
        return self._queue_load()

    def route(self, category: TriageCategory, score: float, enrichment: LeadEnrichment) -> Route:
        if category is TriageCategory.DISQUALIFIED:
            return Route(None, None, "not routed: disqualified leads are not contacted")
        if enrichment.duplicate_of is not None:
            return Route(HUMAN_REVIEW, None,
                         f"held for review as a possible duplicate of lead {enrichment.duplicate_of}")
        rule = next(r for r in self.rules.rules if r.matches(category, score, enrichment))
        if rule.capacity is not None:
            load = self._queue_load().get(rule.route_to, 0)
            if load >= rule.capacity:
                return Route(rule.overflow_to, rule.name,
                             f"routing rule '{rule.name}': queue {rule.route_to} is full "
                             f"({load} of {rule.capacity}), so it goes to {rule.overflow_to}")
        return Route(rule.route_to, rule.name, f"routing rule '{rule.name}' sends it to {rule.route_to}")
