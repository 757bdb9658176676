"""Sliding-window attempt limits, shared by every process, that never fail open.

A rate `N/seconds` allows at most N attempts in ANY interval of `seconds` (a moving-window
log: the times of the last N accepted attempts), so there is no burst at a window
boundary. A refused attempt is not recorded: it costs nothing, and `retry_after` is
exact (after it, one attempt passes).

Where the counts live (GATEHOUSE["RATE_LIMIT_STORE"]):
- "redis" (the default when REDIS_URL is set): one Lua script per attempt, so each hit
  is one atomic round trip; every key has a TTL and holds at most N entries, and carries
  REDIS_KEY_PREFIX so that deployments sharing a Redis never share budgets. When Redis
  is unreachable or answers nonsense, attempts are counted in this process's memory
  instead (limits are then per process, never off), and a circuit breaker sends every
  call there for RATE_LIMIT_REDIS_COOLDOWN seconds before one trial call, so a frozen
  Redis costs one socket timeout per process per cool-down, not one per request.
- "database" (the default without Redis): one row per key in RateLimitWindow, locked
  while it is read and written, so every process on the database shares the budgets.
- "memory": this process only (tests, and the fallback above).

Keys are keyed digests (HMAC with SECRET_KEY): no email or address appears in a store,
and an address cannot be recovered by hashing the 2^32 IPv4 addresses.

Written by hand rather than with `limits` (moving-window storage) and `pybreaker`:
`limits` needs separate round trips to hit, to learn when the window reopens and to
mark the first refusal, has no database storage, and its memory storage is unbounded;
`pybreaker` holds one lock across every protected call, which would serialise all Redis
calls of a threaded process.
"""

import functools
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from redis.backoff import NoBackoff
from redis.retry import Retry

from accounts.exceptions import RateLimited

logger = logging.getLogger(__name__)

# Fallback store size: enough for every client of a busy process during an outage, and
# at most a few megabytes (each key holds at most N timestamps).
MEMORY_MAX_KEYS = 10_000
# Same bound as the cache's: a Redis that does not answer within it counts as down.
REDIS_SOCKET_TIMEOUT = 1.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one attempt: `retry_ms` is 0 when it was accepted."""

    retry_ms: int
    first: bool = False


def rate_limit_hit(*, scope: str, key: str, rate: tuple[int, int] | None) -> None:
    """Count one attempt of `scope` by `key`; raise RateLimited when `rate` is spent.

    `rate` is (attempts, seconds): at most that many accepted attempts in any interval
    of that length; None disables the limit and 0 attempts refuses everything. A refused
    attempt is not counted. RateLimited carries `retry_after` (whole seconds, rounded
    up: after it, one attempt passes) and `first`, true only for the first refusal since
    the budget ran out (one audit entry per lockout, not one per refused request).
    Call it outside a transaction: a hit made inside one is undone if it rolls back.
    """
    if rate is None:
        return
    limit, seconds = rate
    verdict = _store().hit(_storage_key(scope, key), max(0, limit), max(1, seconds) * 1000)
    if verdict.retry_ms:
        raise RateLimited(retry_after=math.ceil(verdict.retry_ms / 1000), first=verdict.first)


def rate_limit_windows_delete_expired(*, dry_run: bool = False) -> int:
    """Delete the database store's rows whose attempts and lockout are all over; return how many."""
    from accounts.models import RateLimitWindow

    expired = RateLimitWindow.objects.filter(expires_at__lte=timezone.now())
    if dry_run:
        return expired.count()
    deleted, _ = expired.delete()
    return deleted


def rate_limits_reset() -> None:
    """Forget this process's memory counts and Redis connections and breakers (tests)."""
    _memory.clear()
    with _redis_stores_lock:
        _redis_stores.clear()


def _storage_key(scope: str, key: str) -> str:
    # The braces are a Redis Cluster hash tag: a key and its lockout marker share a slot.
    digest = salted_hmac("gatehouse.ratelimit", key, algorithm="sha256").hexdigest()[:32]
    return f"rl:{{{scope}:{digest}}}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def moving_window(hits: list[int], limit: int, window_ms: int, now: int) -> tuple[int, list[int]]:
    """Return (0, the log with `now`) when an attempt at `now` fits, else (ms to wait, the log).

    `hits` are the times of the last accepted attempts, newest first, at most `limit`.
    """
    if limit > 0 and (len(hits) < limit or hits[limit - 1] <= now - window_ms):
        # Sorted, because processes on one database may disagree slightly about the time.
        return 0, sorted([now, *hits], reverse=True)[:limit]
    if limit <= 0:
        return window_ms, hits
    # The oldest of the last `limit` attempts leaves the window then (at most a window
    # away, even if this clock went back).
    return max(1, min(window_ms, hits[limit - 1] + window_ms - now)), hits


