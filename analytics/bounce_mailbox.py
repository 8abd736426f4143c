"""The bounce mailbox, read over IMAP on a schedule (see analytics.bounce_mail for parsing).

Each message is processed once: its (folder, UIDVALIDITY, UID) is recorded in BounceMessage
in the same transaction as the facts it filed, and the facts' uids are derived from it, so a
crash between filing and moving files nothing twice. Read messages are moved to the done
folder (UID MOVE, or COPY + \\Deleted + EXPUNGE on servers without MOVE); unparseable ones stay
where they are, flagged, and are listed on the bounces page — never lost.

Ingestion is batched already: what one IMAP FETCH brings (up to BATCH messages) is filed in one
transaction, its BounceMessage rows and one ``ingest_facts`` call for all their facts. It does
not go through the Redis buffer like the ESP webhooks: it runs on a worker, not on a request,
and committing a message's row with its facts is what makes each message filed exactly once.

TLS is verified like the SMTP connections: ``imaps://`` (implicit TLS) or ``imap://`` (STARTTLS)
check the certificate and host against the system's CAs; ``imap+plain://`` is refused unless
the host is loopback.
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import re
import ssl
from dataclasses import dataclass
from email.header import decode_header, make_header
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from .bounce_mail import UNPARSEABLE, parse
from .ingest import ingest_facts
from .models import BounceMessage

log = logging.getLogger(__name__)
BATCH = 200


class MailboxError(Exception):
    pass


@dataclass(frozen=True)
class MailboxSettings:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> MailboxSettings:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in {"imaps", "imap", "imap+plain"}:
            raise MailboxError("BOUNCE_IMAP_URL must start with imaps://, imap:// or imap+plain://")
        host = parts.hostname or ""
        if scheme == "imap+plain" and not _loopback(host):
            raise MailboxError("Plain IMAP (no TLS) is only allowed to a loopback host.")
        return cls(
            scheme=scheme,
            host=host,
            port=parts.port or (993 if scheme == "imaps" else 143),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
        )

    @property
    def key(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(s: MailboxSettings) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    if s.scheme == "imaps":
        imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=30)
    else:
        imap = imaplib.IMAP4(s.host, s.port, timeout=30)
        if s.scheme == "imap":
            imap.starttls(ssl_context=context)
    imap.login(s.username, s.password)
    return imap


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")


@dataclass
class PollResult:
    read: int = 0
    facts: int = 0
    unparseable: int = 0


def bounce_mailbox_poll(url: str | None = None) -> PollResult:
    """Read every new message of the bounce mailbox and file what it reports."""
    url = url if url is not None else settings.BOUNCE_IMAP_URL
    if not url:
        return PollResult()
    s = MailboxSettings.parse(url)
    imap = _connect(s)
    try:
        return _poll(imap, s)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _poll(imap: imaplib.IMAP4, s: MailboxSettings) -> PollResult:
    done = settings.BOUNCE_IMAP_DONE_FOLDER
    imap.create(_quote(done))  # NO when it exists already: fine
    typ, data = imap.select(_quote(s.folder))
    if typ != "OK":
        raise MailboxError(f"Cannot open folder {s.folder}: {data}")
    untagged = imap.untagged_responses.get("OK", [])
    found = _UIDVALIDITY.search(b" ".join(r for r in untagged if isinstance(r, bytes)))
    if not found:
        typ, data = imap.status(_quote(s.folder), "(UIDVALIDITY)")
        found = _UIDVALIDITY.search(data[0] or b"")
    uidvalidity = int(found.group(1)) if found else 0
    can_move = "MOVE" in imap.capabilities
    result = PollResult()
    # Flagged messages were unparseable last time: left alone (listed on the page).
    typ, data = imap.uid("SEARCH", "NOT", "FLAGGED", "NOT", "DELETED")
    uids = [int(u) for u in (data[0] or b"").split()]
    for start in range(0, len(uids), BATCH):
        chunk = uids[start : start + BATCH]
        typ, fetched = imap.uid("FETCH", ",".join(map(str, chunk)), "(UID BODY.PEEK[])")
        messages = []
        for item in fetched:
            if isinstance(item, tuple) and len(item) == 2:
                uid_match = _FETCH_UID.search(item[0])
                if uid_match:
                    messages.append((int(uid_match.group(1)), item[1]))
        moved, flagged = _file(s.key, uidvalidity, messages, result)
        if moved:
            _move(imap, moved, done, can_move)
        if flagged:
            imap.uid("STORE", ",".join(map(str, flagged)), "+FLAGS", "(\\Flagged)")
    return result


def _file(key: str, uidvalidity: int, messages, result: PollResult):
    moved, flagged = [], []
    already = set(
        BounceMessage.objects.filter(
            mailbox=key, uidvalidity=uidvalidity, uid__in=[u for u, _ in messages]
        ).values_list("uid", flat=True)
    )
    rows, facts = [], []
    for uid, raw in messages:
        result.read += 1
        if uid in already:  # filed before a crash that kept it from being moved
            moved.append(uid)
            continue
        report = parse(raw, uid=f"imap:{key}:{uidvalidity}:{uid}")
        head = raw[:4000].decode("utf-8", errors="replace")
        rows.append(
            BounceMessage(
                mailbox=key,
                uidvalidity=uidvalidity,
                uid=uid,
                kind=report.kind,
                subject=_header(head, "Subject")[:300],
                sender=_header(head, "From")[:300],
                facts=len(report.facts),
                note=report.note[:500],
            )
        )
        facts.extend(report.facts)
        if report.kind == UNPARSEABLE:
            result.unparseable += 1
            flagged.append(uid)
        else:
            moved.append(uid)
    try:
        with transaction.atomic():
            BounceMessage.objects.bulk_create(rows)
            if facts:
                ingest_facts(facts)
    except IntegrityError:
        # Another poller filed the same messages a moment ago: they are done.
        log.info("bounce mailbox %s: messages already filed by another poller", key)
    result.facts += len(facts)
    return moved, flagged


def _move(imap: imaplib.IMAP4, uids: list[int], folder: str, can_move: bool) -> None:
    ids = ",".join(map(str, uids))
    if can_move:
        typ, _ = imap.uid("MOVE", ids, _quote(folder))
        if typ == "OK":
            return
    imap.uid("COPY", ids, _quote(folder))
    imap.uid("STORE", ids, "+FLAGS", "(\\Deleted)")
    imap.expunge()


def _header(head: str, name: str) -> str:
    found = re.search(rf"^{name}:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.I | re.M)
    if not found:
        return ""
    value = " ".join(found.group(1).split())
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value
