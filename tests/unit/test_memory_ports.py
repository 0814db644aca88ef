"""Each memory tier's two implementations, in-process and the Ray actor's proxy, against the tier's port.

A caller must not be able to tell which one it holds, so both provide every method of the port as a
coroutine with the port's signature (names, kinds, defaults, annotations). The check is live: a class
that lacks a method, or spells one differently, fails it.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from marketing_agents.memory.episodic import EpisodicMemory
from marketing_agents.memory.long_term import LongTermMemory
from marketing_agents.memory.manager import UnifiedMemoryManager
from marketing_agents.memory.ports import (
    TIER_PORTS,
    EpisodicPort,
    LeadRecords,
    LongTermPort,
    SemanticPort,
    ShortTermPort,
)
from marketing_agents.memory.semantic import SemanticMemory
from marketing_agents.memory.short_term import ShortTermMemory
from marketing_agents.memory.tier_actors import (
    TIER_NAMES,
    TIER_PROXIES,
    EpisodicActor,
    LeadRecordsActor,
    LongTermActor,
    SemanticActor,
    ShortTermActor,
)
from marketing_agents.stores.postgres import LeadErasure

# tier name -> (port, in-process implementation, actor proxy)
TIERS: dict[str, tuple[type, type, type]] = {
    "short_term": (ShortTermPort, ShortTermMemory, ShortTermActor),
    "long_term": (LongTermPort, LongTermMemory, LongTermActor),
    "episodic": (EpisodicPort, EpisodicMemory, EpisodicActor),
    "semantic": (SemanticPort, SemanticMemory, SemanticActor),
    "leads": (LeadRecords, LeadErasure, LeadRecordsActor),
}


def port_methods(port: type) -> dict[str, Any]:
    return {name: member for name, member in vars(port).items()
            if not name.startswith("_") and inspect.iscoroutinefunction(member)}


def mismatches(port: type, implementation: type) -> list[str]:
    """What keeps ``implementation`` from standing in for ``port``: one line per problem, none when it can.

    Looked up on the class, so that a proxy's ``__getattr__`` (which answers any name) cannot hide a gap.
    """
    problems = []
    for name, spec in port_methods(port).items():
        method = inspect.getattr_static(implementation, name, None)
        if method is None:
            problems.append(f"{name}: missing")
            continue
        if not inspect.iscoroutinefunction(method):
            problems.append(f"{name}: not a coroutine function")
            continue
        expected = inspect.signature(spec, eval_str=True)
        actual = inspect.signature(method, eval_str=True)
        wanted, given = list(expected.parameters.values()), list(actual.parameters.values())
        for want, have in zip(wanted, given, strict=False):
            for part in ("name", "kind", "default", "annotation"):
                if getattr(want, part) != getattr(have, part):
                    problems.append(f"{name}: parameter {want.name!r} has {part} {getattr(have, part)!r}, "
                                    f"the port's is {getattr(want, part)!r}")
        problems += [f"{name}: parameter {want.name!r} missing" for want in wanted[len(given):]]
        problems += [f"{name}: extra parameter {have.name!r} without a default" for have in given[len(wanted):]
                     if have.default is inspect.Parameter.empty
                     and have.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        if expected.return_annotation != actual.return_annotation:
            problems.append(f"{name}: returns {actual.return_annotation!r}, the port's {expected.return_annotation!r}")
    return problems


def test_every_tier_has_a_port_and_a_proxy():
    assert set(TIERS) == set(TIER_NAMES) == set(TIER_PORTS) == set(TIER_PROXIES)
    assert all(TIER_PORTS[name] is port and TIER_PROXIES[name] is proxy for name, (port, _, proxy) in TIERS.items())


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_the_in_process_tier_provides_its_port(tier: str):
    port, implementation, _ = TIERS[tier]
    assert port_methods(port), f"the {tier} port declares no methods"
    assert mismatches(port, implementation) == []


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_the_actor_proxy_provides_its_port(tier: str):
    port, _, proxy = TIERS[tier]
    assert mismatches(port, proxy) == []


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_the_port_lists_everything_the_in_process_tier_offers(tier: str):
    """Else a caller could use a method in-process that the proxy only reaches by luck, by name."""
    port, implementation, _ = TIERS[tier]
    offered = {name for name, member in inspect.getmembers(implementation, inspect.iscoroutinefunction)
               if not name.startswith("_")}
    assert offered - set(port_methods(port)) == set()


def test_the_manager_takes_the_ports():
    hints = inspect.signature(UnifiedMemoryManager.__init__, eval_str=True).parameters
    assert [hints[name].annotation for name in ("short_term", "long_term", "episodic", "semantic", "leads")] == [
        ShortTermPort, LongTermPort, EpisodicPort, SemanticPort, LeadRecords]


class IncompleteLongTerm:
    """Deliberately short of the long-term port: one method missing, one misspelt, one not a coroutine."""

    async def refresh_rfm(self, as_of): ...

    async def rfm_rows(self) -> list[dict[str, Any]]: ...

    async def record_activity(self, lead: UUID, channel: str, at: datetime) -> None: ...

    def record_score(self, lead_id: UUID, lead_score: float, at: datetime) -> None: ...


def test_a_tier_short_of_its_port_is_caught():
    found = mismatches(LongTermPort, IncompleteLongTerm)
    assert "profile: missing" in found
    assert "record_score: not a coroutine function" in found
    assert any(line.startswith("record_activity: parameter 'lead_id' has name 'lead'") for line in found)
    assert any(line.startswith("refresh_rfm: parameter 'as_of' has annotation") for line in found)
    assert any(line.startswith("refresh_rfm: returns") for line in found)
    assert not any(line.startswith("rfm_rows") for line in found)
