"""Leads posted over real HTTP the whole time a fault is injected, every request and its answer kept.

The multi-node test kills a node under this traffic, the fault suite a store or an actor; both then
check that what the API accepted is stored whole, and retry what it refused with the same key.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass

import httpx

from tests.support import lead_payload


@dataclass
class Post:
    n: int
    key: str
    body: dict
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no HTTP answer at all
    error: str = ""
    retry_after: str | None = None  # the Retry-After header of a refusal
    lead_id: str | None = None
    lead_status: str | None = None  # as answered: engaged, ..., or handing_off (recovery finishes it)

    @property
    def accepted(self) -> bool:
        return self.status == 200


class LeadTraffic:
    """``concurrency`` clients posting leads back to back; every request and its answer is kept."""

    def __init__(self, http: httpx.AsyncClient, concurrency: int, label: str = "multi-node") -> None:
        self.http = http
        self.label = label  # keeps each run's external ids and emails its own
        self.concurrency = concurrency
        self.posts: list[Post] = []
        self._numbers = itertools.count()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.concurrency)))

    def stop(self) -> None:
        self._stopping.set()

    async def _client(self) -> None:
        while not self._stopping.is_set():
            n = next(self._numbers)
            post = Post(n, f"{self.label}-{n}-{secrets.token_hex(4)}", lead_payload(
                email=f"lead-{n}@{self.label}-{n % 7}.io", company=f"{self.label} {n}", external_id=f"{self.label}-{n}"),
                started=time.monotonic())
            self.posts.append(post)
            await self.send(post)
            if post.status == 503:
                await self._pause(post.retry_after)

    async def _pause(self, retry_after: str | None) -> None:
        """A client that honours ``Retry-After``, as well-behaved ones do, at most a second here so that
        the traffic notices the recovery promptly; stopping the traffic ends the pause."""
        try:
            delay = min(float(retry_after or 1), 1.0)
        except ValueError:
            delay = 1.0
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            pass

    async def send(self, post: Post) -> Post:
        try:
            response = await self.http.post("/api/v1/leads", json=post.body, headers={"Idempotency-Key": post.key})
            post.status = response.status_code
            if response.status_code == 200:
                post.lead_id, post.lead_status = response.json()["lead_id"], response.json()["status"]
            else:
                post.error, post.retry_after = response.text[:300], response.headers.get("retry-after")
        except httpx.HTTPError as exc:
            post.status, post.error = None, f"{type(exc).__name__}: {exc}"
        post.ended = time.monotonic()
        return post

    def ended_after(self, t: float) -> int:
        return sum(p.ended > t for p in self.posts if p.ended)

    def accepted_started_after(self, t: float) -> int:
        return sum(p.accepted for p in self.posts if p.started > t)
