"""The sliding-window rate limits on every store, and the client address they are keyed by."""

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import RequestFactory, override_settings
from django.utils import timezone

from accounts import ratelimit
from accounts.client import address_key, client_address
from accounts.error_codes import AuthErrorCode
from accounts.exceptions import RateLimited
from accounts.models import RateLimitWindow
from accounts.ratelimit import MemoryStore, moving_window, rate_limit_hit, rate_limit_windows_delete_expired
from tests.conftest import error_codes

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def _fresh_memory():
    ratelimit.rate_limits_reset()
    yield
    ratelimit.rate_limits_reset()


@pytest.fixture(params=["memory", "database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, settings, db):
    """Select each store in turn; returns its name. The Redis one is TEST_REDIS_URL's database."""
    kind = request.param
    if kind == "redis":
        request.getfixturevalue("redis_db")
        settings.REDIS_URL = settings.TEST_REDIS_URL
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": kind}
    return kind


def attempt(key="k", rate=(3, 60), scope="test") -> RateLimited | None:
    """Return None when the attempt passes, the refusal otherwise."""
    try:
        rate_limit_hit(scope=scope, key=key, rate=rate)
    except RateLimited as refused:
        return refused
    return None


def stored_hits(kind: str, redis_connection=None) -> dict[str, int]:
    """Return every stored key of `kind` with the number of attempts it holds."""
    if kind == "memory":
        return {key: len(entry[0]) for key, entry in ratelimit._memory._entries.items()}
    if kind == "database":
        return {row.key: len(row.hits) for row in RateLimitWindow.objects.all()}
    return {
        key.decode(): redis_connection.llen(key) for key in redis_connection.keys("*") if not key.endswith(b":lockout")
    }


# --- the algorithm -----------------------------------------------------------------------------


def test_moving_window_allows_n_in_any_interval_and_refuses_until_the_oldest_leaves():
    hits: list[int] = []
    for now in (0, 100, 200):
        retry, hits = moving_window(hits, 3, 1000, now)
        assert retry == 0
    assert moving_window(hits, 3, 1000, 999) == (1, hits)
    assert moving_window(hits, 3, 1000, 500) == (500, hits)
    retry, hits = moving_window(hits, 3, 1000, 1000)
    assert (retry, hits) == (0, [1000, 200, 100])


def test_moving_window_has_no_boundary_burst():
    # given: attempts every 10 ms for 5 s at 3 per second
    accepted, hits = [], []
    for now in range(0, 5000, 10):
        retry, hits = moving_window(hits, 3, 1000, now)
        if not retry:
            accepted.append(now)
    # then: never a 4th within 1 s of the 1st, whatever the alignment
    assert all(later - earlier >= 1000 for earlier, later in zip(accepted, accepted[3:], strict=False))
    assert len(accepted) == 15


def test_moving_window_keeps_at_most_n_entries_and_waits_at_most_a_window():
    hits = [5000, 4000, 3000, 2000, 1000]  # a lowered limit, or a clock that went back
    retry, kept = moving_window(hits, 2, 1000, 0)
    assert retry == 1000
    retry, kept = moving_window(hits, 2, 1000, 6000)
    assert (retry, kept) == (0, [6000, 5000])


# --- rate_limit_hit on every store --------------------------------------------------------------


def test_no_rate_disables_the_limit(store):
    for _ in range(50):
        assert attempt(rate=None) is None


def test_n_attempts_pass_then_the_refusal_says_exactly_when_one_passes_again(store):
    # given: 1 attempt per 3 s, spent half a second before what would be a fixed window's end
    time.sleep((2.5 - time.time() % 3) % 3)
    assert attempt(rate=(1, 3)) is None
    spent_at = time.monotonic()

    # when: refused at once, and again a second later
    at_once = attempt(rate=(1, 3))
    time.sleep(1.0)
    later = attempt(rate=(1, 3))

    # then: the wait shrinks as the attempt ages (a sliding window), and is exact
    assert at_once.code is AuthErrorCode.RATE_LIMITED
    assert at_once.retry_after == 3
    assert later.retry_after == 2
    assert later.extensions == {"code": "RATE_LIMITED", "retryAfter": 2}
    time.sleep(max(0.0, spent_at + 3.05 - time.monotonic()))
    assert attempt(rate=(1, 3)) is None
    assert attempt(rate=(1, 3)).retry_after == 3


def test_hammering_never_lets_more_than_n_through_in_any_window(store):
    # given: 3 per second; a fixed window would let 6 through around each second boundary
    accepted = []
    deadline = time.monotonic() + 2.6
    for _ in range(200):
        if time.monotonic() > deadline:
            break
        if attempt(rate=(3, 1)) is None:
            accepted.append(time.monotonic())
        time.sleep(0.01)
    # then: any 4 accepted attempts span at least a second (a few ms for Redis's own clock)
    spans = [later - earlier for earlier, later in zip(accepted, accepted[3:], strict=False)]
    assert min(spans) >= 0.97, spans
    assert 6 <= len(accepted) <= 9


def test_refused_attempts_cost_nothing_and_store_nothing(store, request):
    # given: 2 per second, spent, then 20 refusals
    assert attempt(rate=(2, 1)) is None
    assert attempt(rate=(2, 1)) is None
    spent_at = time.monotonic()
    assert all(attempt(rate=(2, 1)) is not None for _ in range(20))
    redis_connection = request.getfixturevalue("redis_db") if store == "redis" else None

    # then: the store still holds 2 attempts, and 1 s after the budget ran out both pass again
    assert list(stored_hits(store, redis_connection).values()) == [2]
    time.sleep(max(0.0, spent_at + 1.05 - time.monotonic()))
    assert attempt(rate=(2, 1)) is None
    assert attempt(rate=(2, 1)) is None
    assert attempt(rate=(2, 1)) is not None


def test_only_the_first_refusal_of_a_lockout_is_first(store):
    # given
    assert attempt(rate=(1, 1)) is None
    # when
    refusals = [attempt(rate=(1, 1)) for _ in range(3)]
    # then: one audit entry per lockout
    assert [refused.first for refused in refusals] == [True, False, False]
    # and: the next lockout has its own first refusal
    time.sleep(1.05)
    assert attempt(rate=(1, 1)) is None
    assert [attempt(rate=(1, 1)).first for _ in range(2)] == [True, False]


def test_a_zero_limit_refuses_everything(store):
    refusals = [attempt(rate=(0, 60)) for _ in range(3)]
    assert all(refused is not None for refused in refusals)
    assert refusals[0].retry_after == 60
    assert [refused.first for refused in refusals] == [True, False, False]


def test_keys_and_scopes_have_separate_budgets(store):
    # given: key k in scope a has spent its budget
    assert attempt(scope="a", key="k", rate=(1, 60)) is None
    assert attempt(scope="a", key="k", rate=(1, 60)) is not None
    # when / then: another key, and the same key in another scope, still pass
    assert attempt(scope="a", key="other", rate=(1, 60)) is None
    assert attempt(scope="b", key="k", rate=(1, 60)) is None


def test_keys_are_digests(store, request):
    # when
    attempt(scope="login:account", key="alice@example.com", rate=(5, 60))
    attempt(scope="login:address", key="203.0.113.7", rate=(5, 60))
    redis_connection = request.getfixturevalue("redis_db") if store == "redis" else None
    # then
    keys = list(stored_hits(store, redis_connection))
    assert len(keys) == 2
    assert not any("alice" in key or "example" in key or "203.0" in key for key in keys)
    assert any("login:account" in key for key in keys)


def test_retry_after_is_never_below_one_second():
    assert RateLimited(retry_after=0).retry_after == 1
    assert RateLimited(retry_after=-5).retry_after == 1
    assert RateLimited(retry_after=30).extensions == {"code": AuthErrorCode.RATE_LIMITED.value, "retryAfter": 30}


# --- Redis: one atomic script, prefixed keys with a TTL ---------------------------------------


@pytest.mark.redis
def test_redis_keys_carry_the_prefix_and_a_ttl(redis_db, settings):
    # given
    settings.REDIS_URL = settings.TEST_REDIS_URL
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "redis"}
    settings.REDIS_KEY_PREFIX = "deployment-a"

    # when: the budget is spent and refused once
    assert attempt(rate=(2, 60)) is None
    assert attempt(rate=(2, 60)) is None
    assert attempt(rate=(2, 60)).first

    # then: a log of 2 times and a lockout marker, both prefixed and expiring within the window
    keys = sorted(key.decode() for key in redis_db.keys("*"))
    assert len(keys) == 2
    assert all(key.startswith("deployment-a:rl:{test:") for key in keys)
    log, marker = keys
    assert marker == f"{log}:lockout"
    assert redis_db.llen(log) == 2
    assert 0 < redis_db.pttl(log) <= 60_000
    assert 0 < redis_db.pttl(marker) <= 60_000


@pytest.mark.redis
def test_deployments_with_different_prefixes_never_share_a_budget(redis_db, settings):
    settings.REDIS_URL = settings.TEST_REDIS_URL
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "redis"}
    settings.REDIS_KEY_PREFIX = "deployment-a"
    assert attempt(rate=(1, 60)) is None
    assert attempt(rate=(1, 60)) is not None
    settings.REDIS_KEY_PREFIX = "deployment-b"
    assert attempt(rate=(1, 60)) is None


