"""The one rule for announcing what is already committed: in order, each event to all its topics at once,
a bus that is down logged and passed over, anything else raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from marketing_agents.errors import StorageError
from marketing_agents.memory.event_bus import OutgoingEvent, publish_after_commit


class Bus:
    """Records each publish as it starts and as it ends; fails on the topics it is told to."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.log: list[tuple[str, str, str]] = []
        self.fail = fail or {}

    async def publish(self, topic, event_type, payload):
        self.log.append(("start", topic, event_type))
        await asyncio.sleep(0)
        if topic in self.fail:
            raise self.fail[topic]
        self.log.append(("end", topic, event_type))


EVENTS = [OutgoingEvent(("leads", "lead:1"), "lead.triaged", {"n": 1}),
          OutgoingEvent(("handoffs", "lead:1"), "handoff.pending", {"n": 2})]


async def test_events_go_out_in_order_each_to_all_its_topics_at_once():
    bus = Bus()
    await publish_after_commit(bus, EVENTS, "lead 1")
    assert bus.log == [("start", "leads", "lead.triaged"), ("start", "lead:1", "lead.triaged"),
                       ("end", "leads", "lead.triaged"), ("end", "lead:1", "lead.triaged"),
                       ("start", "handoffs", "handoff.pending"), ("start", "lead:1", "handoff.pending"),
                       ("end", "handoffs", "handoff.pending"), ("end", "lead:1", "handoff.pending")]


async def test_a_bus_that_is_down_is_logged_with_what_was_stored_and_the_next_event_still_tried(caplog):
    bus = Bus(fail={"leads": StorageError("Redis unavailable")})
    with caplog.at_level(logging.WARNING, logger="marketing_agents.memory.event_bus"):
        await publish_after_commit(bus, EVENTS, "lead 1")
    assert ("end", "lead:1", "lead.triaged") in bus.log and ("end", "handoffs", "handoff.pending") in bus.log
    assert "lead 1 is stored but not announced: could not publish lead.triaged on leads" in caplog.text


async def test_any_other_failure_is_a_bug_and_propagates():
    bus = Bus(fail={"lead:1": TypeError("payload is not JSON")})
    with pytest.raises(TypeError, match="not JSON"):
        await publish_after_commit(bus, EVENTS, "lead 1")
    assert ("end", "leads", "lead.triaged") in bus.log, "the event's other topic still heard it"
    assert not any(topic == "handoffs" for _, topic, _ in bus.log)


async def test_without_a_bus_nothing_is_sent():
    await publish_after_commit(None, EVENTS, "lead 1")
