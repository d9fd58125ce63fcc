"""Outgoing e-mail: an SMTP server (`ENTRAIDE_SMTP_URL`, smtplib), or, in the demo only, a mailbox
kept in memory that the demo's `/dev/mailbox` page shows (nothing leaves the machine)."""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

SMTP_TIMEOUT_SECONDS = 20
DEV_MAILBOX_SIZE = 100


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


def check_smtp_url(url: str) -> None:
    """`smtp://[user:password@]host[:port][?starttls=1]` or `smtps://…` (TLS from the start)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"ENTRAIDE_SMTP_URL must be smtp://host[:port] or smtps://host[:port], not {url!r}")


@dataclass(frozen=True)
class SmtpMailer:
    url: str

    def send(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        context = ssl.create_default_context()
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=SMTP_TIMEOUT_SECONDS, context=context
            )
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if parts.scheme == "smtp" and parse_qs(parts.query).get("starttls") == ["1"]:
                client.starttls(context=context)
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)


class DevMailbox:
    """The demo's outgoing mail, newest first, the last DEV_MAILBOX_SIZE messages (per process)."""

    def __init__(self) -> None:
        self._messages: deque[EmailMessage] = deque(maxlen=DEV_MAILBOX_SIZE)
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            self._messages.appendleft(message)

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)
