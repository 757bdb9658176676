"""The session cache when its Redis fails: down, frozen, answering nonsense, or losing an invalidation.

The database answers instead, correctly and without a 500; a circuit breaker keeps a
frozen Redis from costing every request a socket timeout and logs the outage once; and
a revocation stays instant throughout. Each test runs a Redis of its own (a
redis-server on a free port, or a fake one), never the shared server.
"""

import logging
import secrets
import socket
import threading
import time

import orjson
import pytest
from django.conf import settings
from graphql_relay import to_global_id

from accounts import session_cache as session_cache_module
from accounts.error_codes import AuthErrorCode
from accounts.models import User
from accounts.session_cache import _signature, cached_fields, session_cache_reset, stats
from tests.conftest import PASSWORD, error_codes
from tests.live import RedisServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken payload }
}
"""
REVOKE = "mutation Revoke($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
ME = "{ me { id username email } }"
ALICE = {"username": "alice", "email": "alice@example.com"}
REVOKED = [AuthErrorCode.TOKEN_REVOKED.value]


# --- Redis servers of the test's own --------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


class NonsenseRedis:
    """A TCP server on a free port that answers `+OK` to every command, whatever it asked."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.commands = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        buffer = b""
        with conn:
            while not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                complete, buffer = _split_commands(buffer)
                self.commands += complete
                if complete:
                    conn.sendall(b"+OK\r\n" * complete)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=2)


def _split_commands(buffer: bytes) -> tuple[int, bytes]:
    """Count the complete RESP commands (arrays of bulk strings) at the start of `buffer`; return the rest too."""
    count = 0
    while buffer.startswith(b"*"):
        end = buffer.find(b"\r\n")
        if end < 0:
            break
        position, items = end + 2, int(buffer[1:end])
        for _ in range(items):
            end = buffer.find(b"\r\n", position)
            if end < 0 or buffer[position : position + 1] != b"$":
                return count, buffer
            position = end + 2 + int(buffer[position + 1 : end]) + 2
            if position > len(buffer):
                return count, buffer
        count, buffer = count + 1, buffer[position:]
    return count, buffer


@pytest.fixture
def nonsense_redis():
    server = NonsenseRedis()
    yield server
    server.stop()


@pytest.fixture
def cache_at(settings):
    """`cache_at(url, cooldown=...)` turns the session cache on at `url`, under a fresh key prefix."""

    def configure(url: str, *, cooldown: int = 5) -> None:
        settings.REDIS_KEY_PREFIX = f"gh-sctest-faults-{secrets.token_hex(4)}"
        settings.GATEHOUSE = {
            **settings.GATEHOUSE,
            "SESSION_CACHE_URL": url,
            "SESSION_CACHE_TTL": 60,
            "RATE_LIMIT_REDIS_COOLDOWN": cooldown,
        }
        session_cache_reset()

    session_cache_reset()
    yield configure
    session_cache_reset()


# --- helpers ------------------------------------------------------------------------------------


def sign_in(gql) -> dict:
    body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def me(gql, token) -> dict:
    """`me` with `token`: answered with JSON and a 200, never a 500; return its body."""
    response = gql.post(ME, token=token)
    assert response.status_code == 200, response.content[:300]
    return response.json()


def assert_alice(body: dict, user: User) -> None:
    """`me` answered, right: alice's id, username and email."""
    assert body == {"data": {"me": {"id": to_global_id("User", str(user.pk)), **ALICE}}}, body


def entry_key(tokens: dict) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:sc:s:{tokens['payload']['sid']}"


def cached(gql, tokens: dict, user: User) -> None:
    """Ask `me` until the session is in the cache (two requests at most); prove it by a hit."""
    assert_alice(me(gql, tokens["token"]), user)
    hits = stats["hit"]
    assert_alice(me(gql, tokens["token"]), user)
    assert stats["hit"] == hits + 1


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


# --- Redis down ---------------------------------------------------------------------------------


