"""The tracking buffer: hits and ESP events go to Redis lists on the request path, a worker
writes them in batches.

    send(hit)        RPUSH one JSON line (no database); the function it returns waits for
                     Redis's acknowledgement, called before the response's first byte
    send_facts(fs)   RPUSH an ESP webhook's facts (one line each, to their own list) and wait
                     for the acknowledgement; ingested at once when Redis is not there or fails
    flush()          atomically move up to N lines to processing lists (the facts first), ingest
                     them in one transaction, then delete the processing lists

A worker that dies mid-flush leaves the processing lists behind; the next flush ingests them
first. Ingestion is idempotent on each line's uid, so a list ingested twice (the worker died
after the commit but before the delete) counts once. Without Redis, hits are ingested at once.
A batch the database refuses for its data (not for being down) is ingested a line at a time,
and the lines still refused are set aside in DEAD_KEY: one bad line never stops the flusher.

The ESP's facts have their own list so that a bounce is never queued behind a backlog of opens
(each batch takes the facts first: a bounce acknowledged to the ESP is applied, its address
suppressed, by the next flush, within TRACKING_FLUSH_SECONDS plus the batch in progress), and
so that a flusher of an older release, which reads only the hits' list, cannot misread them.
"""

import contextlib
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from functools import lru_cache, partial
from typing import cast

import psycopg
import redis
from django.conf import settings
from django.db import DataError, IntegrityError
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import ingest
from .ingest import Fact, ingest_hits

log = logging.getLogger(__name__)

BUFFER_KEY = "nfm:tracking:buffer"
PROCESSING_KEY = "nfm:tracking:processing"
LOCK_KEY = "nfm:tracking:flush-lock"
FACTS_KEY = "nfm:feedback:buffer"
FACTS_PROCESSING_KEY = "nfm:feedback:processing"
DEAD_KEY = "nfm:feedback:refused"  # lines the database refused, kept for a person to read

