"""The session cache over HTTP: a known session costs no SQL, every change is seen at once.

With the cache on (GATEHOUSE["SESSION_CACHE_URL"], here the shared test Redis, one db per
xdist worker), the per-request session check of a session it knows is one Redis round
trip and no query; a miss is the one join, and fills. Every way Gatehouse ends a session
or changes an account (GraphQL, the admin, the services behind `manage.py`) invalidates
before it returns, so the very next request with the old token sees the change; only a
write behind Gatehouse's back (an `update()` in a shell) lives until the entry's TTL.

Invalidation runs when the change's transaction commits, so these tests commit for real
(`transaction=True`). The faults (Redis down, frozen, answering nonsense) are in
test_session_cache_faults.py.
"""

import hashlib
import io
import re
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from graphql_relay import to_global_id

from accounts.error_codes import AuthErrorCode
from accounts.models import Session, SessionEndReason, User
from accounts.selectors import _access_read
from accounts.services import password_set, refresh_token_revoke
from accounts.session_cache import Access, Miss, session_cache, session_cache_reset, stats
from tests.accounts.test_session_admin import change_form_data
from tests.conftest import PASSWORD, error_codes, session_cache_on

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-Brand-new-passphrase-42"

TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken deviceToken payload }
}
"""
REFRESH = "mutation Refresh($refreshToken: String) { refreshToken(refreshToken: $refreshToken) { token refreshToken } }"
REVOKE = "mutation Revoke($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_SESSION = "mutation RevokeSession($id: ID!) { revokeSession(id: $id) { success errors { field code } } }"
CHANGE = """
mutation Change($oldPassword: String!, $newPassword: String!) {
  passwordChange(oldPassword: $oldPassword, newPassword: $newPassword) { success errors { field code } token }
}
"""
SEND_RESET = "mutation SendReset($email: String!) { sendPasswordResetEmail(email: $email) { success } }"
RESET = """
mutation Reset($token: String!, $newPassword: String!) {
  passwordReset(token: $token, newPassword: $newPassword) { success errors { field code } }
}
"""
DELETE = "mutation Delete($password: String!) { deleteAccount(password: $password) { success errors { field code } } }"
UPDATE = """
mutation Update($username: String, $email: String, $password: String) {
  updateAccount(username: $username, email: $email, password: $password) {
    success pendingEmail errors { field code } user { username email }
  }
}
"""
VERIFY_ACCOUNT = "mutation Verify($token: String!) { verifyAccount(token: $token) { success errors { field code } } }"
ME = "{ me { id username email } }"
ME_FULL = "{ me { id username email dateJoined lastLogin isEmailVerified } }"

RESET_LINK = re.compile(r"https://app\.example\.com/reset-password\?token=([A-Za-z0-9_-]+)")
ACTIVATE_LINK = re.compile(r"https://app\.example\.com/activate\?token=([A-Za-z0-9_-]+)")

REVOKED = [AuthErrorCode.TOKEN_REVOKED.value]


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def cache_redis(settings):
    """Turn the session cache on, in this worker's own Redis db under a fresh key prefix; return that db."""
    with session_cache_on(settings, first_db=10, name="session cache") as connection_:
        yield connection_


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


@pytest.fixture
def admin_client(make_user):
    """A superuser signed in to the admin, on a client of its own (its cookie never rides on `gql`)."""
    admin = User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    return client


def sign_in(gql, email="alice@example.com", password=PASSWORD) -> dict:
    """tokenAuth over HTTP; return its payload."""
    body = gql(TOKEN_AUTH, {"email": email, "password": password})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def sql_of(call):
    """Run `call()`; return (its result, the SQL statements it ran)."""
    with CaptureQueriesContext(connection) as queries:
        result = call()
    return result, [query["sql"] for query in queries.captured_queries]


def me(gql, token, query=ME) -> tuple[dict, int]:
    """Ask `query` with `token`; return (the body, how many SQL statements it cost)."""
    body, statements = sql_of(lambda: gql(query, token=token))
    return body, len(statements)


