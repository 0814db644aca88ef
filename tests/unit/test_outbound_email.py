"""The email a touchpoint becomes: no header ever carries a line break, whatever a stored name holds."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from uuid import uuid4

import pytest

from marketing_agents.domain import Channel
from marketing_agents.domain.engagement import Touchpoint
from marketing_agents.stores.outbound_delivery import DeliveryError, email_message

# Everything Python's email package, a mail server or a mail client may take for the end of a line.
LINE_ENDS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"]


def touchpoint(subject: str | None) -> Touchpoint:
    return Touchpoint(id=uuid4(), lead_id=uuid4(), plan_id=uuid4(), step=0, channel=Channel.EMAIL,
                      template="intro-personal", subject=subject, body="Hi Ann,\nline two\u2028of the body.",
                      scheduled_at=datetime.now(UTC))


@pytest.mark.parametrize("line_end", LINE_ENDS, ids=[repr(c) for c in LINE_ENDS])
def test_a_line_end_in_a_subject_becomes_a_space_and_injects_no_header(line_end):
    tp = touchpoint(f"Ann{line_end}Bcc: spy@evil.example{line_end}, a quick idea")
    message = email_message(tp, {"email": "ann@acme-robotics.com"}, "marketing@example.com")

    wire = bytes(message)
    parsed = message_from_bytes(wire)
    assert parsed["Subject"] == "Ann Bcc: spy@evil.example , a quick idea"
    assert parsed["Bcc"] is None and parsed.get_all("To") == ["ann@acme-robotics.com"]
    headers = wire.split(b"\n\n", 1)[0].decode()
    assert all(line.split(":", 1)[0] in {"From", "To", "Subject", "Message-ID", "X-Touchpoint-Id", "Content-Type",
                                         "Content-Transfer-Encoding", "MIME-Version"} or line.startswith(" ")
               for line in headers.splitlines())


def test_a_long_subject_is_folded_not_broken():
    tp = touchpoint("A quick idea for " + "Acme Robotics " * 13)
    wire = bytes(email_message(tp, {"email": "ann@acme-robotics.com"}, "m@example.com"))
    assert b"\n Robotics" in wire or b"\n Acme" in wire, "folded: a continuation line starts with a space"
    assert message_from_bytes(wire, policy=default)["Subject"] == " ".join(tp.subject.split())


def test_no_subject_and_a_blank_one_read_no_subject():
    for subject in (None, "", "\n\u2028 "):
        message = email_message(touchpoint(subject), {"email": "ann@acme-robotics.com"}, "m@example.com")
        assert message["Subject"] == "(no subject)"


@pytest.mark.parametrize("address", ["ann@acme-robotics.com\nBcc: spy@evil.example", "ann@acme\u2028robotics.com",
                                     "", "   "])
def test_an_address_with_a_line_break_is_no_address(address):
    with pytest.raises(DeliveryError, match="To address") as refused:
        email_message(touchpoint("Hello"), {"email": address}, "m@example.com")
    assert refused.value.details == {"field": "To"}


def test_the_message_id_is_the_touchpoint_id_on_every_attempt():
    tp = touchpoint("Hello")
    first, second = (email_message(tp, {"email": "ann@acme-robotics.com"}, "m@example.com") for _ in range(2))
    assert first["Message-ID"] == second["Message-ID"] == f"<{tp.id}@marketing-agents>"
    assert first["X-Touchpoint-Id"] == str(tp.id)
