"""``GET /metrics``: the Ray node's Prometheus export, through the API's port.

Ray's metrics agent on every node serves everything recorded on that node (our ``ray_mas_*`` metrics,
Serve's and Ray's own) on ``MAS_METRICS_EXPORT_PORT``. The gateway replica fetches its own node's
export and answers it as it is, in the Prometheus text format; when the agent cannot be reached the
answer is 503 with ``Retry-After``. In a cluster of several nodes this shows the node the answering
gateway replica runs on; Prometheus should scrape each node's export directly.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import Response

from marketing_agents.serve_app.http_errors import ErrorResponse, error_response

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FETCH_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5


def add_system_routes(app: FastAPI, metrics_export_port: int, host: str = "127.0.0.1") -> None:
    export_url = f"http://{host}:{metrics_export_port}/metrics"

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "Prometheus text exposition format 0.0.4",
                  "content": {"text/plain": {"schema": {"type": "string"}}}},
            503: {"model": ErrorResponse, "description": "The node's metrics export cannot be reached"},
        },
        tags=["system"],
        summary="Prometheus metrics of this node: ray_mas_* (handoffs, touchpoints), Serve's and Ray's own",
    )
    async def metrics():
        try:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:
                exported = await client.get(export_url)
            exported.raise_for_status()
        except httpx.HTTPError as exc:
            return error_response(503, "metrics_unavailable", f"the node's metrics export at {export_url} did not "
                                  f"answer: {exc or type(exc).__name__}", {"url": export_url}, RETRY_AFTER_S)
        return Response(exported.content, media_type=CONTENT_TYPE)
