"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

import asyncio
import email
import socket
import threading
import time
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkHandler:
    """Accepts everything except addresses starting with 'bad' (550) or 'busy' (451)."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.envelopes: list = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 No such user"
        if address.startswith("busy"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.times.append(time.time())
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            self.envelopes.append(envelope)
        return "250 Message accepted"

    def parsed(self) -> list[EmailMessage]:
        with self.lock:
            return [
                email.message_from_bytes(raw, policy=policy.default) for _, _, raw in self.messages
            ]

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for _, rcpts, _ in self.messages for rcpt in rcpts]

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                break
            time.sleep(0.05)
        return self.parsed()


class SMTPSink:
    def __init__(self):
        self.handler = SinkHandler()
        self.handler.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.handler.port)

    def __enter__(self) -> SinkHandler:
        self.controller.start()
        return self.handler

    def __exit__(self, *exc):
        self.controller.stop()


def body_text(message: EmailMessage, subtype: str = "html") -> str:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""