def test_with_nothing_listening_the_database_answers_and_a_logout_is_still_instant(gql, user, cache_at, caplog):
    # given: a Redis URL where nothing listens
    cache_at(f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.INFO):
        tokens = sign_in(gql)

        # when
        answers = [me(gql, tokens["token"]) for _ in range(3)]

        # then: every request is answered from the database ...
        for body in answers:
            assert_alice(body, user)
        assert stats["fallback"] == 3
        assert (stats["hit"], stats["write"]) == (0, 0)

        # ... and a logout is seen by the very next request
        assert "errors" not in gql(REVOKE, {"refreshToken": tokens["refreshToken"]})
        body = me(gql, tokens["token"])
        assert error_codes(body) == REVOKED, body

    # and the outage is one WARNING line from the breaker, and one for the invalidations
    # that could not be written (the sign-in's and the logout's), without a traceback
    lines = warnings_of(caplog)
    assert [(record.levelname, record.name) for record in lines] == [
        ("WARNING", "accounts.ratelimit"),
        ("WARNING", "accounts.session_cache"),
    ]
    assert "session checks are read from the database" in lines[0].getMessage()
    assert "invalidation could not be written" in lines[1].getMessage()
    assert all(line.exc_info is None for line in lines)
    assert stats["invalidation_failed"] == 2


def test_a_frozen_redis_costs_one_timeout_then_the_breaker_answers_from_the_database(
    gql, user, cache_at, redis_server, caplog
):
    # given: a cached session, then Redis freezes
    cache_at(redis_server.url)
    tokens = sign_in(gql)
    cached(gql, tokens, user)
    redis_server.freeze()

    with caplog.at_level(logging.INFO):
        # when: the first request waits for one socket timeout ...
        started = time.monotonic()
        first = me(gql, tokens["token"])
        first_took = time.monotonic() - started
        # ... and the next ones find the breaker open
        started = time.monotonic()
        later = [me(gql, tokens["token"]) for _ in range(5)]
        later_took = time.monotonic() - started
    redis_server.thaw()

    # then: every answer is right, from the database
    for body in [first, *later]:
        assert_alice(body, user)
    assert first_took < 1.5, f"the first request took {first_took:.2f} s"
    assert later_took < 1.0, f"five requests took {later_took:.2f} s with the breaker open"
    assert stats["fallback"] == 6
    assert [record.name for record in warnings_of(caplog)] == ["accounts.ratelimit"]


# --- Redis answering nonsense -------------------------------------------------------------------


JUNK = {
    # (name, signed with the server's key?)
    "plain": False,
    "well-formed-prefix": False,
    # Whoever can write to Redis but lacks SECRET_KEY: a forged entry is never believed.
    "forged-staff": False,
    "replayed-from-another-session": False,
    # Signed but not something Gatehouse writes (the decoder's own checks):
    "another-account": True,
    "inactive": True,
    "time-without-zone": True,
    "time-out-of-range": True,
}


