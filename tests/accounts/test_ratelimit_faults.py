"""Rate limits when Redis fails: a Redis of the test's own, killed, frozen and brought back.

Limits never fail open (the attempts are counted in the process's memory instead), and
a circuit breaker keeps a frozen Redis from costing every request a socket timeout.
"""

import logging
import time

import pytest
from django.conf import settings

from accounts import ratelimit
from accounts.exceptions import RateLimited
from accounts.ratelimit import rate_limit_hit
from tests.live import RedisServer

RATE = (5, 300)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def limits_in(settings, redis_server):
    """Count rate limits in `redis_server` (the cache too, as the old code counted there)."""

    def configure(cooldown: int = 5) -> None:
        settings.REDIS_URL = redis_server.url
        settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "redis", "RATE_LIMIT_REDIS_COOLDOWN": cooldown}
        settings.CACHES = {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_server.url,
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
            }
        }

    ratelimit.rate_limits_reset()
    yield configure
    ratelimit.rate_limits_reset()


def guesses(count: int, *, key: str = "alice@example.com", budget_seconds: float = 20.0) -> tuple[int, int, float]:
    """Make up to `count` attempts (stopping after `budget_seconds`); return (accepted, made, seconds)."""
    accepted = made = 0
    started = time.monotonic()
    while made < count and time.monotonic() - started < budget_seconds:
        made += 1
        try:
            rate_limit_hit(scope="login:account", key=key, rate=RATE)
            accepted += 1
        except RateLimited:
            pass
    return accepted, made, time.monotonic() - started


def log_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.INFO]


def test_a_killed_redis_still_refuses_after_the_budget(limits_in, redis_server):
    # given: counting in Redis works, then Redis dies
    limits_in()
    assert guesses(1, key="warm-up")[0] == 1
    assert redis_server.client.keys("*rl:*")
    redis_server.kill()

    # when: 20 wrong guesses at 5 per 5 minutes
    accepted, made, _ = guesses(20)

    # then: 5 pass, counted in this process's memory (before: all 20 passed)
    assert made == 20
    assert accepted == RATE[0]


def test_a_frozen_redis_costs_one_timeout_and_one_warning(limits_in, redis_server, caplog):
    # given
    limits_in(cooldown=30)
    assert guesses(1, key="warm-up")[0] == 1
    redis_server.freeze()

    # when: 50 attempts while Redis does not answer
    with caplog.at_level(logging.INFO):
        accepted, made, seconds = guesses(50)

    # then: one socket timeout in all, not one per call (before: about 1 s each) ...
    assert made == 50
    assert seconds < 10, f"{made} attempts took {seconds:.1f} s"
    # ... the limit still holds ...
    assert accepted == RATE[0]
    # ... and the outage is one WARNING line, without a traceback
    lines = log_lines(caplog)
    assert [(record.levelname, record.name) for record in lines] == [("WARNING", "accounts.ratelimit")]
    assert lines[0].exc_info is None
    assert "\n" not in lines[0].getMessage()
    assert "Redis" in lines[0].getMessage()


def test_the_breaker_tries_redis_again_after_the_cool_down_and_closes(limits_in, redis_server, caplog):
    # given: Redis froze, the breaker opened
    limits_in(cooldown=1)
    redis_server.freeze()
    with caplog.at_level(logging.INFO):
        guesses(3, key="during-outage")
        # still frozen after the cool-down: one trial call (one more timeout), no second warning
        time.sleep(1.1)
        _, _, seconds = guesses(10, key="during-outage")
        assert 0.5 < seconds < 5

        # when: Redis answers again and the cool-down is over
        redis_server.thaw()
        time.sleep(1.1)
        accepted, _, _ = guesses(3, key="after-outage")

    # then: counting goes to Redis again, and the recovery is one INFO line
    assert accepted == 3
    logs = [key for key in redis_server.client.keys("*rl:*") if not key.endswith(b":lockout")]
    assert [redis_server.client.llen(key) for key in logs] == [3]
    lines = log_lines(caplog)
    assert [(record.levelname, record.name) for record in lines] == [
        ("WARNING", "accounts.ratelimit"),
        ("INFO", "accounts.ratelimit"),
    ]
    assert all(record.exc_info is None for record in lines)


def test_a_redis_answering_nonsense_falls_back_too(limits_in, redis_server, caplog):
    # given: the key holds something that is not a list of times
    limits_in()
    key = f"{settings.REDIS_KEY_PREFIX}:{ratelimit._storage_key('login:account', 'alice@example.com')}"
    redis_server.client.set(key, "not a list")

    # when
    with caplog.at_level(logging.INFO):
        accepted, made, _ = guesses(20)

    # then: the limit holds, counted in memory, with one warning
    assert (accepted, made) == (RATE[0], 20)
    assert [record.levelname for record in log_lines(caplog)] == ["WARNING"]
