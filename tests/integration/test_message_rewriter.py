"""The optional LLM rewriter against a real local OpenAI-compatible HTTP server: it rewords, or keeps templates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiohttp import web
from pydantic import SecretStr

from marketing_agents.actors.engagement import EngagementAgent
from marketing_agents.actors.handoff import HandoffOrchestrator
from marketing_agents.actors.rewriter import MessageRewriter
from marketing_agents.actors.triage import TriageAgent, TriageThresholds
from marketing_agents.domain import Lead, NewLead, utc_now
from tests.support import free_port, lead_payload


class FakeModelServer:
    """A real HTTP server speaking the chat-completions shape; its answer is set per test."""

    def __init__(self) -> None:
        self.answer = lambda text: {"choices": [{"message": {"content": f"Reworded for you: {text}"}}]}
        self.status = 200
        self.delay_s = 0.0
        self.requests: list[dict] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("Authorization")})
        await asyncio.sleep(self.delay_s)  # a slow model, for the timeout test
        message = body["messages"][-1]["content"].split("Message:\n", 1)[1]
        return web.json_response(self.answer(message), status=self.status)


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    server = FakeModelServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


def a_plan():
    lead = Lead(**NewLead(**lead_payload()).model_dump(), id=uuid4(), created_at=utc_now())
    triage = TriageAgent(TriageThresholds()).triage(lead, utc_now())
    prepared = HandoffOrchestrator(0.6).prepare(lead, triage, [], {}, utc_now())
    return lead, EngagementAgent().plan(prepared.package, utc_now())


async def test_messages_are_reworded_and_the_key_is_sent(model_server):
    lead, plan = a_plan()
    rewriter = MessageRewriter(f"http://127.0.0.1:{model_server.port}/v1", "local-model", SecretStr("k-123"))
    rewritten = await rewriter.rewrite(plan, lead)
    await rewriter.close()

    assert [tp.body for tp in rewritten.touchpoints] == [f"Reworded for you: {tp.body}" for tp in plan.touchpoints]
    assert [tp.id for tp in rewritten.touchpoints] == [tp.id for tp in plan.touchpoints]
    assert f"{len(plan.touchpoints)} of {len(plan.touchpoints)} messages reworded by local-model" in rewritten.rationale
    assert {r["auth"] for r in model_server.requests} == {"Bearer k-123"}
    assert all(r["body"]["model"] == "local-model" for r in model_server.requests)


@pytest.mark.parametrize(("status", "answer", "problem"), [
    (500, None, "the rewriter failed (HTTPStatusError)"),
    (200, lambda text: {"unexpected": True}, "the rewriter failed (KeyError)"),
    (200, lambda text: {"choices": [{"message": {"content": "Buy now!"}}]}, "lost the recipient's name"),
    (200, lambda text: {"choices": [{"message": {"content": "Jane " + "x" * 2000}}]}, "empty or too long"),
])
async def test_a_failing_or_bad_rewrite_keeps_the_template_and_says_why(model_server, status, answer, problem):
    model_server.status = status
    if answer is not None:
        model_server.answer = answer
    lead, plan = a_plan()
    rewriter = MessageRewriter(f"http://127.0.0.1:{model_server.port}/v1", "m")
    kept = await rewriter.rewrite(plan, lead)
    await rewriter.close()

    assert [tp.body for tp in kept.touchpoints] == [tp.body for tp in plan.touchpoints]
    assert problem in kept.rationale


async def test_a_slow_model_times_out_and_the_plan_goes_out_with_templates(model_server):
    model_server.delay_s = 2.0
    lead, plan = a_plan()
    rewriter = MessageRewriter(f"http://127.0.0.1:{model_server.port}/v1", "m", timeout_s=0.2)
    kept = await rewriter.rewrite(plan, lead)
    await rewriter.close()
    assert [tp.body for tp in kept.touchpoints] == [tp.body for tp in plan.touchpoints]
    assert "ReadTimeout" in kept.rationale