@pytest.mark.redis
def test_redis_counts_are_atomic_under_concurrency(redis_db, settings):
    # given: 8 threads, 25 attempts each, on one key allowing 50
    settings.REDIS_URL = settings.TEST_REDIS_URL
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "redis"}
    accepted = []

    def worker():
        accepted.append(sum(attempt(rate=(50, 60)) is None for _ in range(25)))

    # when
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then
    assert sum(accepted) == 50


TOKEN_AUTH = """
mutation($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token }
}
"""


@pytest.mark.redis
def test_sign_in_attempts_are_counted_in_redis(gql, user, redis_db, settings):
    # given: Redis, and 3 attempts per account
    settings.REDIS_URL = settings.TEST_REDIS_URL
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "redis", "LOGIN_RATE_PER_ACCOUNT": (3, 60)}
    for _ in range(3):
        body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": "wrong-password"})
        assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]

    # then: another connection sees the account's log of 3 attempts
    keys = redis_db.keys(f"{settings.REDIS_KEY_PREFIX}:rl:{{login:account:*")
    assert [redis_db.llen(key) for key in keys if not key.endswith(b":lockout")] == [3]
    body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": "wrong-password"})
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]


# --- the memory store --------------------------------------------------------------------------


def test_the_memory_store_forgets_the_least_recently_used_keys():
    memory = MemoryStore(max_keys=3)
    for key in ("a", "b", "c"):
        memory.hit(key, 1, 60_000)
    memory.hit("a", 1, 60_000)  # a is now the most recently used
    memory.hit("d", 1, 60_000)
    assert len(memory) == 3
    assert memory.hit("a", 1, 60_000).retry_ms  # still remembered: refused
    assert not memory.hit("b", 1, 60_000).retry_ms  # forgotten


