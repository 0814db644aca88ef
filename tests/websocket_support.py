"""A WebSocket client for the event gateway as a well-behaved client writes it: it answers every ping."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import websockets


def ws_url(http_url: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return http_url.replace("http://", "ws://", 1) + "/ws" + (f"?{query}" if query else "")


class EventClient:
    """Wraps a connection: ``frame()`` returns the next frame that is not a ping (pings are answered)."""

    def __init__(self, connection: websockets.ClientConnection, answer_pings: bool = True) -> None:
        self.connection = connection
        self.answer_pings = answer_pings
        self.pings = 0
        self.last_event_id: str | None = None

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str] | None = None, answer_pings: bool = True,
                      **kwargs: Any) -> EventClient:
        return cls(await websockets.connect(url, additional_headers=headers or {}, **kwargs), answer_pings)

    async def frame(self, timeout_s: float = 30.0) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout_s))
            if frame["type"] == "ping":
                self.pings += 1
                if self.answer_pings:
                    await self.send({"action": "pong", "n": frame["payload"]["n"]})
                continue
            if frame["id"] is not None:
                self.last_event_id = frame["id"]
            return frame

    async def expect(self, kind: str, timeout_s: float = 30.0) -> dict[str, Any]:
        frame = await self.frame(timeout_s)
        assert frame["type"] == kind, f"expected {kind}, got {frame}"
        return frame

    async def events(self, count: int, where=lambda e: True, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The next ``count`` events (frames with an id) that satisfy ``where``; skips the others."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = await self.frame(timeout_s)
            if frame["id"] is not None and where(frame):
                found.append(frame)
        return found

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def closed(self, timeout_s: float = 30.0) -> tuple[int | None, str | None, list[dict[str, Any]]]:
        """Reads until the server closes; returns the close code, its reason and the frames read before."""
        frames: list[dict[str, Any]] = []
        try:
            while True:
                frames.append(await self.frame(timeout_s))
        except websockets.ConnectionClosed as closed:
            received = closed.rcvd
            return (received.code if received else None), (received.reason if received else None), frames

    async def close(self) -> None:
        await self.connection.close()
