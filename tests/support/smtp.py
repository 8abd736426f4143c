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


class Sink:
    """Accepts everything except recipients starting with 'bad' (550), 'busy' (451) or
    'dmarc' (550 5.7.26, a sender-caused refusal), and misbehaves on purpose for others:

    - 'lost...': the whole message is taken (kept here, as a real server would queue it), then
      the connection drops before the "250 OK" goes back;
    - 'stall...': the answer to DATA comes ``stall`` seconds late.

    ``down()`` closes the port (connections refused) until ``up()``. ``messages`` holds the
    parsed messages, ``envelopes`` the SMTP envelopes, ``times`` when each one's data had
    arrived and ``requested`` when its MAIL FROM came (the moment a server's message rate limit
    counts it, like Postfix's anvil); ``delay`` slows every DATA answer down (a slow server).
    """

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list = []
        self.times: list[float] = []
        self.requested: list[float] = []
        self.delay = 0.0
        self.stall = 0.0
        self._lock = threading.Lock()
        self._port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self._port)
        self.is_up = False

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> "Sink":
        self.controller.start()
        self.is_up = True
        return self

    def stop(self) -> None:
        if self.is_up:
            self.controller.stop()
            self.is_up = False

    def down(self) -> None:
        """An outage: the port refuses connections (open ones are closed)."""
        self.stop()

    def up(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self._port)
        self.start()

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.requested_at = time.time()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bad"):
            return "550 5.1.1 No such user"
        if address.startswith("busy"):
            return "451 4.3.0 Try again later"
        if address.startswith("dmarc"):
            return "550 5.7.26 This mail has been blocked because the sender is unauthenticated."
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        if self.delay:
            await asyncio.sleep(self.delay)
        rcpt = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        if rcpt.startswith("stall") and self.stall:
            await asyncio.sleep(self.stall)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.times.append(arrived)
            self.requested.append(envelope.requested_at)
            self.messages.append(message)
            self.envelopes.append(envelope)
        if rcpt.startswith("lost"):
            # Queued, then the line drops: the client never hears the "250".
            server.transport.abort()
            return "250 Message accepted (never heard)"
        return "250 Message accepted"

    def parsed(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def recipients(self) -> list[str]:
        with self._lock:
            return [rcpt for envelope in self.envelopes for rcpt in envelope.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()
