"""The tracking buffer: hits go to a Redis list on the request path, a worker writes them.

    record(hit)      RPUSH one JSON line (one round trip, no database)
    flush()          atomically move up to N lines to a processing list, ingest them in one
                     transaction, then delete the processing list

A worker that dies mid-flush leaves the processing list behind; the next flush ingests it first.
Ingestion is idempotent on each hit's uid, so a list ingested twice (the worker died after the
commit but before the delete) counts once. Without Redis, hits are ingested at once.
"""

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from functools import lru_cache

import redis
from django.conf import settings

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
    return uuid.uuid4().hex


class _Pusher:
    """One Redis connection per process and thread, used only for RPUSH on the request path.

    The pixel and the redirect wait for Redis to acknowledge each hit (so none is lost if the
    process dies right after answering); going through redis-py's pool costs a readiness
    check and locking on every hit, about a quarter of the whole view. A plain connection does
    the same RPUSH without them. A broken connection is dropped and the push retried once.
    """

    def __init__(self):
        self._local = threading.local()

    def push(self, url: str, value: str) -> None:
        for attempt in (1, 2):
            conn = self._connection(url)
            try:
                conn.send_command("RPUSH", BUFFER_KEY, value)
                conn.read_response()
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                conn.disconnect()
                self._local.conn = None
                if attempt == 2:
                    raise

    def _connection(self, url: str) -> redis.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        # A forked process must not share its parent's socket.
        if conn is None or local.key != (url, os.getpid()):
            kwargs = redis.ConnectionPool.from_url(
                url, socket_timeout=2, socket_connect_timeout=2
            ).connection_kwargs
            conn = redis.Connection(**kwargs)
            local.conn, local.key = conn, (url, os.getpid())
        return conn


_pusher = _Pusher()


def record(hit: dict) -> None:
    """Buffer one tracking hit (or ingest it now when there is no Redis). Never raises."""
    hit.setdefault("u", new_uid())
    hit.setdefault("t", time.time())
    try:
        url = settings.TRACKING_REDIS_URL
        if url:
            _pusher.push(url, json.dumps(hit, separators=(",", ":")))
            return
        from .ingest import ingest_hits

        ingest_hits([hit])
    except Exception:
        # The recipient still gets the pixel or the redirect: losing one count beats an error.
        log.exception("tracking hit not recorded")


def pending() -> int:
    r = client()
    return (r.llen(BUFFER_KEY) + r.llen(PROCESSING_KEY)) if r is not None else 0


def flush(*, max_batches: int = 100) -> int:
    """Ingest buffered hits; returns how many lines were processed. One flusher at a time."""
    r = client()
    if r is None:
        return 0
    from .ingest import ingest_hits

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
            lines = r.lrange(PROCESSING_KEY, 0, -1)
            hits = []
            for line in lines:
                try:
                    hits.append(json.loads(line))
                except ValueError:
                    log.warning("dropping an unreadable tracking line: %r", line[:200])
            ingest_hits(hits)
            r.delete(PROCESSING_KEY)
            done += len(lines)
            lock.extend(300, replace_ttl=True)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    return done
