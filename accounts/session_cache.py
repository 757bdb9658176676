"""The per-request session check from Redis: one round trip and no SQL for a known session.

What is kept, per live session (`{prefix}:sc:s:<sid>`): the account's fields that
resolvers read (every column but the password hash) and the session's absolute end and
last refresh, from which its idle end follows. The TTL is at most SESSION_CACHE_TTL and
never reaches past the session's end. Only live sessions of active accounts are kept;
nothing in Redis is a secret (no hash, no token, no digest of one).

Invalidation by nonce. Each account has a random nonce (`{prefix}:sc:u:<user id>`) and
the deployment one more (`{prefix}:sc:g`). An entry is written under the nonces current
at the time and counts only while both are unchanged, so replacing an account's nonce
invalidates every entry of that account at once, in every process, with one SET; the
global one invalidates all. Every service that changes what an entry holds (a session
ended, a password, a name, an address, a flag) calls `users_changed`, which replaces the
nonces of those accounts right after its transaction commits, before the mutation or
admin action returns.

The fill race: a request that misses reads the database and then writes the entry; a
change committed in between would leave the entry stale. So the writer states the nonces
it saw before it read the database (the same MGET that missed), and a Lua script writes
only if they are still current: a change that committed after the read has replaced
them after its commit. Sign-in and refresh write their new session the same way, with the
nonces read under their row locks. An evicted or expired nonce only turns hits into misses.

Service clients. A service token's request checks its client the same way: the client's
state (`{prefix}:sc:c:<client_id>`: id, name, scopes, active flag, when its secret last
changed; never the secret's digest) is kept under the client's own nonce
(`{prefix}:sc:cn:<client_id>`) and the global one, with the same fill script and the same
signature (bound to `client:<client_id>`). Only active clients are kept. Disabling a
client, rotating its secret or saving it otherwise calls `clients_changed`, which replaces
its nonce after the commit, so its tokens are refused on the next request in every process.

Failures: when Redis is unreachable, slow (one socket timeout) or answers nonsense, the
database answers instead (counted in `stats`), and a circuit breaker keeps this process
on the database for RATE_LIMIT_REDIS_COOLDOWN seconds, logging once per outage. An
invalidation that could not be written is not forgotten: the process's next successful
call replaces the global nonce first, so entries that missed it die with all others.
Entries changed behind the services' back (an `update()` in a shell) live at most
SESSION_CACHE_TTL seconds.
"""

import atexit
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import orjson
from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.exceptions import TokenExpired
from accounts.models import ServiceClient, User
from accounts.ratelimit import CircuitBreaker, redis_address, redis_client

logger = logging.getLogger(__name__)

# Hits, misses, writes, database fallbacks (Redis down or nonsense), malformed entries
# and invalidations that could not be written, since the process started.
stats: Counter = Counter()

FORMAT = b"1"
# How often a process that lost an invalidation retries the global flush, and how long it
# keeps trying when it exits, seconds.
FLUSH_RETRY_SECONDS = 0.25
EXIT_FLUSH_SECONDS = 3.0  # bumped whenever the layout of an entry changes: old entries become misses


@cache
def cached_fields() -> tuple[str, ...]:
    """The account's columns an entry holds: all but the password hash, in model order."""
    return tuple(field.attname for field in User._meta.concrete_fields if field.attname != "password")


@cache
def datetime_fields() -> tuple[str, ...]:
    """The cached columns that hold times (they travel as ISO 8601 text)."""
    return tuple(name for name in cached_fields() if User._meta.get_field(name).get_internal_type() == "DateTimeField")


def viewer_build(values: dict) -> User:
    """Return the account from its cached (or selected) columns; the password stays deferred.

    Django loads a deferred field on first access and `save()` writes only loaded fields,
    so a service that needs the hash reads it, and none can overwrite it by accident.
    """
    names = cached_fields()
    return User.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])


@dataclass(frozen=True)
class Access:
    """What the per-request check needs: the account and the session's two deadlines."""

    user: User
    expires_at: datetime
    last_used_at: datetime

    def ends_at(self) -> datetime:
        """When the session ends: the earlier of its idle and absolute ends (as Session.ends_at)."""
        return min(self.expires_at, self.last_used_at + timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME))

    def check(self, now: datetime) -> User:
        """Return the account; raise TokenExpired when the session is past its idle or absolute end."""
        if now >= self.ends_at():
            raise TokenExpired
        return self.user


