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
    """Accepts everything except recipients starting with 'bad' (550) or 'busy' (451).

    ``messages`` holds the parsed messages, ``envelopes`` the SMTP envelopes, ``times`` when
    each arrived; ``delay`` slows every DATA answer down (a slow server).
    """

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list = []
        self.times: list[float] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> "Sink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.times.append(time.time())
            self.messages.append(message)
            self.envelopes.append(envelope)
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
