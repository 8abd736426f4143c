"""The tracking buffer: hits go to a Redis list on the request path, a worker writes them.

    send(hit)        RPUSH one JSON line (no database); the function it returns waits for
                     Redis's acknowledgement, called before the response's first byte
    flush()          atomically move up to N lines to a processing list, ingest them in one
                     transaction, then delete the processing list

A worker that dies mid-flush leaves the processing list behind; the next flush ingests it first.
Ingestion is idempotent on each hit's uid, so a list ingested twice (the worker died after the
commit but before the delete) counts once. Without Redis, hits are ingested at once.
"""

import contextlib
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import lru_cache, partial
from typing import cast

import redis
from django.conf import settings

from .ingest import ingest_hits

log = logging.getLogger(__name__)

BUFFER_KEY = "nfm:tracking:buffer"
PROCESSING_KEY = "nfm:tracking:processing"
LOCK_KEY = "nfm:tracking:flush-lock"

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


def pending() -> int:
    r = client()
    if r is None:
        return 0
    # (redis-py types each command for its asyncio client too: the casts say which one.)
    return cast(int, r.llen(BUFFER_KEY)) + cast(int, r.llen(PROCESSING_KEY))


def backlog() -> dict | None:
    """How far the reports are behind: hits not yet written and the age in seconds of the
    oldest. None without Redis (hits are written at once) or when Redis does not answer."""
    r = client()
    if r is None:
        return None
    try:
        with r.pipeline(transaction=False) as pipe:
            pipe.llen(PROCESSING_KEY)
            pipe.llen(BUFFER_KEY)
            pipe.lindex(PROCESSING_KEY, 0)
            pipe.lindex(BUFFER_KEY, 0)
            processing, buffered, first_processing, first_buffered = pipe.execute()
    except redis.RedisError:
        return None
    try:
        oldest = float(json.loads(first_processing or first_buffered)["t"])
    except (TypeError, ValueError, KeyError):
        oldest = None  # empty, or a line the flusher will drop as unreadable
    age = max(time.time() - oldest, 0) if oldest is not None else 0
    return {"hits": processing + buffered, "seconds": round(age)}


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
    """Ingest buffered hits; returns how many lines were processed. One flusher at a time."""
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
            if not r.llen(PROCESSING_KEY):
                moved = r.eval(_MOVE, 2, BUFFER_KEY, PROCESSING_KEY, settings.TRACKING_FLUSH_BATCH)
                if not moved:
                    break
            lines = cast(list[bytes], r.lrange(PROCESSING_KEY, 0, -1))
            hits = []
            for line in lines:
                try:
                    hits.append(json.loads(line))
                except ValueError:
                    log.warning("dropping an unreadable tracking line: %r", line[:200])
            with _cyclic_gc_paused():
                ingest_hits(hits)
            r.delete(PROCESSING_KEY)
            done += len(lines)
            lock.extend(300, replace_ttl=True)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    return done
