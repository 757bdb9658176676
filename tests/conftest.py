"""Shared fixtures: an HTTP GraphQL client, users and tokens."""

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from accounts.ratelimit import rate_limits_reset
from accounts.services import session_open
from accounts.session_cache import session_cache_reset
from schema.views import persisted_queries
from tests.live import missing

PASSWORD = "correct-Horse-battery-staple"


@pytest.fixture(autouse=True)
def _clear_cache():
    # Rate-limit counters (and their circuit breakers) and persisted queries must not leak
    # between tests.
    cache.clear()
    persisted_queries.clear()
    rate_limits_reset()
    yield
    cache.clear()
    persisted_queries.clear()
    rate_limits_reset()


@pytest.fixture
def client():
    return Client(HTTP_HOST="localhost")


class GraphQLClient:
    """Posts GraphQL documents to /graphql through Django's full request stack."""

    def __init__(self, client: Client):
        self.client = client

    def post(self, query, variables=None, token=None, operation_name=None, headers=None, path="/graphql"):
        """Return the HTTP response of one POST."""
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        extra = dict(headers or {})
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return self.client.post(path, json.dumps(body), content_type="application/json", **extra)

    def __call__(self, query, variables=None, token=None, **kwargs) -> dict:
        """Return the decoded JSON body of one POST, asserting it was answered with JSON."""
        response = self.post(query, variables, token=token, **kwargs)
        assert response["Content-Type"].startswith("application/"), response.content[:200]
        return response.json()


@pytest.fixture
def gql(client):
    """`gql(query, variables, token=...)` -> the JSON body of the response."""
    return GraphQLClient(client)


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 10_000))

    def make(username=None, email=None, password=PASSWORD, **extra):
        n = next(counter)
        return User.objects.create_user(
            username=username or f"user{n}", email=email or f"user{n}@example.com", password=password, **extra
        )

    return make


@pytest.fixture
def user(make_user):
    return make_user(username="alice", email="alice@example.com")


@pytest.fixture
def token(user):
    """An access token of a new session of `user`."""
    return session_open(user=user).token


def error_codes(body: dict) -> list[str]:
    """Return the `extensions.code` of every top-level error in a response body."""
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@pytest.fixture
def redis_db():
    """A connection to the test Redis database, emptied before and after the test.

    Without a reachable Redis the test is skipped on a developer's machine (`make test`
    needs only Python) but fails in CI, which always provides one.
    """
    connection = redis.Redis.from_url(settings.TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        connection.ping()
    except redis.ConnectionError:
        missing(f"Redis is not reachable at {settings.TEST_REDIS_URL}")
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@contextmanager
def session_cache_on(settings, *, first_db: int, name: str) -> Iterator[redis.Redis]:
    """Turn the session cache on in this xdist worker's own Redis db under a fresh key prefix; yield that db.

    A module owns two dbs, `first_db` for the process without xdist or worker gw0 and the
    next for gw1, so that parallel workers never flush each other's keys.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = first_db + (int(worker.removeprefix("gw")) if worker else 0)
    if number not in (first_db, first_db + 1):
        pytest.fail(f"the {name} tests own Redis dbs {first_db} and {first_db + 1} only (run with at most -n 2)")
    url = f"{settings.TEST_REDIS_URL.rsplit('/', 1)[0]}/{number}"
    connection_ = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        connection_.ping()
    except redis.ConnectionError:
        missing(f"Redis is not reachable at {url}")
    connection_.flushdb()
    settings.REDIS_KEY_PREFIX = f"gh-{name.replace(' ', '-')}-{secrets.token_hex(4)}"
    settings.GATEHOUSE = {**settings.GATEHOUSE, "SESSION_CACHE_URL": url, "SESSION_CACHE_TTL": 60}
    session_cache_reset()
    try:
        yield connection_
    finally:
        session_cache_reset()
        connection_.flushdb()
        connection_.close()