@pytest.mark.parametrize("junk", JUNK)
def test_a_junk_entry_is_a_miss_and_is_written_again(gql, user, make_user, cache_at, redis_server, junk):
    # given: a cached session whose entry is then overwritten
    cache_at(redis_server.url)
    tokens = sign_in(gql)
    cached(gql, tokens, user)
    key = entry_key(tokens)
    entry = redis_server.client.get(key)
    user_nonce, global_nonce, version, signature, body = entry.split(b"|", 4)
    sid = tokens["payload"]["sid"]
    values = orjson.loads(body)
    fields = dict(zip(cached_fields(), values[3:], strict=True))
    if junk == "plain":
        data = b"\x00not an entry\xff"
    elif junk == "well-formed-prefix":
        data = b"[1, 2, {"
    elif junk == "forged-staff":
        fields["is_staff"] = fields["is_superuser"] = True
    elif junk == "replayed-from-another-session":
        data = body  # alice's own entry, but its signature names another session
        sid = "0" * 32
    elif junk == "another-account":
        # bob's row under alice's session: never anyone's viewer
        bob = make_user(username="bob", email="bob@example.com")
        values[0] = fields["id"] = bob.pk
        fields["username"], fields["email"] = bob.username, bob.email
    elif junk == "inactive":
        fields["is_active"] = False
    elif junk == "time-without-zone":
        values[2] = values[2].split("+")[0]
    elif junk == "time-out-of-range":
        values[2] = "9999-12-31T23:59:59+00:00"
    if junk not in {"plain", "well-formed-prefix", "replayed-from-another-session"}:
        data = orjson.dumps([*values[:3], *fields.values()])
    if JUNK[junk] or junk == "replayed-from-another-session":
        signature = _signature(sid, user_nonce, global_nonce, data)
    value = b"|".join([user_nonce, global_nonce, version, signature, data])
    redis_server.client.set(key, value, px=60_000)
    misses, writes = stats["miss"], stats["write"]

    # when
    answer = me(gql, tokens["token"])

    # then: a miss, answered right from the database, and the entry written again
    assert_alice(answer, user)
    assert stats["miss"] == misses + 1
    assert stats["malformed"] == (1 if JUNK[junk] else 0)
    assert stats["write"] == writes + 1
    assert redis_server.client.get(key).split(b"|", 4)[4] == body
    assert stats["fallback"] == 0


def test_a_redis_that_answers_ok_to_everything_is_a_fallback(gql, user, cache_at, nonsense_redis, caplog):
    # given
    cache_at(nonsense_redis.url)
    with caplog.at_level(logging.INFO):
        tokens = sign_in(gql)

        # when
        answers = [me(gql, tokens["token"]) for _ in range(3)]

    # then: it was asked, and what it said was not believed
    assert nonsense_redis.commands > 0
    for body in answers:
        assert_alice(body, user)
    assert stats["fallback"] == 3
    assert (stats["hit"], stats["write"]) == (0, 0)
    assert [record.name for record in warnings_of(caplog)] == ["accounts.ratelimit"]


# --- an invalidation lost in an outage ----------------------------------------------------------


def lose_a_logout(gql, user, cache_at, redis_server) -> dict:
    """Cache a session, then log it out while Redis is frozen (its invalidation fails); return its tokens."""
    cache_at(redis_server.url, cooldown=1)
    tokens = sign_in(gql)
    cached(gql, tokens, user)
    redis_server.freeze()
    try:
        assert "errors" not in gql(REVOKE, {"refreshToken": tokens["refreshToken"]})
    finally:
        redis_server.thaw()
    assert stats["invalidation_failed"] == 1
    # the entry is still in Redis, under the nonces it was written with
    assert redis_server.client.exists(entry_key(tokens)) == 1
    return tokens


def test_an_invalidation_lost_while_redis_was_frozen_is_made_good_after_the_cool_down(
    gql, user, cache_at, redis_server
):
    # given: a logout whose invalidation could not be written
    tokens = lose_a_logout(gql, user, cache_at, redis_server)
    global_key = f"{settings.REDIS_KEY_PREFIX}:sc:g"
    global_nonce, hits = redis_server.client.get(global_key), stats["hit"]

    # when: Redis answers again, and the cool-down is over
    time.sleep(1.1)
    body = me(gql, tokens["token"])

    # then: this process replaced the global nonce before anything else, and the token is refused
    assert error_codes(body) == REVOKED, body
    assert redis_server.client.get(global_key) not in (None, global_nonce)
    assert stats["hit"] == hits


def test_an_invalidation_lost_in_one_process_is_made_good_for_the_others_too(gql, user, cache_at, redis_server):
    # given: a logout whose invalidation could not be written by the process that served it
    tokens = lose_a_logout(gql, user, cache_at, redis_server)

    # when: Redis answers again, the cool-down is over, and the token reaches another worker
    # process (its own session cache, as session_cache() builds in a fresh process), while
    # the first one serves no request
    time.sleep(1.1)
    session_cache_module._caches.clear()
    body = me(gql, tokens["token"])

    # then: the logged-out token is refused there too (revocation is instant "across every process")
    assert error_codes(body) == REVOKED, body