def _refusal(retry_ms: int, locked_until: int, now: int) -> tuple[Verdict, int]:
    """The refusal verdict, `first` when no lockout is running, and the lockout's new end."""
    first = locked_until <= now
    return Verdict(retry_ms, first=first), max(locked_until, now + retry_ms)


class MemoryStore:
    """Moving-window logs in this process's memory: bounded (least recently used keys go), thread-safe."""

    def __init__(self, max_keys: int = MEMORY_MAX_KEYS):
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # key -> [hits newest first, lockout end (ms)]
        self._entries: OrderedDict[str, list] = OrderedDict()

    def hit(self, key: str, limit: int, window_ms: int) -> Verdict:
        now = _now_ms()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [[], 0]
                if len(self._entries) > self.max_keys:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            retry_ms, entry[0] = moving_window(entry[0], limit, window_ms, now)
            if not retry_ms:
                return Verdict(0)
            verdict, entry[1] = _refusal(retry_ms, entry[1], now)
            return verdict

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class DatabaseStore:
    """Moving-window logs in the database, one row per key, locked while it is read and written."""

    def hit(self, key: str, limit: int, window_ms: int) -> Verdict:
        from accounts.models import RateLimitWindow

        if limit > 0 and self._first_hit(RateLimitWindow, key, window_ms):
            return Verdict(0)
        # A savepoint when the caller holds a transaction: the row lock then lasts until
        # the caller's commit, which is still atomic per key.
        with transaction.atomic():
            row, _ = RateLimitWindow.objects.select_for_update().get_or_create(
                key=key, defaults={"hits": [], "locked_until": 0, "expires_at": timezone.now()}
            )
            now = _now_ms()
            hits = [value for value in row.hits if isinstance(value, int)] if isinstance(row.hits, list) else []
            retry_ms, row.hits = moving_window(hits, limit, window_ms, now)
            if retry_ms:
                verdict, row.locked_until = _refusal(retry_ms, row.locked_until, now)
            else:
                verdict = Verdict(0)
            newest = row.hits[0] + window_ms if row.hits else now
            row.expires_at = datetime.fromtimestamp(max(newest, row.locked_until) / 1000, tz=UTC)
            row.save(update_fields=["hits", "locked_until", "expires_at"])
        return verdict

    @staticmethod
    def _first_hit(model, key: str, window_ms: int) -> bool:
        """Record the first hit of a key no row holds yet, in one statement; return whether it did.

        Most keys are hit once in their window (an address, an account signing in), so
        this saves the locked read-modify-write of the general case. A key that has a row
        (or gets one from a concurrent request first) is left to it.
        """
        now = _now_ms()
        ops = connection.ops
        expires = ops.adapt_datetimefield_value(datetime.fromtimestamp((now + window_ms) / 1000, tz=UTC))
        with connection.cursor() as cursor:
            cursor.execute(_first_hit_sql(model, connection.vendor), [key, f"[{now}]", expires])
            return cursor.fetchone() is not None


@functools.cache
def _first_hit_sql(model, vendor: str) -> str:
    """Return the insert-if-absent of a key's first hit (Postgres and SQLite 3.35+ both speak it)."""
    meta, quote = model._meta, connection.ops.quote_name
    names = {
        "table": quote(meta.db_table),
        **{name: quote(meta.get_field(name).column) for name in ("key", "hits", "locked_until", "expires_at")},
    }
    # Identifiers come from the model, quoted; every value is a parameter.
    return _FIRST_HIT_SQL.format(**names)


_FIRST_HIT_SQL = (
    "INSERT INTO {table} ({key}, {hits}, {locked_until}, {expires_at}) VALUES (%s, %s, 0, %s) "
    "ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
)


# KEYS[1]: the log (newest first), KEYS[2]: the lockout marker. ARGV: limit, window (ms).
# Redis's own clock, so that every process agrees on the time. Returns {ms to wait, first}.
_HIT_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local retry = window
if limit > 0 then
  local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
  if not oldest or tonumber(oldest) <= now - window then
    redis.call('LPUSH', KEYS[1], now)
    redis.call('LTRIM', KEYS[1], 0, limit - 1)
    redis.call('PEXPIRE', KEYS[1], window)
    return {0, 0}
  end
  retry = math.max(1, math.min(window, tonumber(oldest) + window - now))
