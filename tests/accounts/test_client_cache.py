"""The session cache for service clients: a known client costs no SQL, every change is seen at once.

A service token's request checks its client (active, scopes, when its secret changed)
through the same Redis cache and nonce protocol as a user's session
(accounts.session_cache): the client's entry counts only while its own nonce and the
global one are unchanged. Disabling a client, rotating its secret or saving it replaces
its nonce when the change commits, so the next request with an old token is TOKEN_REVOKED
in every process. These tests commit for real (`transaction=True`) and use Redis dbs 12
and 13 only.
"""

import os
import secrets

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.error_codes import AuthErrorCode
from accounts.exceptions import TokenRevoked
from accounts.models import ServiceClient
from accounts.scopes import USERS_READ, USERS_WRITE
from accounts.selectors import service_caller_get
from accounts.services import client_disable, client_secret_rotate, service_token_issue, service_token_verify
from accounts.session_cache import Miss, SessionCache, session_cache, session_cache_reset, stats
from accounts.tokens import jwt_encode
from tests.conftest import error_codes, session_cache_on
from tests.oauth import fixed_settings, make_client

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE_CLIENT = "{ serviceClient { clientId name scopes } }"
REVOKED = [AuthErrorCode.TOKEN_REVOKED.value]


@pytest.fixture
def cache_redis(settings):
    """Turn the session cache on, in this worker's own Redis db under a fresh key prefix; return that db."""
    fixed_settings(settings)
    with session_cache_on(settings, first_db=12, name="client cache") as connection_:
        yield connection_


@pytest.fixture
def service():
    """A client with users:read and users:write, and a token of it."""
    client, _secret = make_client(scopes=f"{USERS_READ} {USERS_WRITE}")
    return client, service_token_issue(client=client).access_token


