"""The unified memory manager's recall: concurrent, bounded by its deadline, honest about gaps."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from marketing_agents.domain import Lead, NewLead
from marketing_agents.memory.manager import UnifiedMemoryManager

LEAD = Lead(**NewLead(email="a@b.io", first_name="A", last_name="B", company="C", job_title="CTO",
                      industry="Software", company_size=50, country="DE", source="event",
                      consent={"email": True}).model_dump(),
            id=uuid.uuid4(), created_at=datetime(2026, 1, 1, tzinfo=UTC))


class Tier:
    """A tier that answers after ``delay_s`` or fails: the manager's behaviour, not a store's, is tested."""

    def __init__(self, answer=None, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.answer, self.delay_s, self.error = answer, delay_s, error

    async def _respond(self, *args, **kwargs):
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        return self.answer

    context = profile = recall_similar = best_channels = _respond


def manager(short=Tier({"stage": "triaged"}), long=Tier({"rfm_segment": "Loyal"}), episodic=Tier([]),
            semantic=Tier([]), deadline_s=0.2) -> UnifiedMemoryManager:
    return UnifiedMemoryManager(short, long, episodic, semantic, leads=None, deadline_s=deadline_s)


async def test_recall_gathers_every_tier():
    recall = await manager().recall(LEAD, persona="cto")
    assert recall.context == {"stage": "triaged"} and recall.profile == {"rfm_segment": "Loyal"}
    assert recall.missing == {}


class Rendezvous:
    """Answers only once all four tiers are being asked at the same time."""

    def __init__(self) -> None:
        self.waiting = 0
        self.all_in = asyncio.Event()

    def tier(self, answer) -> Tier:
        rendezvous = self

        class Meeting(Tier):
            async def _respond(self, *args, **kwargs):
                rendezvous.waiting += 1
                if rendezvous.waiting == 4:
                    rendezvous.all_in.set()
                await rendezvous.all_in.wait()
                return answer

            context = profile = recall_similar = best_channels = _respond

        return Meeting()


async def test_tiers_are_asked_concurrently():
    meet = Rendezvous()
    recall = await manager(meet.tier({}), meet.tier({}), meet.tier([]), meet.tier([]), deadline_s=5).recall(LEAD, "cto")
    assert recall.missing == {}, "asked one after another, the first tier would wait for the others forever"


async def test_a_tier_that_never_answers_is_left_out_and_named():
    never = Tier()
    never._respond = lambda *a, **k: asyncio.Event().wait()  # type: ignore[method-assign]
    never.profile = never._respond
    recall = await asyncio.wait_for(manager(long=never, deadline_s=0.2).recall(LEAD, "cto"), timeout=10)
    assert recall.profile is None and recall.context == {"stage": "triaged"}
    assert set(recall.missing) == {"long_term"} and "no answer within" in recall.missing["long_term"]


async def test_a_failing_tier_is_named_with_its_error():
    recall = await manager(episodic=Tier(error=ConnectionError("pgvector down"))).recall(LEAD)
    assert recall.missing == {"episodic": "ConnectionError: pgvector down"}
    assert recall.context == {"stage": "triaged"}