def assert_cached(gql, token, query=ME) -> dict:
    """The session is in the cache: `query` costs no SQL, counts one hit, and answers; return `me`."""
    hits = stats["hit"]
    body, queries = me(gql, token, query)
    assert "errors" not in body, body
    assert queries == 0, body
    assert stats["hit"] == hits + 1
    return body["data"]["me"]


def warm(gql, token, query=ME) -> dict:
    """Ask once (a miss fills the cache), then prove the session is cached; return `me`."""
    first = gql(query, token=token)
    assert "errors" not in first, first
    assert assert_cached(gql, token, query) == first["data"]["me"]
    return first["data"]["me"]


def assert_revoked(gql, token) -> None:
    body = gql(ME, token=token)
    assert error_codes(body) == REVOKED, body
    assert body["data"] == {"me": None}


def sid(tokens: dict) -> str:
    return tokens["payload"]["sid"]


def entry_key(session_id: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:sc:s:{session_id.replace('-', '')}"


def link_token(pattern) -> str:
    """The token of the one link in the last mail sent."""
    tokens = pattern.findall(mail.outbox[-1].body)
    assert len(tokens) == 1, mail.outbox[-1].body
    return tokens[0]


# --- 1. the hit path ----------------------------------------------------------------------------


def test_a_known_session_costs_no_sql_and_a_miss_costs_the_one_join(gql, user, cache_redis):
    # given: a sign-in, and its first `me`
    tokens = sign_in(gql)
    first = gql(ME, token=tokens["token"])
    assert first["data"]["me"]["username"] == "alice"

    # when / then: the next one is a hit, without SQL
    assert assert_cached(gql, tokens["token"]) == first["data"]["me"]

    # when: the entry is gone (evicted)
    assert cache_redis.delete(entry_key(sid(tokens))) == 1
    misses, writes = stats["miss"], stats["write"]
    body, statements = sql_of(lambda: gql(ME, token=tokens["token"]))

    # then: exactly one query (the join of the session and its account, without the password
    # hash), the same answer, and the entry is written again
    assert body == first
    assert len(statements) == 1, statements
    assert statements[0].startswith("SELECT "), statements
    assert " INNER JOIN " in statements[0], statements
    assert "password" not in statements[0]
    assert (stats["miss"], stats["write"]) == (misses + 1, writes + 1)
    assert cache_redis.exists(entry_key(sid(tokens))) == 1
    assert assert_cached(gql, tokens["token"]) == first["data"]["me"]


def test_sign_in_writes_its_session_so_the_first_request_is_already_a_hit(gql, user, cache_redis):
    # given / when
    tokens = sign_in(gql)

    # then: no SQL from the very first `me`
    assert assert_cached(gql, tokens["token"])["username"] == "alice"


def test_the_cached_viewer_is_the_database_viewer(gql, user, cache_redis):
    # given: a verified account, signed in, and its session cached
    User.objects.filter(pk=user.pk).update(is_email_verified=True)
    tokens = sign_in(gql)
    cache_redis.delete(entry_key(sid(tokens)))
    from_database, queries = me(gql, tokens["token"], ME_FULL)
    assert queries == 1

    # when
    cached = assert_cached(gql, tokens["token"], ME_FULL)

    # then: every field as the database has it, and as the uncached path answered
    row = User.objects.get(pk=user.pk)
    assert row.last_login is not None
    assert cached == {
        "id": to_global_id("User", str(row.pk)),
        "username": row.username,
        "email": row.email,
        "dateJoined": row.date_joined.isoformat(),
        "lastLogin": row.last_login.isoformat(),
        "isEmailVerified": True,
    }
    assert cached == from_database["data"]["me"]


def every_key_and_value(db: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Every key of the db with its value (all of ours are strings)."""
    pairs = []
    for key in db.scan_iter(count=1000):
        assert db.type(key) == b"string", key
        pairs.append((key, db.get(key)))
    return pairs


def test_nothing_in_redis_is_a_secret_and_every_key_expires(gql, user, cache_redis):
    # given: two sessions, one refreshed, their entries written
    first = sign_in(gql)
    second = sign_in(gql)
    rotated = gql(REFRESH, {"refreshToken": second["refreshToken"]})["data"]["refreshToken"]
    warm(gql, first["token"])
    warm(gql, rotated["token"])

    # when
    pairs = every_key_and_value(cache_redis)

    # then: the entries are there ...
    keys = {key.decode() for key, _ in pairs}
    assert {entry_key(sid(first)), entry_key(sid(second))} <= keys
    # ... but no password, hash, token, token digest or signing key, in any key or value
    password_hash = User.objects.get(pk=user.pk).password
    tokens = [first["token"], first["refreshToken"], second["token"], second["refreshToken"]]
    tokens += [rotated["token"], rotated["refreshToken"], first["deviceToken"]]
    secrets_ = [PASSWORD, password_hash, password_hash.rsplit("$", 1)[-1], settings.JWT_SIGNING_KEY]
    secrets_ += [settings.SECRET_KEY, *tokens, *(hashlib.sha256(token.encode()).hexdigest() for token in tokens)]
    for key, value in pairs:
        for secret in secrets_:
            assert secret.encode() not in key
            assert secret.encode() not in value, key
    # ... every key expires, an entry within SESSION_CACHE_TTL
    for key, _ in pairs:
        assert cache_redis.pttl(key) > 0, key
    for session in (first, second):
        assert 0 < cache_redis.pttl(entry_key(sid(session))) <= 60_000


@pytest.mark.parametrize("ends", ["idle", "absolute"])
def test_an_entry_never_outlives_its_session(gql, user, cache_redis, settings, ends):
    # given: a session with 20 s left, by its idle or its absolute lifetime
    if ends == "idle":
        settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME = 20
        tokens = sign_in(gql)
        # the sign-in's own entry too
        assert 0 < cache_redis.pttl(entry_key(sid(tokens))) <= 20_000
    else:
        tokens = sign_in(gql)
        Session.objects.filter(pk=sid(tokens)).update(expires_at=timezone.now() + timedelta(seconds=20))
    assert cache_redis.delete(entry_key(sid(tokens))) == 1

    # when: a miss writes the entry
    assert me(gql, tokens["token"])[1] == 1

    # then: it lives no longer than the session (SESSION_CACHE_TTL is 60 s)
    assert 0 < cache_redis.pttl(entry_key(sid(tokens))) <= 20_000
    assert_cached(gql, tokens["token"])


# --- 2. every change is seen by the very next request -------------------------------------------


def test_logout_revokes_the_cached_session_at_once(gql, user, cache_redis):
    # given
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    # when
    body = gql(REVOKE, {"refreshToken": tokens["refreshToken"]})
    # then
    assert "errors" not in body, body
    assert_revoked(gql, tokens["token"])
    assert cache_redis.exists(entry_key(sid(tokens))) == 0


def test_logout_all_revokes_every_cached_session_at_once(gql, user, cache_redis):
    # given: two sessions, both cached
    this, other = sign_in(gql), sign_in(gql)
    warm(gql, this["token"])
    warm(gql, other["token"])
    # when
    body = gql(LOGOUT_ALL, token=this["token"])
    # then
    assert body == {"data": {"logoutAll": {"success": True, "revokedSessions": 2}}}, body
    assert_revoked(gql, this["token"])
    assert_revoked(gql, other["token"])


def test_revoke_session_from_another_session_revokes_the_cached_one_at_once(gql, user, cache_redis):
    # given: a lost phone's session, cached, and the laptop's
    phone, laptop = sign_in(gql), sign_in(gql)
    warm(gql, phone["token"])
    # when: the laptop ends the phone's session
    body = gql(REVOKE_SESSION, {"id": to_global_id("Session", str(uuid.UUID(sid(phone))))}, token=laptop["token"])
    # then
    assert body == {"data": {"revokeSession": {"success": True, "errors": []}}}, body
    assert_revoked(gql, phone["token"])
    assert gql(ME, token=laptop["token"])["data"]["me"]["username"] == "alice"


def test_a_replayed_refresh_token_revokes_the_cached_session_at_once(gql, user, cache_redis, settings):
    # given: a session refreshed once, its access tokens cached
    settings.REFRESH_TOKEN_REUSE_GRACE = 0
    tokens = sign_in(gql)
    rotated = gql(REFRESH, {"refreshToken": tokens["refreshToken"]})["data"]["refreshToken"]
    warm(gql, tokens["token"])
    assert_cached(gql, rotated["token"])
    # when: the used refresh token comes back after the grace window
    body = gql(REFRESH, {"refreshToken": tokens["refreshToken"]})
    # then: the whole session ended, and both access tokens are refused at once
    assert error_codes(body) == REVOKED, body
    assert Session.objects.get(pk=sid(tokens)).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    assert_revoked(gql, tokens["token"])
    assert_revoked(gql, rotated["token"])


def test_a_password_change_revokes_the_other_cached_sessions_and_keeps_this_one(gql, user, cache_redis):
    # given: this device and another, both cached
    this, other = sign_in(gql), sign_in(gql)
    warm(gql, this["token"])
    warm(gql, other["token"])
    # when
    body = gql(CHANGE, {"oldPassword": PASSWORD, "newPassword": NEW_PASSWORD}, token=this["token"])
    # then: the other device is signed out at once
    assert body["data"]["passwordChange"]["success"] is True, body
    assert_revoked(gql, other["token"])
    # this one lives on (README: "every other session ends"), its old and its new access token alike
    assert gql(ME, token=this["token"])["data"]["me"]["username"] == "alice"
    assert gql(ME, token=body["data"]["passwordChange"]["token"])["data"]["me"]["username"] == "alice"
    assert_cached(gql, this["token"])
    # and its old refresh token is gone
    assert error_codes(gql(REFRESH, {"refreshToken": this["refreshToken"]})) == [AuthErrorCode.TOKEN_INVALID.value]


def test_a_password_reset_revokes_every_cached_session_at_once(gql, user, cache_redis):
    # given: two cached sessions, and a reset link in the mailbox
    first, second = sign_in(gql), sign_in(gql)
    warm(gql, first["token"])
    warm(gql, second["token"])
    assert gql(SEND_RESET, {"email": "alice@example.com"}) == {"data": {"sendPasswordResetEmail": {"success": True}}}
    # when
    body = gql(RESET, {"token": link_token(RESET_LINK), "newPassword": NEW_PASSWORD})
    # then
    assert body == {"data": {"passwordReset": {"success": True, "errors": []}}}, body
    assert_revoked(gql, first["token"])
    assert_revoked(gql, second["token"])


@pytest.mark.parametrize("mode", ["delete", "deactivate"])
def test_delete_account_revokes_every_cached_session_at_once(gql, user, cache_redis, settings, mode):
    # given
    settings.ACCOUNT_DELETION = mode
    this, other = sign_in(gql), sign_in(gql)
    warm(gql, this["token"])
    warm(gql, other["token"])
    # when
    body = gql(DELETE, {"password": PASSWORD}, token=this["token"])
    # then
    assert body == {"data": {"deleteAccount": {"success": True, "errors": []}}}, body
    assert User.objects.filter(pk=user.pk, is_active=True).exists() is False
    assert_revoked(gql, this["token"])
    assert_revoked(gql, other["token"])


def test_password_set_revokes_every_cached_session_at_once(gql, user, cache_redis):
    # given: the service behind `manage.py changepassword` and the admin's password form
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    # when
    assert password_set(user=user, password=NEW_PASSWORD) == 1
    # then
    assert_revoked(gql, tokens["token"])


def test_a_new_sign_in_updates_last_login_as_the_other_cached_session_sees_it(gql, user, cache_redis):
    # given: a cached session
    first = sign_in(gql)
    before = warm(gql, first["token"], ME_FULL)["lastLogin"]
    # when: the same account signs in again elsewhere
    sign_in(gql)
    # then: the first session sees the new lastLogin at once
    row = User.objects.get(pk=user.pk)
    seen = gql(ME_FULL, token=first["token"])["data"]["me"]["lastLogin"]
    assert seen == row.last_login.isoformat()
    assert seen != before


def test_a_username_change_is_seen_at_once(gql, user, cache_redis):
    # given
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    # when
    body = gql(UPDATE, {"username": "alicia"}, token=tokens["token"])
    # then
    assert body["data"]["updateAccount"]["errors"] == [], body
    assert gql(ME, token=tokens["token"])["data"]["me"]["username"] == "alicia"
    assert assert_cached(gql, tokens["token"])["username"] == "alicia"


def test_an_email_change_is_seen_at_once_when_confirmed(gql, user, cache_redis):
    # given: a cached session that asked for a new address
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    body = gql(UPDATE, {"email": "alicia@example.com", "password": PASSWORD}, token=tokens["token"])
    assert body["data"]["updateAccount"]["pendingEmail"] == "alicia@example.com", body
    (to_new,) = [message for message in mail.outbox if message.to == ["alicia@example.com"]]
    token = ACTIVATE_LINK.findall(to_new.body)
    assert len(token) == 1
    assert warm(gql, tokens["token"])["email"] == "alice@example.com"
    # when
    body = gql(VERIFY_ACCOUNT, {"token": token[0]})
    # then
    assert body == {"data": {"verifyAccount": {"success": True, "errors": []}}}, body
    assert gql(ME, token=tokens["token"])["data"]["me"]["email"] == "alicia@example.com"


def test_a_write_behind_gatehouses_back_is_seen_after_the_ttl(gql, user, cache_redis, settings):
    # given: entries that live 1 s, and a cached session
    settings.GATEHOUSE = {**settings.GATEHOUSE, "SESSION_CACHE_TTL": 1}
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    assert 0 < cache_redis.pttl(entry_key(sid(tokens))) <= 1000
    # when: a shell renames the account with update(), which no service sees
    User.objects.filter(pk=user.pk).update(username="renamed-in-a-shell")
    # then: the cache answers the old name (the documented limit) ...
    assert assert_cached(gql, tokens["token"])["username"] == "alice"
    # ... until the entry's TTL is over
    time.sleep(1.5)
    body, queries = me(gql, tokens["token"])
    assert body["data"]["me"]["username"] == "renamed-in-a-shell"
    assert queries == 1


def admin_post(client, url, data) -> None:
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response


def test_deactivation_in_the_admin_revokes_the_cached_session_at_once(gql, user, cache_redis, admin_client):
    # given
    tokens = sign_in(gql)
    data = change_form_data(admin_client, user)
    warm(gql, tokens["token"])
    del data["is_active"]  # unticked
    # when
    admin_post(admin_client, reverse("admin:accounts_user_change", args=[user.pk]), data)
    # then
    assert User.objects.get(pk=user.pk).is_active is False
    assert_revoked(gql, tokens["token"])


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("username", "alicia", {"username": "alicia"}),
        ("email", "alicia@example.com", {"email": "alicia@example.com"}),
        ("is_email_verified", "on", {"isEmailVerified": True}),
    ],
)
def test_an_admin_edit_is_seen_at_once(gql, user, cache_redis, admin_client, field, value, shown):
    # given
    tokens = sign_in(gql)
    data = change_form_data(admin_client, user)
    assert warm(gql, tokens["token"], ME_FULL)["isEmailVerified"] is False
    data[field] = value
    # when
    admin_post(admin_client, reverse("admin:accounts_user_change", args=[user.pk]), data)
    # then
    viewer = gql(ME_FULL, token=tokens["token"])["data"]["me"]
    assert {name: viewer[name] for name in shown} == shown


def test_the_admins_end_all_sessions_action_revokes_the_cached_sessions_at_once(
    gql, user, bob, cache_redis, admin_client
):
    # given
    alice_tokens, bob_tokens = sign_in(gql), sign_in(gql, email="bob@example.com")
    warm(gql, alice_tokens["token"])
    warm(gql, bob_tokens["token"])
    # when: alice's sessions end
    response = admin_client.post(
        reverse("admin:accounts_user_changelist"), {"action": "end_all_sessions", "_selected_action": [str(user.pk)]}
    )
    # then
    assert response.status_code == 302
    assert_revoked(gql, alice_tokens["token"])
    assert gql(ME, token=bob_tokens["token"])["data"]["me"]["username"] == "bob"


def test_the_session_admins_end_sessions_action_revokes_the_cached_session_at_once(
    gql, user, cache_redis, admin_client
):
    # given
    ended, kept = sign_in(gql), sign_in(gql)
    warm(gql, ended["token"])
    warm(gql, kept["token"])
    # when
    response = admin_client.post(
        reverse("admin:accounts_session_changelist"),
        {"action": "end_sessions", "_selected_action": [str(uuid.UUID(sid(ended)))]},
    )
    # then
    assert response.status_code == 302
    assert Session.objects.get(pk=sid(ended)).revoked_reason == SessionEndReason.ADMIN
    assert_revoked(gql, ended["token"])
    assert gql(ME, token=kept["token"])["data"]["me"]["username"] == "alice"


def test_deleting_the_user_in_the_admin_revokes_the_cached_session_at_once(gql, user, cache_redis, admin_client):
    # given
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    # when
    response = admin_client.post(reverse("admin:accounts_user_delete", args=[user.pk]), {"post": "yes"})
    # then
    assert response.status_code == 302
    assert User.objects.filter(pk=user.pk).exists() is False
    assert_revoked(gql, tokens["token"])


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_deleting_the_user_from_a_shell_revokes_the_cached_session_at_once(gql, user, cache_redis, how):
    # given: a cached session
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    # when: the account is deleted straight through the ORM, as an operator's shell would
    if how == "instance":
        User.objects.get(pk=user.pk).delete()
    else:
        User.objects.filter(pk=user.pk).delete()
    # then: the very next request is refused, not answered from the cache
    assert_revoked(gql, tokens["token"])


@pytest.mark.parametrize("ended", ["idle", "revoked"])
def test_housekeeping_revokes_the_cached_sessions_it_deletes(gql, user, cache_redis, settings, ended):
    # given: a cached session that is over: idle too long, or revoked (in the database, behind the
    # cache's back) longer ago than REVOKED_SESSION_RETENTION
    tokens = sign_in(gql)
    warm(gql, tokens["token"])
    if ended == "idle":
        settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME = 0
        # the entry itself knows when its session ends
        body, queries = me(gql, tokens["token"])
        assert error_codes(body) == [AuthErrorCode.TOKEN_EXPIRED.value]
        assert queries == 0
    else:
        settings.REVOKED_SESSION_RETENTION = 0
        ago = timezone.now() - timedelta(seconds=1)
        Session.objects.filter(pk=sid(tokens)).update(revoked_at=ago, revoked_reason=SessionEndReason.LOGOUT)
        assert_cached(gql, tokens["token"])
    # when
    call_command("housekeeping", stdout=io.StringIO())
    # then: the session is gone, and so is what the cache knew of it
    assert Session.objects.filter(pk=sid(tokens)).exists() is False
    assert_revoked(gql, tokens["token"])


# --- 3. the fill race ---------------------------------------------------------------------------


def commit_logout(gql, tokens, user) -> None:
    refresh_token_revoke(refresh_token=tokens["refreshToken"])


def commit_rename(gql, tokens, user) -> None:
    body = gql(UPDATE, {"username": "alicia"}, token=tokens["token"])
    assert body["data"]["updateAccount"]["errors"] == [], body


@pytest.mark.parametrize("change", [commit_logout, commit_rename])
def test_a_change_committed_between_the_read_and_the_write_is_never_overwritten(gql, user, cache_redis, change):
    # given: a request missed (and saw the nonces), then read the database
    tokens = sign_in(gql)
    session_id, user_id = sid(tokens), user.pk
    cache_redis.delete(entry_key(session_id))
    store = session_cache()
    seen = store.lookup(session_id, user_id)
    assert isinstance(seen, Miss)
    read = _access_read(session_id, user_id)
    assert read.user.username == "alice"
    # when: a change commits, and only then the request writes what it read
    change(gql, tokens, user)
    writes = stats["write"]
    store.fill(session_id=session_id, access=read, seen=seen)
    # then: nothing was written, and the next request reads the database
    assert stats["write"] == writes
    assert isinstance(store.lookup(session_id, user_id), Miss)
    body, queries = me(gql, tokens["token"])
    assert queries == 1
    if change is commit_logout:
        assert error_codes(body) == REVOKED, body
    else:
        assert body["data"]["me"]["username"] == "alicia"


def test_a_write_with_the_current_nonces_is_a_hit(gql, user, cache_redis):
    # The counterpart of the race above: the same steps without a change in between write the entry.
    tokens = sign_in(gql)
    session_id = sid(tokens)
    cache_redis.delete(entry_key(session_id))
    store = session_cache()
    seen = store.lookup(session_id, user.pk)
    read = _access_read(session_id, user.pk)
    store.fill(session_id=session_id, access=read, seen=seen)
    assert isinstance(store.lookup(session_id, user.pk), Access)
    assert assert_cached(gql, tokens["token"])["username"] == "alice"


def test_an_evicted_nonce_only_turns_hits_into_misses(gql, user, cache_redis):
    # The module docstring's promise ("an evicted or expired nonce only turns hits into misses"),
    # in the race above. given: the account's nonce is gone (it expired while the account was
    # idle, or Redis evicted it); a request misses and reads the database; a logout commits,
    # and the fresh nonce it wrote is evicted too before the request writes what it read
    tokens = sign_in(gql)
    session_id, nonce_key = sid(tokens), f"{settings.REDIS_KEY_PREFIX}:sc:u:{user.pk}"
    assert cache_redis.delete(entry_key(session_id), nonce_key) == 2
    store = session_cache()
    seen = store.lookup(session_id, user.pk)
    assert isinstance(seen, Miss)
    read = _access_read(session_id, user.pk)
    refresh_token_revoke(refresh_token=tokens["refreshToken"])
    assert cache_redis.delete(nonce_key) == 1
    # when
    store.fill(session_id=session_id, access=read, seen=seen)
    # then: the ended session is not served from the cache
    assert_revoked(gql, tokens["token"])


# --- 5. without the cache -----------------------------------------------------------------------


def test_without_the_cache_a_request_costs_one_query_and_an_anonymous_one_none(gql, user, settings):
    # given: the test settings (no SESSION_CACHE_URL)
    assert settings.GATEHOUSE["SESSION_CACHE_URL"] is None
    session_cache_reset()
    assert session_cache() is None
    tokens = sign_in(gql)
    # then: the one join per authenticated request, every time
    for _ in range(2):
        body, queries = me(gql, tokens["token"])
        assert body["data"]["me"]["username"] == "alice"
        assert queries == 1
    # and nothing for a request without a token, or with a broken one
    body, queries = me(gql, None)
    assert (body, queries) == ({"data": {"me": None}}, 0)
    body, queries = me(gql, tokens["token"][:-2] + "xx")
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    assert queries == 0
    assert stats == {}
