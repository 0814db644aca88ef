"""Delivery adapters: how a touchpoint leaves the system. One method each: deliver or raise.

Every adapter hands the touchpoint id to the receiver (SMTP Message-ID, webhook Idempotency-Key), the
same on every attempt, so that a receiver can recognise a redelivery after a crash between sending and
recording it (delivery is at least once across such a crash; see the dispatcher).
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from typing import Protocol

import httpx

from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.domain.text import one_line_problem
from marketing_agents.errors import AgentError


class DeliveryError(AgentError):
    code = "delivery_failed"


class DeliveryAdapter(Protocol):
    async def deliver(self, touchpoint: Touchpoint, recipient: dict) -> str:
        """Sends the touchpoint; returns the provider's reference. Raises DeliveryError."""


def header_text(value: str) -> str:
    """``value`` on one line, for text such as a subject, where a name with a line break in it is still the
    name: each character a one-line field refuses (``domain.text``: controls, CR and LF but also VT, FF,
    NEL and the file, group and record separators, which Python's email package reads as line ends, and
    U+2028 and U+2029) becomes a space, and runs of spaces become one. A header that kept one could end
    the header, or show a mail client a second line or a forged header."""
    return " ".join("".join(" " if one_line_problem(char) else char for char in value).split())


def header_address(value: str, field: str) -> str:
    """An address as it stands, or DeliveryError: an address with a line break in it is not the lead's
    address with a typo but no address at all, and joining its lines could reach someone else."""
    if one_line_problem(value) or not value.strip():
        raise DeliveryError(f"the {field} address has a control character or line break in it, or is blank; "
                            "it cannot be sent to", {"field": field})
    return value


def email_message(touchpoint: Touchpoint, recipient: dict, sender: str) -> EmailMessage:
    """The email for a touchpoint. Its Message-ID is the touchpoint's id, the same on every attempt."""
    message = EmailMessage()
    message["From"] = header_address(sender, "From")
    message["To"] = header_address(str(recipient.get("email") or ""), "To")
    message["Subject"] = header_text(touchpoint.subject or "") or "(no subject)"
    message["Message-ID"] = f"<{touchpoint.id}@marketing-agents>"
    message["X-Touchpoint-Id"] = str(touchpoint.id)
    message.set_content(touchpoint.body)
    return message


class SmtpDelivery:
    def __init__(self, host: str, port: int, sender: str, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.sender, self.timeout_s = host, port, sender, timeout_s

    async def deliver(self, touchpoint: Touchpoint, recipient: dict) -> str:
        try:
            message = email_message(touchpoint, recipient, self.sender)
        except ValueError as exc:  # the email package refuses what it cannot write as a message
            raise DeliveryError(f"touchpoint {touchpoint.id} cannot be written as an email: {exc}") from exc
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