@dataclass(frozen=True)
class Miss:
    """A lookup that found no current entry, and the nonces it saw (for a safe write)."""

    user_nonce: bytes
    global_nonce: bytes


# Returns the two nonces, creating either that is missing (or not a string), so that a
# writer always states real nonces: an absent one must never count as unchanged, or a
# nonce evicted after a change would let a stale write through.
# KEYS: account nonce, global nonce. ARGV: a fresh account nonce, a fresh global nonce, TTL (ms).
_NONCES_SCRIPT = """
local out = {}
for i = 1, 2 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind == 'string' then
    out[i] = redis.call('GET', KEYS[i])
  else
    if kind ~= 'none' then
      redis.call('DEL', KEYS[i])
    end
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[3])
    out[i] = ARGV[i]
  end
end
return out
"""

# Writes the entry only if both nonces are still those the writer saw before it read the
# database. With ARGV[6] = 1 (a sign-in, which changes the account) it also replaces the
# account's nonce, whatever it was, so the account's other entries die. Each write
# extends both nonces' TTL past the entry's.
# KEYS: entry, account nonce, global nonce. ARGV: seen account nonce, seen global nonce,
# a fresh nonce, the entry's body, its TTL (ms), replace, the nonces' TTL (ms).
_FILL_SCRIPT = """
local u = redis.call('GET', KEYS[2]) or ''
local g = redis.call('GET', KEYS[3]) or ''
local fresh = ARGV[1] ~= '' and ARGV[2] ~= '' and u == ARGV[1] and g == ARGV[2]
if ARGV[6] == '1' then
  u = ARGV[3]
  redis.call('SET', KEYS[2], u, 'PX', ARGV[7])
elseif u ~= '' then
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
if g ~= '' then
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if not fresh then
  return 0
end
redis.call('SET', KEYS[1], u .. '|' .. g .. '|' .. ARGV[4], 'PX', ARGV[5])
return 1
"""


