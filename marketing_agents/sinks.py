"""Local stand-ins for the outside world's receivers, for `make run` only: an SMTP server and a
webhook that write every touchpoint they receive to MAS_DATA_DIR/outbox, as files a user can open
(.eml in any mail client, .json for SMS, LinkedIn, call tasks and webinar invites).

They are real servers speaking real protocols; production points MAS_SMTP_HOST / MAS_WEBHOOK_URL
at real providers instead.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller


class _EmlWriter:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        name = message.get("X-Touchpoint-Id") or message.get("Message-ID", "message").strip("<>")
        (self.outbox / f"{name}.eml").write_bytes(envelope.content)
        return "250 OK"


class OutboxSinks:
    def __init__(self, outbox: Path, smtp_port: int, webhook_port: int) -> None:
        self.outbox = outbox
        self.smtp_port = smtp_port
        self.webhook_port = webhook_port
        self._smtp: Controller | None = None
        self._http: ThreadingHTTPServer | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/deliver"

    def start(self) -> str:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._smtp = Controller(_EmlWriter(self.outbox), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        outbox = self.outbox

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key") or "request"
                (outbox / f"{key}.json").write_bytes(json.dumps(json.loads(body), indent=2).encode())
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", self.webhook_port), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True, name="webhook-sink").start()
        return f"SMTP on 127.0.0.1:{self.smtp_port}, webhook on {self.webhook_url}, files in {self.outbox}"

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