def test_the_memory_store_is_thread_safe():
    memory = MemoryStore()
    accepted = []

    def worker():
        accepted.append(sum(not memory.hit("k", 100, 60_000).retry_ms for _ in range(50)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(accepted) == 100


# --- the database store: shared by processes, cleaned by housekeeping ---------------------------

WORKER = """
import sys, time
import django
django.setup()
from accounts.exceptions import RateLimited
from accounts.ratelimit import rate_limit_hit
key, attempts, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
accepted = 0
for _ in range(attempts):
    try:
        rate_limit_hit(scope="login:account", key=key, rate=(10, 300))
        accepted += 1
    except RateLimited:
        pass
print(accepted)
"""


@pytest.fixture(scope="module")
def _sqlite_file(tmp_path_factory):
    """A migrated SQLite file, shared by this module's tests (each uses its own key)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ratelimit') / 'shared.sqlite3'}"
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=REPO_ROOT,
        env=worker_environment(url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    return url


@pytest.fixture
def shared_database_url(request):
    """A database URL that another process can use: the test database on Postgres, else a SQLite file."""
    if connection.vendor != "postgresql":
        return request.getfixturevalue("_sqlite_file")
    config = connection.settings_dict
    credentials = quote(config["USER"] or "", safe="")
    if config["PASSWORD"]:
        credentials += ":" + quote(config["PASSWORD"], safe="")
    host = config["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{config['PORT'] or 5432}/{config['NAME']}"


def worker_environment(database_url: str) -> dict:
    return {
        **{name: value for name, value in os.environ.items() if name not in {"REDIS_URL", "DATABASE_URL"}},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
    }


def start_worker(database_url: str, key: str, attempts: int, start_at: float = 0.0) -> subprocess.Popen:
    """Start another Python process that makes `attempts` at 10/300 on `key`; it prints how many passed."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", WORKER, key, str(attempts), str(start_at)],
        cwd=REPO_ROOT,
        env=worker_environment(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def accepted_by(worker: subprocess.Popen) -> int:
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    return int(out)


@pytest.mark.django_db(transaction=True)
def test_the_database_store_is_shared_by_processes(shared_database_url):
    # given: one process spends 6 of the 10 attempts
    assert accepted_by(start_worker(shared_database_url, "alice@example.com", 6)) == 6

    # when: another process tries 10
    second = accepted_by(start_worker(shared_database_url, "alice@example.com", 10))

    # then: it had only the 4 left (before: each process counted alone, 6 + 10 passed)
    assert second == 4
    if connection.vendor == "postgresql":
        # and this process sees the budget spent too
        assert attempt(scope="login:account", key="alice@example.com", rate=(10, 300)) is not None


@pytest.mark.django_db(transaction=True)
def test_processes_hitting_the_database_store_at_once_share_one_budget(shared_database_url):
    # given: two processes start 10 attempts each at the same moment
    start_at = time.time() + 3
    workers = [start_worker(shared_database_url, "bob@example.com", 10, start_at) for _ in range(2)]
    # then: exactly 10 pass in all (before: 20)
    assert sum(accepted_by(worker) for worker in workers) == 10


def test_database_rows_expire_and_housekeeping_deletes_only_expired_ones(db):
    # given: a live window and one whose attempts are long over
    assert attempt(key="live", rate=(1, 3600)) is None
    assert attempt(key="old", rate=(1, 3600)) is None
    live, old = (RateLimitWindow.objects.get(key=ratelimit._storage_key("test", name)) for name in ("live", "old"))
    assert abs((live.expires_at - timezone.now()).total_seconds() - 3600) < 60
    RateLimitWindow.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    # when / then
    assert rate_limit_windows_delete_expired(dry_run=True) == 1
    assert RateLimitWindow.objects.count() == 2
    assert rate_limit_windows_delete_expired() == 1
    assert list(RateLimitWindow.objects.values_list("pk", flat=True)) == [live.pk]


def test_a_lockout_keeps_its_row_until_it_ends(db):
    # given: a zero limit locks out for the window without recording attempts
    assert attempt(key="k", rate=(0, 600)) is not None
    row = RateLimitWindow.objects.get()
    # then
    assert row.hits == []
    assert abs((row.expires_at - timezone.now()).total_seconds() - 600) < 60


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