class SessionCache:
    """The cache of one Redis URL, with its breaker; one per process."""

    def __init__(self, url: str, *, cooldown: float):
        self.client = redis_client(url)
        self.fill_script = self.client.register_script(_FILL_SCRIPT)
        self.nonces_script = self.client.register_script(_NONCES_SCRIPT)
        self.breaker = CircuitBreaker(
            cooldown, redis_address(self.client), what="session checks", fallback="are read from the database"
        )
        # Set when an invalidation could not be written: the global nonce must be replaced
        # (by the next call, and by a background retry) before anything is trusted again.
        self.flush_pending = False
        self._lost = 0  # invalidations lost so far: a flush clears the flag only if none was lost meanwhile
        self._flush_until = 0.0
        self._flush_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    # Keys ---------------------------------------------------------------------------

    @staticmethod
    def _prefix() -> str:
        return f"{settings.REDIS_KEY_PREFIX}:sc"

    def _keys(self, session_id: str, user_id: int) -> tuple[str, str, str]:
        prefix = self._prefix()
        return f"{prefix}:s:{session_id}", f"{prefix}:u:{user_id}", f"{prefix}:g"

    def _client_keys(self, client_id: str) -> tuple[str, str, str]:
        prefix = self._prefix()
        return f"{prefix}:c:{client_id}", f"{prefix}:cn:{client_id}", f"{prefix}:g"

    # Calls through the breaker --------------------------------------------------------

    def _call(self, operation, *, always: bool = False):
        """Run `operation(client)` unless the breaker is open; None when Redis failed or was skipped.

        `always` tries even while the breaker is open: an invalidation is rare and must
        not be skipped because this process saw one slow answer a moment ago.
        """
        if not always and not self.breaker.allow():
            return None
        try:
            if self.flush_pending:
                self._flush_all()
            result = operation(self.client)
        except Exception as error:  # down, frozen, or nonsense: the database answers instead
            self.breaker.failed(error)
            return None
        if not always:
            # Only the calls the breaker let through close it (an invalidation's SET proves little).
            self.breaker.succeeded()
        return result

    def _mget(self, keys):
        """MGET on this thread's own connection: the per-request round trip, without the pool.

        redis-py's client takes a pooled connection, wraps the call in its retry logic and
        gives the connection back on every command: about 40 µs per call here, a tenth of
        an authenticated request. The connection (redis-py's, with the same timeouts) stays
        with the thread; after any error it is dropped and the next call reconnects.
        """
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.client.connection_pool.make_connection()
        try:
            connection.send_command("MGET", *keys)
            return connection.read_response()
        except BaseException:
            connection.disconnect()
            raise

    def _flush_all(self) -> None:
        with self._lock:
            lost = self._lost
        self.client.set(f"{self._prefix()}:g", secrets.token_hex(8), px=_nonce_ttl_ms())
        with self._lock:
            if self._lost == lost:
                self.flush_pending = False
        logger.info("Session cache: every entry invalidated after an invalidation had failed.")

    def _invalidation_failed(self) -> None:
        """Remember a lost invalidation and retry the global flush until it lands or is moot.

        The retry runs in the background, so the other processes stop trusting the stale
        entries as soon as this one reaches Redis again, whether or not it serves another
        request. After SESSION_CACHE_TTL every entry written before the loss has expired,
        so the retry stops then.
        """
        stats["invalidation_failed"] += 1
        with self._lock:
            first, self.flush_pending = not self.flush_pending, True
            self._lost += 1
            self._flush_until = time.monotonic() + settings.GATEHOUSE["SESSION_CACHE_TTL"] + 1
            if self._flush_thread is None:
                self._flush_thread = threading.Thread(target=self._retry_flush, name="session-cache-flush", daemon=True)
                self._flush_thread.start()
        if first:
            logger.warning(
                "Session cache: an invalidation could not be written; every entry will be invalidated as soon as "
                "Redis answers (retried in the background for %s s).",
                settings.GATEHOUSE["SESSION_CACHE_TTL"],
            )

    def _retry_flush(self) -> None:
        while True:
            with self._lock:
                # Decided under the lock, so a loss recorded now either keeps this thread
                # going or finds no thread and starts one.
                if not self.flush_pending or time.monotonic() >= self._flush_until:
                    if self.flush_pending:
                        # Every entry that could be stale has expired by now.
                        self.flush_pending = False
                    self._flush_thread = None
                    return
            time.sleep(FLUSH_RETRY_SECONDS)
            try:
                self._flush_all()
            except Exception as error:  # still unreachable: try again until the deadline
                logger.debug("Session cache: the global flush failed again (%s).", type(error).__name__)

    def flush_before_exit(self, timeout: float = EXIT_FLUSH_SECONDS) -> None:
        """Make good a lost invalidation before the process ends (a command, a recycled worker)."""
        deadline = time.monotonic() + timeout
        while self.flush_pending and time.monotonic() < deadline:
            try:
                self._flush_all()
            except Exception:
                time.sleep(FLUSH_RETRY_SECONDS)
        if self.flush_pending:
            logger.error(
                "Session cache: an invalidation was lost and Redis did not answer before this process ended; "
                "entries may be served for up to %s s more.",
                settings.GATEHOUSE["SESSION_CACHE_TTL"],
            )

    # Reads ------------------------------------------------------------------------------

    def lookup(self, session_id: str, user_id: int) -> Access | Miss | None:
        """Return the session's entry, a Miss (with the nonces seen), or None when Redis failed."""
        keys = self._keys(session_id, user_id)
        return self._lookup(keys, session_id, _decode, user_id)

    def _lookup(self, keys, signed_id: str, decode, owner, kind: str = ""):
        """Read an entry and its two nonces in one MGET; return `decode(body, owner)`, a Miss, or None.

        `kind` prefixes the counters in `stats` ("" for sessions, "client_" for clients).
        """
        answer = self._call(lambda client: _checked_values(self._mget(keys), 3))
        if answer is None:
            stats[kind + "fallback"] += 1
            return None
        entry, user_nonce, global_nonce = answer
        if entry is not None and user_nonce is not None and global_nonce is not None:
            parts = entry.split(b"|", 4)
            if (
                len(parts) == 5
                and parts[0] == user_nonce
                and parts[1] == global_nonce
                and parts[2] == FORMAT
                and hmac.compare_digest(parts[3], _signature(signed_id, user_nonce, global_nonce, parts[4]))
            ):
                value = decode(parts[4], owner)
                if value is not None:
                    stats[kind + "hit"] += 1
                    return value
                stats[kind + "malformed"] += 1
        stats[kind + "miss"] += 1
        if user_nonce is None or global_nonce is None:
            # First use of the account (or an evicted nonce): create them, one more round trip.
            return self._ensured_nonces(keys[1], keys[2])
        return Miss(user_nonce, global_nonce)

    def client_lookup(self, client_id: str) -> ServiceClient | Miss | None:
        """Return the active client's entry, a Miss (with the nonces seen), or None when Redis failed."""
        keys = self._client_keys(client_id)
        return self._lookup(keys, _client_signed_id(client_id), _client_decode, client_id, "client_")

    def nonces(self, user_id: int) -> Miss | None:
        """Return the account's current nonces (for a write after a database read), or None.

        One round trip: the script returns them, creating either that is missing.
        """
        return self._ensured_nonces(*self._keys("", user_id)[1:])

    def _ensured_nonces(self, user_key: str, global_key: str) -> Miss | None:
        args = [secrets.token_hex(8), secrets.token_hex(8), _nonce_ttl_ms()]
        answer = self._call(
            lambda client: _checked_values(self.nonces_script(keys=[user_key, global_key], args=args), 2)
        )
        if answer is None or None in answer:
            return None
        return Miss(answer[0], answer[1])

    # Writes -----------------------------------------------------------------------------

    def fill(self, *, session_id: str, access: Access, seen: Miss, replace: bool = False):
        """Write the session's entry if the nonces are still `seen` (see the module docstring)."""
        ttl_ms = min(
            settings.GATEHOUSE["SESSION_CACHE_TTL"] * 1000, int((access.ends_at().timestamp() - time.time()) * 1000)
        )
        keys = self._keys(session_id, access.user.pk)
        self._write(keys, session_id, _encode(access), ttl_ms=ttl_ms, seen=seen, replace=replace)

    def client_fill(self, *, client: ServiceClient, seen: Miss) -> None:
        """Write an active client's entry if the nonces are still `seen` (read before the client's row)."""
        keys = self._client_keys(client.client_id)
        data = _client_encode(client)
        ttl_ms = settings.GATEHOUSE["SESSION_CACHE_TTL"] * 1000
        self._write(keys, _client_signed_id(client.client_id), data, ttl_ms=ttl_ms, seen=seen, kind="client_")

    def _write(self, keys, signed_id: str, data: bytes, *, ttl_ms: int, seen: Miss, replace=False, kind=""):
        if ttl_ms <= 0:
            return
        fresh_nonce = secrets.token_hex(8).encode()
        # The nonces the entry will be stored under (the script writes it only if they are
        # current), signed with it: an entry is believed only if Gatehouse wrote it for
        # this session (or client) under these nonces.
        user_nonce = fresh_nonce if replace else seen.user_nonce
        body = FORMAT + b"|" + _signature(signed_id, user_nonce, seen.global_nonce, data) + b"|" + data
        args = [seen.user_nonce, seen.global_nonce, fresh_nonce, body, ttl_ms, int(replace), _nonce_ttl_ms()]
        written = self._call(lambda client: _checked_flag(self.fill_script(keys=list(keys), args=args)), always=replace)
        if written is None and replace:
            # The account changed and its other entries could not be invalidated.
            self._invalidation_failed()
        elif written:
            stats[kind + "write"] += 1

    def invalidate(self, user_ids, session_ids=(), client_ids=()) -> None:
        """Replace the nonces of these accounts and clients (and drop these sessions' and clients' entries)."""
        prefix, ttl = self._prefix(), _nonce_ttl_ms()
        nonce_keys = [f"{prefix}:u:{user_id}" for user_id in user_ids]
        nonce_keys += [f"{prefix}:cn:{client_id}" for client_id in client_ids]
        entry_keys = [f"{prefix}:s:{session_id}" for session_id in session_ids]
        entry_keys += [f"{prefix}:c:{client_id}" for client_id in client_ids]

        def write(client):
            pipe = client.pipeline(transaction=False)
            for key in nonce_keys:
                pipe.set(key, secrets.token_hex(8), px=ttl)
            if entry_keys:
                pipe.delete(*entry_keys)
            answers = pipe.execute()
            sets, deletes = answers[: len(nonce_keys)], answers[len(nonce_keys) :]
            if not all(answer is True for answer in sets) or not all(type(answer) is int for answer in deletes):
                raise ValueError("unexpected answer to an invalidation")
            return answers

        if self._call(write, always=True) is None:
            self._invalidation_failed()


