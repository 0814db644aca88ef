"""PostgreSQL: a lead rescored by its behaviour, inside the transaction that stores the interaction.

The judgment is the caller's (``Rescore``: the triage agent's, ``actors.behaviour_scoring``); this module
reads what it needs once the interaction's plan change is applied, and stores what the judgment
decided, so that an interaction and the score it moved commit together or not at all:
- the lead's ``lead_score`` and ``triage_category`` (what lists and filters read);
- a new ``triage_results`` row, the latest one, so that the lead's page shows the factors that hold
  now; the first row stays the lead as it came in, which training and batch scoring read;
- an entry in the score history naming the category and the factor (``lead_profiles.score_history``);
- the call task of a lead that turned hot while engaged;
- the ``agent_actions`` row that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import asyncpg
from pydantic import ValidationError

from marketing_agents.domain import Channel, InteractionType, TriageResult
from marketing_agents.domain.behaviour import BehaviourEvent
from marketing_agents.domain.feedback import LeadSnapshot, Rescore, RescoreContext, RescoreDecision
from marketing_agents.stores.postgres_long_term import record_score

log = logging.getLogger(__name__)

RescoreJudgment = Callable[[RescoreContext], RescoreDecision | None]

RESCORED_BY = "TriageAgent"

_LATEST_TRIAGE = """SELECT result FROM triage_results WHERE lead_id = $1
                    ORDER BY triaged_at DESC, id DESC LIMIT 1"""
# Every interaction of the lead: each still counts a little, however old (their worth halves, it never
# ends), and one lead's rows are few and sit together in idx_interaction_lead.
_BEHAVIOUR = "SELECT type, channel, occurred_at FROM interactions WHERE lead_id = $1"
_PLAN_HAS_CALL = """SELECT EXISTS (SELECT 1 FROM touchpoints WHERE plan_id = $1 AND channel = 'call'
                                   AND status IN ('pending', 'sending', 'sent'))"""
_INSERT_TRIAGE = """INSERT INTO triage_results (lead_id, lead_score, fit_score, engagement_score, triage_category,
                                                route_to, scoring_model, result, triaged_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""
_UPDATE_LEAD = "UPDATE leads SET lead_score = $2, triage_category = $3, updated_at = now() WHERE id = $1"
_INSERT_TOUCHPOINT = """INSERT INTO touchpoints (id, lead_id, plan_id, step, channel, template, subject, body,
                                                 scheduled_at, status, campaign_id, arm)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""
_AUDIT = """INSERT INTO agent_actions (agent, action, lead_id, inputs, output, reason)
            VALUES ($1, 'rescored', $2, $3, $4, $5)"""


async def rescore_lead(conn: asyncpg.Connection, lead: LeadSnapshot, interaction_id: int, latest: BehaviourEvent,
                       now: datetime, judge: RescoreJudgment) -> Rescore | None:
    """Rescores the lead on ``conn`` (inside the caller's transaction, the lead's row locked); returns the
    change, or None when the judgment changed nothing or the lead has no triage to rescore."""
    stored = await conn.fetchval(_LATEST_TRIAGE, lead.lead_id)
    if stored is None:  # an imported placeholder: never triaged, nothing to rescore
        return None
    try:
        triage = TriageResult.model_validate(stored)
    except ValidationError as exc:  # a row an older release wrote: rescoring waits rather than guessing
        log.warning("lead %s not rescored: its latest triage result does not read as one: %s", lead.lead_id, exc)
        return None
    behaviour = [event for event in map(_event, await conn.fetch(_BEHAVIOUR, lead.lead_id)) if event is not None]
    plan_has_call = lead.plan_id is not None and bool(await conn.fetchval(_PLAN_HAS_CALL, lead.plan_id))
    decision = judge(RescoreContext(lead=lead, triage=triage, latest=latest, behaviour=behaviour,
                                    plan_has_call=plan_has_call, now=now))
    if decision is None:
        return None
    await _store(conn, decision, interaction_id, now)
    return decision.rescore


async def _store(conn: asyncpg.Connection, decision: RescoreDecision, interaction_id: int, now: datetime) -> None:
    t, change = decision.triage, decision.rescore
    await conn.execute(_INSERT_TRIAGE, t.lead_id, t.lead_score, t.fit_score, t.engagement_score,
                       t.triage_category.value, t.route_to, t.scoring_model, t.model_dump(mode="json"), now)
    await conn.execute(_UPDATE_LEAD, t.lead_id, t.lead_score, t.triage_category.value)
    await record_score(conn, t.lead_id, t.lead_score, now, triage_category=t.triage_category.value,
                       factor=change.factor.model_dump(mode="json"))
    tp = change.touchpoint
    if tp is not None:
        await conn.execute(_INSERT_TOUCHPOINT, tp.id, tp.lead_id, tp.plan_id, tp.step, tp.channel.value, tp.template,
                           tp.subject, tp.body, tp.scheduled_at, tp.status.value, tp.campaign_id, tp.arm)
    await conn.execute(
        _AUDIT, RESCORED_BY, t.lead_id,
        {"interaction_id": interaction_id, "scoring_model": t.scoring_model},
        {**change.model_dump(mode="json", exclude={"touchpoint"}), "touchpoint_id": str(tp.id) if tp else None},
        change.factor.explanation)


def _event(row: asyncpg.Record) -> BehaviourEvent | None:
    """A stored row as scoring sees it; a type this release does not know counts for nothing."""
    try:
        kind = InteractionType(row["type"])
    except ValueError:
        return None
    try:
        channel = Channel(row["channel"]) if row["channel"] is not None else None
    except ValueError:
        channel = None
    return BehaviourEvent(kind, channel, row["occurred_at"])
