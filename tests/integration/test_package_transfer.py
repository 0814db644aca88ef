"""A handoff package rides in the call below Ray's inline limit and by reference above it, intact either way."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
import ray

from marketing_agents.actors.handoff import HandoffOrchestrator, package_bytes
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import HandoffPackage, Lead, NewLead
from marketing_agents.domain.common import utc_now
from marketing_agents.domain.recall import MemoryRecall
from marketing_agents.serve_app.package_transfer import INLINE_LIMIT_BYTES, PackageTransfer
from tests.support import lead_payload


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, include_dashboard=False, namespace="mas-test-transfer",
             logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote
class Receiver:
    async def open(self, transfer: PackageTransfer) -> tuple[bool, HandoffPackage]:
        return transfer.by_reference, await transfer.open()


def package_with_memory(size: int) -> HandoffPackage:
    now = utc_now()
    lead = Lead(**NewLead(**lead_payload()).model_dump(), id=uuid4(), created_at=now)
    triage = TriageAgent(TriageThresholds()).triage(lead, now)
    memory = MemoryRecall(lead_id=lead.id, context={"notes": "x" * size}, elapsed_ms=0.0)
    return HandoffOrchestrator(0.6).build_package(lead, triage, [], now, memory=memory)


@pytest.mark.parametrize(("memory_chars", "by_reference"), [(2_000, False), (INLINE_LIMIT_BYTES, True)])
def test_the_receiver_reads_the_same_package_either_way(cluster, memory_chars, by_reference):
    package = package_with_memory(memory_chars)

    sent_by_reference, received = ray.get(Receiver.remote().open.remote(PackageTransfer.of(package)))

    assert sent_by_reference is by_reference
    assert (package_bytes(package) >= INLINE_LIMIT_BYTES) is by_reference
    assert received == package


def test_a_transfer_by_reference_serves_every_retry(cluster):
    """The package is put once; a second attempt with the same transfer reads the same object."""
    package = package_with_memory(INLINE_LIMIT_BYTES)
    transfer = PackageTransfer.of(package)
    receiver = Receiver.remote()

    first, second = ray.get([receiver.open.remote(transfer), receiver.open.remote(transfer)])

    assert first == second == (True, package)