# Move up to ARGV[1] items from the buffer's head to the processing list, atomically (a Lua
# script runs with nothing else interleaved): an item is always in exactly one of the lists.
_MOVE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  for i = 1, #items, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
  end
  redis.call('LTRIM', KEYS[1], #items, -1)
end
return #items
"""


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


@lru_cache(maxsize=4)
def _request_client(url: str) -> redis.Redis:
    # One retry, at once: a pooled connection that Redis closed meanwhile (a restart, an idle
    # timeout) is the common failure, and a new connection mends it. Anything more fails over
    # to the database within seconds. (A retried RPUSH may store the facts twice: ingestion
    # drops the second copy by uid.)
    return redis.Redis.from_url(
        url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
    )


def client() -> redis.Redis | None:
    url = settings.TRACKING_REDIS_URL
    return _client(url) if url else None


def new_uid() -> str:
    # Time first, then 64 random bits: new uids land at the end of the unique index, not at a
    # random page of it (like a UUIDv7), and no UUID object is built per hit.
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


_to_json = json.JSONEncoder(separators=(",", ":")).encode


class _Pusher:
    """One Redis connection per process and thread, used only for RPUSH on the request path.

    The pixel and the redirect must not answer before Redis has acknowledged the hit (so none
    is lost if the process dies right after answering), but they need not wait for it idle:
    ``send`` writes the RPUSH and returns at once, the response is built meanwhile, and
    ``confirm`` reads the acknowledgement just before the first byte leaves. Blocking on the
    round trip right away idled the process for it and cost a context switch per hit (the
    tracking rate went from 0.76 to 0.78 of the trivial view's, one run each). redis-py's
    pool is bypassed too: a readiness check and locking on every hit. A broken connection is
    dropped and the hit sent again on a new one; a hit sent twice that way is harmless,
    ingestion drops its second copy by uid. The acknowledgement is read on the thread that
    sent the hit: WSGI servers (gunicorn sync or gthread) iterate a response's body on the
    request's thread; an ASGI deployment would need the confirmation passed along instead.
    """

    def __init__(self):
        self._local = threading.local()

    def send(self, url: str, value: str) -> None:
        # A hit whose acknowledgement nobody read (its client left before the response was
        # written) is confirmed first, or the next confirmation would read its reply.
        self.confirm(url)
        for attempt in (1, 2):
            conn = self._connection(url)
            try:
                conn.send_command("RPUSH", BUFFER_KEY, value)
                self._local.unconfirmed = value
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._drop(conn)
                if attempt == 2:
                    raise

    def confirm(self, url: str) -> None:
        """Wait for the acknowledgement of the last ``send``; if the connection broke
        meanwhile, send that hit again on a new one and wait for that."""
        local = self._local
        value = getattr(local, "unconfirmed", None)
        if value is None:
            return
        local.unconfirmed = None
        try:
            local.conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._drop(local.conn)
            conn = self._connection(url)
            conn.send_command("RPUSH", BUFFER_KEY, value)
            conn.read_response()

    def _drop(self, conn: redis.Connection) -> None:
        conn.disconnect()
        self._local.conn = None

    def _connection(self, url: str) -> redis.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        # A forked process must not share its parent's socket.
        if conn is None or local.key != (url, os.getpid()):
            kwargs = redis.ConnectionPool.from_url(
                url, socket_timeout=2, socket_connect_timeout=2
            ).connection_kwargs
            conn = redis.Connection(**kwargs)
            local.conn, local.key, local.unconfirmed = conn, (url, os.getpid()), None
        return conn


_pusher = _Pusher()


def _confirmed() -> None:
    pass


def send(hit: dict) -> Callable[[], None]:
    """Buffer one tracking hit without waiting: returns the function to call before answering,
    which waits for Redis's acknowledgement (it never raises either). Without Redis the hit is
    ingested at once."""
    if "u" not in hit:
        hit["u"] = new_uid()
    if "t" not in hit:
        hit["t"] = time.time()
    try:
        url = settings.TRACKING_REDIS_URL
        if url:
            _pusher.send(url, _to_json(hit))
            return partial(_confirm, url)

        ingest_hits([hit])
    except Exception:
        # The recipient still gets the pixel or the redirect: losing one count beats an error.
        log.exception("tracking hit not recorded")
    return _confirmed


def _confirm(url: str) -> None:
    try:
        _pusher.confirm(url)
    except Exception:  # after the response: nothing may reach the recipient
        log.exception("tracking hit not recorded")


# --- ESP events ---------------------------------------------------------------------------------

# What a fact carries into ingestion (the rest ingestion fills in), and which are datetimes.
FACT_FIELDS = [
    "uid",
    "kind",
    "occurred_at",
    "delivery_id",
    "message_id",
    "link_id",
    "ip",
    "user_agent",
    "method",
    "prefetch",
    "esp",
    "url",
    "bounce_type",
    "reason",
    "recipient",
    "payload",
    "already_applied",
    "stable_time",
]


def fact_line(fact: Fact, *, now: float | None = None) -> str:
    """One fact as a buffer line: ``{"f": {...}, "t": received}``, the "f" telling the flusher
    it is a fact for ``ingest_facts``, not a tracking hit."""
    values = asdict(fact)
    data = {name: values[name] for name in FACT_FIELDS}
    data["occurred_at"] = fact.occurred_at.isoformat()
    return _to_json({"f": data, "t": time.time() if now is None else now})


def fact_from_line(line: dict) -> Fact | None:
    try:
        data = line["f"]
        known = {name: data[name] for name in FACT_FIELDS if name in data}
        known["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
        if known["occurred_at"].tzinfo is None:
            raise ValueError("a naive timestamp")
        return Fact(**known)
    except (KeyError, TypeError, ValueError):
        log.warning("dropping a malformed buffered fact: %r", str(line)[:200])
        return None


def send_facts(facts: list[Fact]) -> None:
    """Record an ESP webhook's facts: returns once Redis has acknowledged them (the flusher
    ingests them with the next batch), or, when there is no Redis or it fails, once they are
    ingested here. Raises when neither happened: the caller must not answer 2xx, so the ESP
    sends them again.

    A failure after Redis received the lines but before its acknowledgement arrived ingests
    them here as well: the flusher's copy is then a replay, dropped by its uid.
    """
    if not facts:
        return
    url = settings.TRACKING_REDIS_URL
    if url:
        r, now = _request_client(url), time.time()
        try:
            r.rpush(FACTS_KEY, *[fact_line(f, now=now) for f in facts])
            return
        except Exception:  # any failure to buffer: ingesting here is the fallback promised above
            log.warning("feedback buffer unavailable: ingesting %d fact(s) at once", len(facts))
    ingest.ingest_facts(facts)


def pending() -> int:
    r = client()
    if r is None:
        return 0
    # (redis-py types each command for its asyncio client too: the casts say which one.)
    return sum(
        cast(int, r.llen(key))
        for key in (BUFFER_KEY, PROCESSING_KEY, FACTS_KEY, FACTS_PROCESSING_KEY)
    )


def backlog() -> dict | None:
    """How far the reports are behind: hits not yet written and the age in seconds of the
    oldest. None without Redis (hits are written at once) or when Redis does not answer."""
    r = client()
    if r is None:
        return None
    try:
        with r.pipeline(transaction=False) as pipe:
            for key in (PROCESSING_KEY, BUFFER_KEY, FACTS_PROCESSING_KEY, FACTS_KEY):
                pipe.llen(key)
                pipe.lindex(key, 0)
            answers = pipe.execute()
    except redis.RedisError:
        return None
    oldest = None
    for first in answers[1::2]:
        try:
            at = float(json.loads(first)["t"])
        except (TypeError, ValueError, KeyError):
            continue  # empty, or a line the flusher will drop as unreadable
        oldest = at if oldest is None else min(oldest, at)
    age = max(time.time() - oldest, 0) if oldest is not None else 0
    return {"hits": sum(answers[0::2]), "seconds": round(age)}


@contextlib.contextmanager
def _cyclic_gc_paused():
    """A batch allocates hundreds of thousands of short-lived containers, nearly all freed by
    reference counting; the cyclic collections they trigger meanwhile scan the whole heap of a
    worker (Django's, Celery's objects) and took a third of the flusher's CPU. Cycles made
    during the batch are collected when it is over."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def flush(*, max_batches: int = 100) -> int:
    """Ingest buffered ESP facts and hits, up to TRACKING_FLUSH_BATCH lines a transaction,
    the facts first; returns how many lines were processed. One flusher at a time."""
    r = client()
    if r is None:
        return 0

    lock = r.lock(LOCK_KEY, timeout=300, blocking_timeout=0)
    if not lock.acquire(blocking=False):
        return 0
    done = 0
    try:
        for _ in range(max_batches):
            # Left over by a flusher that died: ingest it before taking more.
            if not r.exists(PROCESSING_KEY, FACTS_PROCESSING_KEY):
                limit = settings.TRACKING_FLUSH_BATCH
                moved = cast(int, r.eval(_MOVE, 2, FACTS_KEY, FACTS_PROCESSING_KEY, limit))
                if moved < limit:
                    moved += cast(int, r.eval(_MOVE, 2, BUFFER_KEY, PROCESSING_KEY, limit - moved))
                if not moved:
                    break
            with r.pipeline(transaction=False) as pipe:
                pipe.lrange(FACTS_PROCESSING_KEY, 0, -1)
                pipe.lrange(PROCESSING_KEY, 0, -1)
                fact_lines, hit_lines = pipe.execute()
            lines = [*fact_lines, *hit_lines]
            with _cyclic_gc_paused():
                _ingest(r, _read(lines))
            r.delete(FACTS_PROCESSING_KEY, PROCESSING_KEY)
            done += len(lines)
            lock.extend(300, replace_ttl=True)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    return done


# The database refusing the data, through Django or through psycopg's COPY.
REFUSED = (DataError, IntegrityError, psycopg.DataError, psycopg.IntegrityError)


def _ingest(r: redis.Redis, facts: list[Fact]) -> None:
    """Ingest a batch. When the database refuses its data (not its connection), one line
    must not hold up every later one for ever: each fact is then ingested on its own, and
    those still refused are kept aside in DEAD_KEY, logged, for someone to look at."""
    try:
        ingest.ingest_facts(facts)
        return
    except REFUSED:
        log.exception("a batch of %d was refused: ingesting its lines one by one", len(facts))
    for fact in facts:
        try:
            ingest.ingest_facts([fact])
        except REFUSED:
            log.exception("buffered %s %s refused: kept in %s", fact.kind, fact.uid, DEAD_KEY)
            r.rpush(DEAD_KEY, fact_line(fact))


def _read(lines: list[bytes]) -> list[Fact]:
    """Buffer lines as facts: an ESP's fact (``"f"``) as it was, a tracking hit converted."""
    facts, hits = [], []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            log.warning("dropping an unreadable tracking line: %r", line[:200])
            continue
        if isinstance(value, dict) and "f" in value:
            fact = fact_from_line(value)
            if fact is not None:
                facts.append(fact)
        else:
            hits.append(value)
    return facts + ingest.hits_to_facts(hits)
