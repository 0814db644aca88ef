"""Local stand-ins for the outside world's receivers, for `make run` only: an SMTP server and a
webhook that write every touchpoint they receive to MAS_DATA_DIR/outbox, as files a user can open
(.eml in any mail client, .json for SMS, LinkedIn, call tasks and webinar invites).

They are real servers speaking real protocols; production points MAS_SMTP_HOST / MAS_WEBHOOK_URL
at real providers instead. Like a provider should, they deduplicate by the idempotency key the
dispatcher sends (X-Touchpoint-Id, Idempotency-Key: the touchpoint's id, the same on every attempt):
a redelivery after a crash overwrites the same file, so each touchpoint is one file. A key that is not a
touchpoint id is refused rather than used as a file name, so that no request writes outside the outbox.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

from aiosmtpd.controller import Controller


def touchpoint_key(value: str | None) -> str | None:
    """The touchpoint id a receiver was given, as a file name; None when it is not one."""
    try:
        return str(UUID((value or "").strip().strip("<>").split("@")[0]))
    except ValueError:
        return None


class _EmlWriter:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        from email import message_from_bytes

        message = message_from_bytes(envelope.content)
        # A message from elsewhere (no touchpoint id) is kept too, named by its content.
        name = (touchpoint_key(message.get("X-Touchpoint-Id")) or touchpoint_key(message.get("Message-ID"))
                or "message-" + hashlib.sha256(envelope.content).hexdigest()[:16])
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
                key = touchpoint_key(self.headers.get("Idempotency-Key"))
                try:
                    body = json.loads(self.rfile.read(max(0, int(self.headers.get("Content-Length", 0)))))
                except ValueError:
                    body = None
                if key is None or body is None:
                    self.send_response(400)  # not a touchpoint: no id to file it under, or no JSON
                else:
                    (outbox / f"{key}.json").write_bytes(json.dumps(body, indent=2).encode())
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