def _nonce_ttl_ms() -> int:
    # Longer than any entry written under the nonce (each write extends it): a nonce never
    # expires while an entry refers to it, and one that does only turns hits into misses.
    return 2 * settings.GATEHOUSE["SESSION_CACHE_TTL"] * 1000 + 60_000


def _checked_values(answer, count: int):
    """Return `answer` if it is a list of `count` strings or nils (MGET's shape), else raise."""
    if (
        not isinstance(answer, list)
        or len(answer) != count
        or not all(v is None or isinstance(v, bytes) for v in answer)
    ):
        raise ValueError("unexpected answer from the session cache")
    return answer


def _checked_flag(answer):
    if type(answer) is not int or answer not in (0, 1):
        raise ValueError("unexpected answer to a session write")
    return answer


@cache
def _signing_key(secret: str) -> bytes:
    return hashlib.sha256(b"gatehouse.session_cache\0" + secret.encode()).digest()


def _signature(session_id: str, user_nonce: bytes, global_nonce: bytes, data: bytes) -> bytes:
    """Return the HMAC (keyed from SECRET_KEY) that binds an entry to its session and nonces.

    Whoever can write to Redis can change budgets, but cannot make a session staff or
    bring an ended one back: an entry without the right signature is a miss.
    """
    message = b"|".join((session_id.encode(), user_nonce, global_nonce, data))
    return hmac.new(_signing_key(settings.SECRET_KEY), message, hashlib.sha256).hexdigest()[:32].encode()


