"""The WebSocket gateway's limits without sockets or Redis: the subscribe throttle's sliding window and
the per-replica count of open sockets."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

from marketing_agents.serve_app.websocket import CLOSE_TRY_AGAIN, GatewayLimits, MessageThrottle, SocketAdmission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_admits_limit_messages_in_any_window_and_says_when_the_next_fits():
    clock = Clock()
    throttle = MessageThrottle(3, 60.0, clock)
    for step in (0, 10, 10):
        clock.now += step
        assert throttle.take() == 0
    clock.now += 5  # 25 s after the first
    assert throttle.take() == 35.0, "the first message leaves the window 60 s after it came"
    assert throttle.take() == 35.0, "a refused message is not counted"
    clock.now += 35
    assert throttle.take() == 0
    assert throttle.take() == 10.0, "then the second one's turn, 60 s after it came"


async def test_a_replica_counts_its_open_sockets_and_refusals_do_not_count():
    admission = SocketAdmission(GatewayLimits(max_per_replica=2), None)
    anonymous, keyed = None, SimpleNamespace(key_id=uuid4())  # without leases, a key is not counted across
    assert await admission.admit(anonymous, "a") is None
    assert await admission.admit(keyed, "b") is None
    refused = await admission.admit(anonymous, "c")
    assert refused is not None and refused.close_code == CLOSE_TRY_AGAIN and refused.code == "replica_full"
    assert "MAS_WS_MAX_PER_REPLICA" in refused.message and admission.open == 2
    await admission.release(anonymous, "a")
    assert await admission.admit(anonymous, "c") is None and admission.open == 2
