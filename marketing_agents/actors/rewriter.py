"""An optional LLM pass over a plan's messages, off unless ``MAS_LLM_REWRITER_URL`` is set.

Templates are the source of truth: they are reviewed, consistent and free. The rewriter only varies
their wording for the lead, through any OpenAI-compatible ``/chat/completions`` endpoint (a hosted
model or a local one). It may never block or break a plan: on any error, timeout or an answer that
fails the checks below, the template text stays and the plan's rationale says so. Nothing in the
system, tests included, needs it.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from pydantic import SecretStr

from marketing_agents.domain import EngagementPlan, Lead, Touchpoint

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1000
INSTRUCTIONS = (
    "You edit B2B marketing messages. Rewrite the message so it reads naturally for the recipient. "
    "Keep every fact, name, offer and call to action; add no new claims, numbers or links; keep it "
    "at most as long as the original plus 20%. Answer with the rewritten message only."
)


class MessageRewriter:
    def __init__(self, base_url: str, model: str, api_key: SecretStr | None = None, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                         transport=transport)
        self._model = model

    async def rewrite(self, plan: EngagementPlan, lead: Lead) -> EngagementPlan:
        """The plan with each message reworded; any message that could not be keeps its template text."""
        results = await asyncio.gather(*(self._rewrite_one(tp, lead) for tp in plan.touchpoints))
        touchpoints = [tp.model_copy(update={"body": body}) if body else tp
                       for tp, (body, _) in zip(plan.touchpoints, results, strict=True)]
        problems = sorted({problem for _, problem in results if problem})
        rewritten = sum(1 for body, _ in results if body)
        note = f"; {rewritten} of {len(touchpoints)} messages reworded by {self._model}"
        if problems:
            note += f" (templates kept where: {', '.join(problems)})"
        return plan.model_copy(update={"touchpoints": touchpoints, "rationale": plan.rationale + note})

    async def _rewrite_one(self, touchpoint: Touchpoint, lead: Lead) -> tuple[str | None, str | None]:
        prompt = (f"Recipient: {lead.first_name} {lead.last_name}, {lead.job_title} at {lead.company} "
                  f"({lead.industry}). Channel: {touchpoint.channel.value}.\nMessage:\n{touchpoint.body}")
        try:
            response = await self._client.post("/chat/completions", json={
                "model": self._model, "temperature": 0.4,
                "messages": [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}]})
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"].strip()
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("rewriter failed for touchpoint %s: %s", touchpoint.id, type(exc).__name__)
            return None, f"the rewriter failed ({type(exc).__name__})"
        if not text or len(text) > MAX_BODY_CHARS:
            return None, "the rewrite was empty or too long"
        if lead.first_name not in text:
            return None, "the rewrite lost the recipient's name"
        return text, None

    async def close(self) -> None:
        await self._client.aclose()