def _encode(access: Access) -> bytes:
    user = access.user
    return orjson.dumps(
        [user.pk, access.expires_at, access.last_used_at, *(getattr(user, name) for name in cached_fields())]
    )


def _decode(body: bytes, user_id: int) -> Access | None:
    """Return the entry's Access, or None when it is not one we wrote (it is then replaced)."""
    names = cached_fields()
    try:
        values = orjson.loads(body)
        if not isinstance(values, list) or len(values) != len(names) + 3 or values[0] != user_id:
            return None
        row = dict(zip(names, values[3:], strict=True))
        for name in datetime_fields():
            if row[name] is not None:
                row[name] = _aware(row[name])
        if row["id"] != user_id or row["is_active"] is not True:
            return None
        access = Access(viewer_build(row), _aware(values[1]), _aware(values[2]))
        access.ends_at()  # within the calendar, so that the check cannot fail on a hit
        return access
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, OverflowError):
        return None


# Service clients ----------------------------------------------------------------------


@cache
def client_cached_fields() -> tuple[str, ...]:
    """The client's columns an entry holds, in model order: what a service request checks and shows.

    Not the secret's digest (nothing in Redis is a secret), nor the times only the admin shows.
    """
    kept = {"id", "name", "client_id", "scopes", "is_active", "secret_changed_at"}
    return tuple(field.attname for field in ServiceClient._meta.concrete_fields if field.attname in kept)


def client_build(values: dict) -> ServiceClient:
    """Return the client from its cached (or selected) columns; the others stay deferred."""
    names = client_cached_fields()
    return ServiceClient.from_db(DEFAULT_DB_ALIAS, names, [values[name] for name in names])


def _client_signed_id(client_id: str) -> str:
    # Its own namespace in the signature: a client's entry can never pass for a session's.
    return f"client:{client_id}"


def _client_encode(client: ServiceClient) -> bytes:
    return orjson.dumps([getattr(client, name) for name in client_cached_fields()])


def _client_decode(body: bytes, client_id: str) -> ServiceClient | None:
    """Return the entry's client, or None when it is not one we wrote for this active client."""
    names = client_cached_fields()
    try:
        values = orjson.loads(body)
        if not isinstance(values, list) or len(values) != len(names):
            return None
        row = dict(zip(names, values, strict=True))
        if row["client_id"] != client_id or row["is_active"] is not True:
            return None
        if type(row["id"]) is not int or not isinstance(row["name"], str) or not isinstance(row["scopes"], str):
            return None
        row["secret_changed_at"] = _aware(row["secret_changed_at"])
        return client_build(row)
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, OverflowError):
        return None


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a time without a zone")
    return parsed


