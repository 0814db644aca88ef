"""Delivery adapters: how a touchpoint leaves the system. One method each: deliver or raise.

Every adapter hands the touchpoint id to the receiver (SMTP Message-ID, webhook Idempotency-Key), so
that a receiver can recognise a redelivery after a crash between sending and recording it.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Protocol

import httpx

from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.errors import AgentError


class DeliveryError(AgentError):
    code = "delivery_failed"


class DeliveryAdapter(Protocol):
    async def deliver(self, touchpoint: Touchpoint, recipient: dict) -> str:
        """Sends the touchpoint; returns the provider's reference. Raises DeliveryError."""


class SmtpDelivery:
    def __init__(self, host: str, port: int, sender: str, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.sender, self.timeout_s = host, port, sender, timeout_s

    async def deliver(self, touchpoint: Touchpoint, recipient: dict) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient["email"]
        message["Subject"] = touchpoint.subject or "(no subject)"
        message["Message-ID"] = f"<{touchpoint.id}@marketing-agents>"
        message["X-Touchpoint-Id"] = str(touchpoint.id)
        message.set_content(touchpoint.body)
        try:
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port} refused touchpoint {touchpoint.id}: {exc}") from exc
        return message["Message-ID"]

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(message)


class WebhookDelivery:
    """SMS, LinkedIn, call tasks and webinar invites go to a provider's (or the CRM's) webhook."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self.timeout_s = url, timeout_s

    async def deliver(self, touchpoint: Touchpoint, recipient: dict) -> str:
        payload = {"touchpoint": touchpoint.model_dump(mode="json"), "recipient": recipient}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(self.url, json=payload, headers={"Idempotency-Key": str(touchpoint.id)})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.url} unreachable for touchpoint {touchpoint.id}: {exc}") from exc
        if response.status_code >= 300:
            raise DeliveryError(f"webhook {self.url} answered {response.status_code} for touchpoint {touchpoint.id}")
        return response.headers.get("X-Request-Id") or f"http-{response.status_code}"
