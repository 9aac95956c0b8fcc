"""The e-mail built from one outbox row: the same row always gives the same Message-ID.

The Message-ID is derived from the row's id, so a message handed to the server twice (see tessera/email/state.py
for when that can happen) carries one id, and mail systems that de-duplicate by it show it once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from tessera.auth.emails import normalize_email


@dataclass(frozen=True)
class Sender:
    """The From of every message: a display name and an address."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


def parse_from(value: str) -> Sender:
    """`Name <address>` or a bare address, checked; ValueError otherwise."""
    if any(character in value for character in "\r\n\0"):
        raise ValueError("line breaks and NUL are not allowed")
    found = getaddresses([value])
    if len(found) != 1 or not found[0][1]:
        raise ValueError(f"{value!r} is not one address; write e.g. Example Software <licenses@example.com>")
    name, address = found[0]
    return Sender(name=name.strip(), address=normalize_email(address))


def message_id(event_id: uuid.UUID, sender: Sender) -> str:
    return f"<{event_id}@{sender.domain}>"


@dataclass(frozen=True)
class Outgoing:
    """What is handed to the SMTP server: envelope and the message's bytes."""

    message_id: str
    sender: str
    recipients: list[str]
    data: bytes


def build_message(
    *,
    event_id: uuid.UUID,
    sender: Sender,
    recipients: list[str],
    subject: str,
    body: str,
    created_at: datetime,
    language: str | None = None,
) -> Outgoing:
    """The message for one outbox row, 7-bit clean (quoted-printable UTF-8 text, encoded headers).

    Several recipients of one row (e.g. the approvers of an order) get one message without seeing each other's
    addresses: they may belong to different organizations.
    """
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(display_name=sender.name, addr_spec=sender.address)
    message["To"] = recipients[0] if len(recipients) == 1 else "undisclosed-recipients:;"
    message["Subject"] = subject or "(no subject)"
    message["Date"] = format_datetime(created_at)
    message["Message-ID"] = message_id(event_id, sender)
    # Tells vacation responders and ticket systems not to answer an automatic message.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, charset="utf-8", cte="quoted-printable")
    if language:  # after set_content, which replaces every Content-* header
        message["Content-Language"] = language
    return Outgoing(
        message_id=message_id(event_id, sender),
        sender=sender.address,
        recipients=list(recipients),
        data=message.as_bytes(policy=policy.SMTP),
    )