_caches: dict[tuple[str, float], SessionCache] = {}
_caches_lock = threading.Lock()


def session_cache() -> SessionCache | None:
    """Return this process's session cache, or None when it is off (no Redis, or a TTL of 0)."""
    url = settings.GATEHOUSE["SESSION_CACHE_URL"]
    if not url or settings.GATEHOUSE["SESSION_CACHE_TTL"] <= 0:
        return None
    config = (url, float(settings.GATEHOUSE["RATE_LIMIT_REDIS_COOLDOWN"]))
    store = _caches.get(config)
    if store is None:
        with _caches_lock:
            store = _caches.get(config)
            if store is None:
                store = _caches[config] = SessionCache(url, cooldown=config[1])
    return store


@atexit.register
def _flush_before_exit() -> None:
    for store in list(_caches.values()):
        if store.flush_pending:
            store.flush_before_exit()


def session_cache_reset() -> None:
    """Forget this process's connections, breakers, pending flushes and counts (tests)."""
    with _caches_lock:
        for store in _caches.values():
            store.flush_pending = False  # its retry thread, if any, ends at its next turn
        _caches.clear()
    stats.clear()


# What the services call ---------------------------------------------------------------


def users_changed(user_ids, *, session_ids=()) -> None:
    """Invalidate every cached session of these accounts once the transaction commits.

    Call it beside every write that ends a session or changes an account: after the
    commit (never before, or a request could cache the old rows again in between), and
    before the mutation or admin action returns.
    """
    store = session_cache()
    if store is None:
        return
    user_ids, session_ids = sorted(set(user_ids)), [str(s).replace("-", "") for s in session_ids]
    if user_ids or session_ids:
        transaction.on_commit(lambda: store.invalidate(user_ids, session_ids))


def clients_changed(client_ids) -> None:
    """Invalidate the cached state of these service clients (by client_id) once the transaction commits.

    Call it beside every write that disables a client or changes its secret, scopes or
    name: after the commit, and before the admin action or command returns, so that the
    client's tokens are refused (or its new scopes applied) on the very next request in
    every process.
    """
    store = session_cache()
    if store is None:
        return
    client_ids = sorted(set(client_ids))
    if client_ids:
        transaction.on_commit(lambda: store.invalidate((), client_ids=client_ids))


def seen_nonces(user_id: int) -> Miss | None:
    """Return the account's nonces before its rows are read, for `session_cached`; None when off."""
    store = session_cache()
    return store.nonces(user_id) if store is not None else None


def session_cached(*, session, user: User, seen: Miss | None, account_changed: bool = False) -> None:
    """Write a session just opened or refreshed to the cache once the transaction commits.

    `seen` are the nonces read before (or under the row lock of) the rows written here;
    `account_changed` also invalidates the account's other entries (a sign-in changes
    `last_login`).
    """
    store = session_cache()
    if store is None or seen is None:
        if store is not None and account_changed:
            users_changed([user.pk])
        return
    session_id, access = session.id.hex, Access(user, session.expires_at, session.last_used_at)
    transaction.on_commit(lambda: store.fill(session_id=session_id, access=access, seen=seen, replace=account_changed))


@receiver(post_save, sender=User)
def _account_saved(sender, instance, created, **kwargs):
    # Every save of an existing account (the admin's forms, a password or profile change,
    # a shell) may change what its entries hold. A new account has none yet.
    if not created:
        users_changed([instance.pk])


@receiver(post_delete, sender=User)
def _account_deleted(sender, instance, **kwargs):
    # Any deletion of an account (a shell's `user.delete()` or queryset delete too; the
    # services also say so themselves) ends its cached sessions.
    users_changed([instance.pk])


@receiver(post_save, sender=ServiceClient)
def _client_saved(sender, instance, created, **kwargs):
    # Every save of an existing client (the admin's form changing its name or scopes, a
    # shell) may change what its entry holds. A new client has none yet.
    if not created:
        clients_changed([instance.client_id])


@receiver(post_delete, sender=ServiceClient)
def _client_deleted(sender, instance, **kwargs):
    # Clients are disabled, not deleted; a deletion in a shell must still end their tokens.
    clients_changed([instance.client_id])


@receiver(setting_changed)
def _reset(*, setting, **kwargs):
    if setting in {"GATEHOUSE", "REDIS_KEY_PREFIX"}:
        session_cache_reset()
