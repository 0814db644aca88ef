"""A Serve deployment that does nothing: the anchor that measures the proxy and the client alone.

``bench_leads.py`` deploys it beside the main application, on the same cluster, behind the same Serve
proxy (``import_path: noop_app:app``, ``route_prefix: /calibration/noop``, with this directory on the
workers' PYTHONPATH), and drives it with the same load generator as ``POST /api/v1/leads``. Whatever
latency and throughput it shows is what HTTP, the proxy, the hop to a replica and the client cost on
that machine at that moment; the lead pipeline's figures are read as a ratio to it. It answers a small
JSON at once, after reading the body so that the request travels as far as a lead's does. It lives
here, not in the package, because it is never part of the application, and it needs no API key (the
access control lives in the main application's gateway).
"""

from __future__ import annotations

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse


@serve.deployment(name="NoOp", num_replicas=1, max_ongoing_requests=200, ray_actor_options={"num_cpus": 0.1})
class NoOp:
    async def __call__(self, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})


app = NoOp.bind()