end
if redis.call('SET', KEYS[2], '1', 'PX', retry, 'NX') then
  return {retry, 1}
end
return {retry, 0}
"""


class CircuitBreaker:
    """Closed: calls go to Redis. After a failure, open for `cooldown` seconds, then one trial call.

    Each change of state is logged once, in one line: WARNING when it opens, INFO when
    Redis answers again.
    """

    def __init__(
        self, cooldown: float, name: str, *, what: str = "rate limits", fallback: str = "are counted per process"
    ):
        self.cooldown = cooldown
        self.name = name
        # For the log lines: what depends on this Redis, and what happens to it meanwhile.
        self.what, self.fallback = what, fallback
        self._lock = threading.Lock()
        self._open = False
        self._retry_at = 0.0
        self._trial_running = False

    def allow(self) -> bool:
        """Whether this call may try Redis (always when closed; one trial at a time when due)."""
        with self._lock:
            if not self._open:
                return True
            if self._trial_running or time.monotonic() < self._retry_at:
                return False
            self._trial_running = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            reopened, self._open, self._trial_running = self._open, False, False
        if reopened:
            logger.info("Redis answers again at %s: %s are shared again.", self.name, self.what)

    def failed(self, error: Exception) -> None:
        with self._lock:
            was_open, self._open, self._trial_running = self._open, True, False
            self._retry_at = time.monotonic() + self.cooldown
        if not was_open:
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
            logger.warning(
                "Redis is unavailable at %s (%s): %s %s until it answers again (next try in %s s).",
                self.name,
                reason,
                self.what,
                self.fallback,
                self.cooldown,
            )


def redis_client(url: str) -> redis.Redis:
    """Return a client of `url` that waits at most REDIS_SOCKET_TIMEOUT and never retries.

    A retry would multiply the wait on a frozen Redis; the caller's breaker decides.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


def redis_address(client: redis.Redis) -> str:
    """Return where `client` connects, for log lines (host:port, or the socket path)."""
    pool = client.connection_pool.connection_kwargs
    return f"{pool.get('host', pool.get('path', '?'))}:{pool.get('port', '')}"


class RedisStore:
    """Moving-window logs in Redis, with this process's memory as the fallback behind a breaker."""

    def __init__(self, url: str, *, cooldown: float, fallback: MemoryStore):
        self.client = redis_client(url)
        self.script = self.client.register_script(_HIT_SCRIPT)
        self.fallback = fallback
        self.breaker = CircuitBreaker(cooldown, redis_address(self.client))

    def hit(self, key: str, limit: int, window_ms: int) -> Verdict:
        if self.breaker.allow():
            try:
                verdict = self._hit(key, limit, window_ms)
            except Exception as error:  # any failure (down, frozen, nonsense) means: count here instead
                self.breaker.failed(error)
            else:
                self.breaker.succeeded()
                return verdict
        return self.fallback.hit(key, limit, window_ms)

    def _hit(self, key: str, limit: int, window_ms: int) -> Verdict:
        prefixed = f"{settings.REDIS_KEY_PREFIX}:{key}"
        answer = self.script(keys=[prefixed, f"{prefixed}:lockout"], args=[limit, window_ms])
        if (
            not isinstance(answer, list)
            or len(answer) != 2
            or not all(isinstance(value, int) for value in answer)
            or not 0 <= answer[0] <= window_ms
            or answer[1] not in (0, 1)
        ):
            raise ValueError("unexpected answer to the rate-limit script")
        return Verdict(answer[0], first=answer[1] == 1)


_memory = MemoryStore()
_database = DatabaseStore()
_redis_stores: dict[tuple[str, float], RedisStore] = {}
_redis_stores_lock = threading.Lock()


def _store() -> MemoryStore | DatabaseStore | RedisStore:
    kind = settings.GATEHOUSE["RATE_LIMIT_STORE"]
    if kind == "database":
        return _database
    if kind == "memory":
        return _memory
    config = (settings.REDIS_URL, float(settings.GATEHOUSE["RATE_LIMIT_REDIS_COOLDOWN"]))
    store = _redis_stores.get(config)
    if store is None:
        with _redis_stores_lock:
            store = _redis_stores.get(config)
            if store is None:
                store = _redis_stores[config] = RedisStore(config[0], cooldown=config[1], fallback=_memory)
    return store
