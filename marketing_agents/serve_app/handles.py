"""A deployment's methods as plain awaitable calls, so callers need not know where the work runs."""

from __future__ import annotations

from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from marketing_agents.serve_app.http_errors import unwrap


class Remote:
    """``await Remote(handle).method(*args)``, raising the replica's own error rather than Ray's wrapper.

    Routes and the MCP server take either this or the plain class itself (in tests), with one interface.
    """

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._handle, name)

        async def call(*args: Any) -> Any:
            try:
                return await method.remote(*args)
            except RayTaskError as exc:
                raise unwrap(exc) from None

        return call
