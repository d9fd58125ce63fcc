"""A real SMTP server for the tests (aiosmtpd, on a free loopback port), keeping what it receives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message

from tests.world import free_port


@contextmanager
def smtp_server() -> Iterator[tuple[str, list[Message]]]:
    """The server's `smtp://` URL (for ENTRAIDE_SMTP_URL) and the messages it received, in order."""
    from aiosmtpd.controller import Controller

    received: list[Message] = []

    class Keep:
        async def handle_DATA(self, server, session, envelope) -> str:
            received.append(message_from_bytes(envelope.original_content))
            return "250 OK"

    port = free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", received
    finally:
        controller.stop()
