"""GET /metrics in-process: the node's export passed through as it is, or 503 with Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from marketing_agents.serve_app.http_errors import install_error_handlers
from marketing_agents.serve_app.system_routes import add_system_routes
from tests.support import free_port

EXPORT = (b"# HELP ray_mas_handoffs_total Handoffs by outcome.\n# TYPE ray_mas_handoffs_total counter\n"
          b'ray_mas_handoffs_total{status="completed",to_agent="EngagementAgent"} 3.0\n')


@pytest.fixture
def node_export() -> Iterator[int]:
    class Export(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.end_headers()
            self.wfile.write(EXPORT)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Export)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def client_for(port: int) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    add_system_routes(app, port)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_node_export_is_passed_through_in_the_prometheus_text_format(node_export):
    async with client_for(node_export) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.content == EXPORT
    [family] = text_string_to_metric_families(response.text)
    assert family.name == "ray_mas_handoffs" and family.samples[0].value == 3.0


async def test_an_export_that_cannot_be_reached_is_503_with_retry_after():
    async with client_for(free_port()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "metrics_unavailable"
