"""The fixed-window attempt counters and the client address they are keyed by."""

import time

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from accounts.client import address_key, client_address
from accounts.error_codes import AuthErrorCode
from accounts.exceptions import RateLimited
from accounts.ratelimit import rate_limit_hit
from tests.conftest import PASSWORD, error_codes


def wait_for_room_in_window(window: int, room: float = 5.0) -> None:
    """Sleep into the next fixed window if the current one ends within `room` seconds.

    Counters live in fixed windows aligned on multiples of `window`; a test straddling a
    boundary would see its count reset halfway through.
    """
    left = window - time.time() % window
    if left < room:
        time.sleep(left + 0.05)


# --- rate_limit_hit --------------------------------------------------------------------------


def test_no_rate_disables_the_limit():
    for _ in range(100):
        rate_limit_hit(scope="test", key="k", rate=None)


def test_attempts_up_to_the_limit_pass_and_the_next_is_refused():
    # given
    wait_for_room_in_window(60)
    for _ in range(3):
        rate_limit_hit(scope="test", key="k", rate=(3, 60))

    # when
    with pytest.raises(RateLimited) as refused:
        rate_limit_hit(scope="test", key="k", rate=(3, 60))

    # then
    assert refused.value.code is AuthErrorCode.RATE_LIMITED
    assert isinstance(refused.value.retry_after, int)
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.extensions == {
        "code": AuthErrorCode.RATE_LIMITED.value,
        "retryAfter": refused.value.retry_after,
    }


def test_refused_attempts_keep_counting():
    wait_for_room_in_window(60)
    rate_limit_hit(scope="test", key="k", rate=(1, 60))
    for _ in range(5):
        with pytest.raises(RateLimited):
            rate_limit_hit(scope="test", key="k", rate=(1, 60))


def test_keys_and_scopes_have_separate_budgets():
    # given: key k in scope a has spent its budget
    wait_for_room_in_window(60)
    rate_limit_hit(scope="a", key="k", rate=(1, 60))
    with pytest.raises(RateLimited):
        rate_limit_hit(scope="a", key="k", rate=(1, 60))

    # when / then: another key, and the same key in another scope, still pass
    rate_limit_hit(scope="a", key="other", rate=(1, 60))
    rate_limit_hit(scope="b", key="k", rate=(1, 60))


def test_a_zero_limit_refuses_the_first_attempt():
    with pytest.raises(RateLimited):
        rate_limit_hit(scope="test", key="k", rate=(0, 60))


def test_retry_after_is_never_below_one_second():
    assert RateLimited(retry_after=0).retry_after == 1
    assert RateLimited(retry_after=-5).retry_after == 1
    assert RateLimited(retry_after=7.9).retry_after == 7
    assert RateLimited(retry_after=30).extensions == {"code": AuthErrorCode.RATE_LIMITED.value, "retryAfter": 30}


def test_retry_after_points_at_the_end_of_the_window():
    # given: a one-hour window, so the end is far from now
    wait_for_room_in_window(3600)
    rate_limit_hit(scope="test", key="k", rate=(1, 3600))
    window_end = (int(time.time()) // 3600 + 1) * 3600

    # when
    with pytest.raises(RateLimited) as refused:
        rate_limit_hit(scope="test", key="k", rate=(1, 3600))

    # then: now + retry_after is the window's end (within the seconds the test took)
    assert abs(int(time.time()) + refused.value.retry_after - window_end) <= 2


# --- client_address --------------------------------------------------------------------------


def request_from(remote="192.0.2.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/graphql", **extra)


def proxies(count: int):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, "TRUSTED_PROXY_COUNT": count})


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        pytest.param(0, None, "192.0.2.1", id="no-proxy-no-header"),
        pytest.param(0, "203.0.113.9", "192.0.2.1", id="no-proxy-header-ignored"),
        pytest.param(0, "1.2.3.4, 203.0.113.9", "192.0.2.1", id="no-proxy-list-ignored"),
        pytest.param(1, "203.0.113.9", "203.0.113.9", id="one-proxy"),
        pytest.param(1, "1.2.3.4, 203.0.113.9", "203.0.113.9", id="one-proxy-spoofed-left"),
        pytest.param(1, "1.2.3.4,203.0.113.9", "203.0.113.9", id="one-proxy-no-space"),
        pytest.param(1, "  203.0.113.9  ", "203.0.113.9", id="one-proxy-whitespace"),
        pytest.param(2, "1.2.3.4, 203.0.113.9, 10.0.0.2", "203.0.113.9", id="two-proxies"),
        pytest.param(2, "203.0.113.9, 10.0.0.2", "203.0.113.9", id="two-proxies-exact"),
        pytest.param(1, "1.2.3.4, 2001:DB8::1", "2001:db8::1", id="ipv6-normalised"),
    ],
)
def test_client_address_reads_through_exactly_the_trusted_proxies(count, forwarded, expected):
    with proxies(count):
        assert client_address(request_from(forwarded=forwarded)) == expected


@pytest.mark.parametrize(
    ("count", "forwarded"),
    [
        pytest.param(1, None, id="header-missing"),
        pytest.param(1, "", id="header-empty"),
        pytest.param(1, " , ", id="only-separators"),
        pytest.param(1, "1.2.3.4, not-an-ip", id="garbage-last"),
        pytest.param(1, "1.2.3.4, 203.0.113.9:8080", id="with-port"),
        pytest.param(1, "1.2.3.4, 999.1.1.1", id="out-of-range"),
        pytest.param(1, "1.2.3.4, unknown", id="unknown-token"),
        pytest.param(1, "1.2.3.4, 203.0.113.9\u0000", id="nul"),
        pytest.param(2, "203.0.113.9", id="fewer-hops-than-proxies"),
        pytest.param(2, "not-an-ip, 10.0.0.2", id="two-proxies-garbage"),
    ],
)
def test_malformed_forwarded_for_falls_back_to_remote_addr(count, forwarded):
    with proxies(count):
        assert client_address(request_from(forwarded=forwarded)) == "192.0.2.1"


# --- Redis -----------------------------------------------------------------------------------

TOKEN_AUTH = """
mutation($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token }
}
"""


@pytest.mark.redis
def test_login_counters_live_in_redis(gql, user, redis_db):
    # given: the cache is Redis, and 3 attempts per account are allowed
    wait_for_room_in_window(60)
    caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": settings.TEST_REDIS_URL}}
    limits = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (3, 60)}
    with override_settings(CACHES=caches, GATEHOUSE=limits):
        for _ in range(3):
            body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": "wrong-password"})
            assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]

        # when
        keys = redis_db.keys("*rl:login:account:*")
        count_before = int(redis_db.get(keys[0])) if len(keys) == 1 else None
        body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD})

    # then: another connection sees the counter, and the limit applies
    assert len(keys) == 1
    assert b"alice" not in keys[0]
    assert count_before == 3
    assert int(redis_db.get(keys[0])) == 4
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert 1 <= body["errors"][0]["extensions"]["retryAfter"] <= 60
    assert redis_db.ttl(keys[0]) > 0
    user.refresh_from_db()
    assert user.last_login is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_ipv6_clients_are_counted_per_64_block(address, key):
    assert address_key(address) == key