def entry_key(client_id: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:sc:c:{client_id}"


def nonce_key(client_id: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:sc:cn:{client_id}"


def token_issued_at(client: ServiceClient, iat: int) -> str:
    """A service token of `client` (all its scopes) issued at `iat`, signed as Gatehouse signs."""
    return jwt_encode(
        {
            "iss": settings.GRAPHQL_JWT["JWT_ISSUER"],
            "aud": settings.GRAPHQL_JWT["JWT_AUDIENCE"],
            "sub": client.client_id,
            "client_id": client.client_id,
            "iat": iat,
            "exp": iat + 300,
            "jti": secrets.token_urlsafe(16),
            "scope": client.scopes,
            "token_type": "service",
            "secret_version": client.secret_version,
        }
    )


def ask(gql, token, query=SERVICE_CLIENT) -> tuple[dict, list[str]]:
    """Ask `query` with `token`; return the body and the SQL it cost."""
    with CaptureQueriesContext(connection) as queries:
        body = gql(query, token=token)
    return body, [query["sql"] for query in queries.captured_queries]


def warm(gql, token) -> dict:
    """Ask once (a miss reads the client and fills), then prove the next request costs no SQL."""
    first, statements = ask(gql, token)
    assert "errors" not in first, first
    hits = stats["client_hit"]
    again, statements = ask(gql, token)
    assert again == first
    assert statements == []
    assert stats["client_hit"] == hits + 1
    return first["data"]["serviceClient"]


def assert_revoked(gql, token) -> None:
    body = gql(SERVICE_CLIENT, token=token)
    assert error_codes(body) == REVOKED, body
    assert body["data"] == {"serviceClient": None}


# --- the hit path ------------------------------------------------------------------------------


def test_a_known_client_costs_no_sql_and_a_miss_costs_one_query(gql, service, cache_redis):
    # given
    client, token = service
    misses, writes = stats["client_miss"], stats["client_write"]

    # when: the first request
    body, statements = ask(gql, token)

    # then: one query, without the secret's digest, and the entry is written
    assert body["data"]["serviceClient"] == {
        "clientId": client.client_id,
        "name": "billing",
        "scopes": [USERS_READ, USERS_WRITE],
    }
    assert len(statements) == 1, statements
    assert "secret_digest" not in statements[0]
    assert (stats["client_miss"], stats["client_write"]) == (misses + 1, writes + 1)
    assert cache_redis.exists(entry_key(client.client_id)) == 1
    # nothing in the entry is a secret
    assert client.secret_digest.encode() not in cache_redis.get(entry_key(client.client_id))

    # when / then: the next one is a hit, without SQL
    assert warm(gql, token) == body["data"]["serviceClient"]


def test_a_warm_client_serves_users_read_without_a_query_for_the_client(gql, service, cache_redis, make_user):
    # given
    make_user(username="carol", email="carol@example.com")
    _client, token = service
    warm(gql, token)

    # when
    body, statements = ask(gql, token, "{ users { totalCount } }")

    # then: only the listing's own queries, none on the clients' table
    assert body == {"data": {"users": {"totalCount": 1}}}
    assert not any(ServiceClient._meta.db_table in sql for sql in statements), statements


# --- every change is seen on the next request --------------------------------------------------


def test_disabling_a_client_revokes_its_tokens_on_the_next_request(gql, service, cache_redis):
    client, token = service
    warm(gql, token)

    client_disable(client=client, via="tests")

    assert_revoked(gql, token)
    assert cache_redis.exists(entry_key(client.client_id)) == 0


def test_disableclient_the_command_revokes_at_once(gql, service, cache_redis):
    client, token = service
    warm(gql, token)

    call_command("disableclient", client.client_id, stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert_revoked(gql, token)


def test_rotating_a_secret_revokes_older_tokens_on_the_next_request(gql, cache_redis):
    # given: a token issued just now (the same second as the rotation below), and the cache warm
    client, _secret = make_client()
    old = service_token_issue(client=client).access_token
    warm(gql, old)

    # when
    client_secret_rotate(client=client, via="tests")

    # then: the old token is refused at once; a new one works, and fills the cache again
    assert_revoked(gql, old)
    new = service_token_issue(client=ServiceClient.objects.get(pk=client.pk)).access_token
    assert warm(gql, new)["clientId"] == client.client_id
    assert_revoked(gql, old)


def test_saving_a_client_refreshes_its_entry(gql, service, cache_redis):
    # given
    client, token = service
    assert warm(gql, token)["name"] == "billing"

    # when: renamed (as the admin's change form does)
    client.name = "invoicing"
    client.save()

    # then
    assert warm(gql, token)["name"] == "invoicing"


def test_a_scope_taken_away_behind_the_services_back_lives_at_most_until_the_entry_expires(gql, service, cache_redis):
    # given: an update() that no service saw (a shell)
    client, token = service
    warm(gql, token)
    ServiceClient.objects.filter(pk=client.pk).update(scopes=USERS_READ)

    # when: the entry is gone (its TTL, or eviction)
    cache_redis.delete(entry_key(client.client_id))

    # then
    assert_revoked(gql, token)


def test_replacing_the_global_nonce_invalidates_every_client(gql, service, cache_redis):
    client, token = service
    warm(gql, token)
    ServiceClient.objects.filter(pk=client.pk).update(name="renamed")
    cache_redis.set(f"{settings.REDIS_KEY_PREFIX}:sc:g", b"new")

    body, statements = ask(gql, token)

    assert body["data"]["serviceClient"]["name"] == "renamed"
    assert len(statements) == 1


def test_another_process_sees_the_invalidation(gql, service, cache_redis):
    # given: a second cache object on its own connection, as in another process, warm
    client, token = service
    warm(gql, token)
    other = SessionCache(settings.GATEHOUSE["SESSION_CACHE_URL"], cooldown=5.0)
    assert isinstance(other.client_lookup(client.client_id), ServiceClient)

    # when: this process disables the client
    client_disable(client=client, via="tests")

    # then: the other one misses
    assert isinstance(other.client_lookup(client.client_id), Miss)
    other.client.close()


# --- the fill race and forged entries ----------------------------------------------------------


def test_a_change_committed_between_the_miss_and_the_fill_is_not_cached_over(gql, service, cache_redis):
    # given: a request that missed and read the client (still active)
    client, token = service
    store = session_cache()
    seen = store.client_lookup(client.client_id)
    assert isinstance(seen, Miss)
    read = ServiceClient.objects.get(pk=client.pk)

    # when: the client is disabled before the request writes what it read
    client_disable(client=client, via="tests")
    store.client_fill(client=read, seen=seen)

    # then: nothing was written, and the token is refused
    assert cache_redis.exists(entry_key(client.client_id)) == 0
    assert_revoked(gql, token)


def test_an_entry_not_signed_by_gatehouse_is_a_miss(gql, service, cache_redis):
    # given: a warm entry whose body is changed (say, to add a scope), its signature kept
    client, token = service
    warm(gql, token)
    key = entry_key(client.client_id)
    entry = cache_redis.get(key)
    cache_redis.set(key, entry.replace(b"users:read users:write", b"users:read tokens:introspect"))
    ServiceClient.objects.filter(pk=client.pk).update(is_active=False)

    # then: the forged entry is not believed; the database answers
    malformed, misses = stats["client_malformed"], stats["client_miss"]
    assert_revoked(gql, token)
    assert (stats["client_malformed"], stats["client_miss"]) == (malformed, misses + 1)


def test_a_disabled_client_is_never_cached(gql, service, cache_redis):
    client, token = service
    ServiceClient.objects.filter(pk=client.pk).update(is_active=False)
    assert_revoked(gql, token)
    assert cache_redis.exists(entry_key(client.client_id)) == 0


def test_without_redis_the_client_is_read_once_per_request(gql, service, settings):
    # given: the cache off (the test default)
    fixed_settings(settings)
    assert session_cache() is None
    client, token = service

    # then: one query per request, and changes seen at once
    for _ in range(2):
        body, statements = ask(gql, token)
        assert body["data"]["serviceClient"]["clientId"] == client.client_id
        assert len(statements) == 1
    client_disable(client=client, via="tests")
    assert_revoked(gql, token)


def test_service_caller_get_checks_the_tokens_claims_against_the_cached_client(service, cache_redis):
    # given: the entry warm
    client, token = service
    claims = service_token_verify(token)
    assert service_caller_get(claims=claims).client.client_id == client.client_id
    assert isinstance(session_cache().client_lookup(client.client_id), ServiceClient)

    # then: a scope the client lacks, or another secret's version, is revoked even on a hit
    with pytest.raises(TokenRevoked):
        service_caller_get(claims={**claims, "scope": f"{USERS_READ} tokens:introspect"})
    with pytest.raises(TokenRevoked):
        service_caller_get(claims={**claims, "secret_version": client.secret_version - 1})
    assert cache_redis.exists(nonce_key(client.client_id)) == 1


def test_with_redis_down_the_database_answers(gql, service, settings):
    # given: a cache URL where nothing listens (connection refused at once)
    fixed_settings(settings)
    settings.GATEHOUSE = {**settings.GATEHOUSE, "SESSION_CACHE_URL": "redis://127.0.0.1:1/12", "SESSION_CACHE_TTL": 60}
    session_cache_reset()
    client, token = service
    try:
        # then: answered from the database, and a disabled client is still refused at once
        body, statements = ask(gql, token)
        assert body["data"]["serviceClient"]["clientId"] == client.client_id
        assert len(statements) == 1
        assert stats["client_fallback"] == 1
        client_disable(client=client, via="tests")
        assert_revoked(gql, token)
    finally:
        session_cache_reset()
