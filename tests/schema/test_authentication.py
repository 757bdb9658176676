"""Bearer authentication over HTTP: hostile tokens and headers, account state, query counts.

The hostile tokens are built by tests/accounts/test_tokens.py; here each one is sent in a
real `Authorization` header through the middleware and the view.
"""

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from graphql_relay import to_global_id

from accounts.error_codes import AuthErrorCode
from accounts.models import User
from accounts.services import session_open
from tests.accounts.test_tokens import (
    FORGERIES,
    NEW_KEY,
    OTHER_KEY,
    access_lifetime,
    now,
    rotated,
    sign,
    token_for,
    valid_claims,
)
from tests.conftest import PASSWORD, error_codes

ME = "{ me { id username email } }"


def me_with(gql, header: str | None = None, variables=None, **post):
    """POST the `me` query with `header` as Authorization; return (response, SQL queries run)."""
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header}
    with CaptureQueriesContext(connection) as queries:
        response = gql.post(ME, variables, headers=headers, **post)
    return response, queries.captured_queries


def assert_token_error(response, code: AuthErrorCode, *, token: str = ""):
    """Assert `me` was refused with exactly one top-level `code`, echoing nothing of the token."""
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"me": None}
    assert len(body["errors"]) == 1
    assert error_codes(body) == [code.value]
    assert body["errors"][0]["path"] == ["me"]
    if len(token) >= 16:
        assert token not in response.content.decode()
    return body


def assert_anonymous(response):
    assert response.status_code == 200
    assert response.json() == {"data": {"me": None}}


def assert_viewer(response, user):
    assert response.status_code == 200
    assert response.json() == {
        "data": {"me": {"id": to_global_id("User", user.pk), "username": user.username, "email": user.email}}
    }


# --- the baseline ----------------------------------------------------------------------------


def test_a_hand_built_token_authenticates(gql, user, sid):
    # given: what every forgery below starts from
    token = token_for(str(user.pk), sid=sid)
    # when
    response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_viewer(response, user)
    assert len(queries) == 1


@pytest.fixture
def sid(user) -> str:
    """The id of a live session of `user`, for hand-built tokens that must authenticate."""
    return session_open(user=user).payload["sid"]


# --- forgery -----------------------------------------------------------------------------------


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_token_is_token_invalid_without_a_query(gql, user, forge):
    # given: a token for the user, broken in one way
    token = forge(str(user.pk))
    # when
    response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)
    assert queries == []


def test_tampered_subject_never_authenticates_the_other_user(gql, user, make_user):
    # given: alice's genuine token with its payload swapped for one naming bob, signature kept
    bob = make_user(username="bob", email="bob@example.com")
    genuine = session_open(user=user).token
    header, _, signature = genuine.split(".")
    forged_payload = token_for(str(bob.pk)).split(".")[1]
    forged = f"{header}.{forged_payload}.{signature}"
    # when
    response, queries = me_with(gql, f"Bearer {forged}")
    # then
    body = assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=forged)
    assert "bob" not in response.content.decode()
    assert body["data"] == {"me": None}
    assert queries == []
    # and the genuine token still names alice
    assert_viewer(me_with(gql, f"Bearer {genuine}")[0], user)


def test_every_invalid_token_gets_the_same_message(gql, user):
    # A forger learns nothing from which check refused the token.
    names = ["alg none no signature", "wrong key, its own kid", "kid unknown", "aud wrong", "sub 0", "header jwk"]
    messages = set()
    for name in names:
        response, _ = me_with(gql, f"Bearer {FORGERIES[name](str(user.pk))}")
        body = assert_token_error(response, AuthErrorCode.TOKEN_INVALID)
        messages.add(body["errors"][0]["message"])
    assert len(messages) == 1


def test_largest_possible_subject_is_well_formed_but_revoked(gql, db):
    # A sub at the bigint limit passes the claim checks and costs the one lookup; no such account.
    token = token_for(str(2**63 - 1))
    response, queries = me_with(gql, f"Bearer {token}")
    assert_token_error(response, AuthErrorCode.TOKEN_REVOKED, token=token)
    assert len(queries) == 1


# --- expiry and leeway ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds_ago", [0, 1, 5], ids=["exp now", "1s ago", "5s ago"])
def test_expired_token_is_token_expired_without_a_query(gql, user, seconds_ago):
    # given
    issued = now()
    token = token_for(str(user.pk), iat=issued - 60, exp=issued - seconds_ago)
    # when
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 0}):
        response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_token_error(response, AuthErrorCode.TOKEN_EXPIRED, token=token)
    assert queries == []


def test_expired_bool_exp_is_token_invalid(gql, user):
    # A boolean exp is a claim of the wrong type, like a string or a float (see test_tokens).
    token = token_for(str(user.pk), iat=now() - 60, exp=True)
    response, queries = me_with(gql, f"Bearer {token}")
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)
    assert queries == []


def test_token_expiring_in_a_minute_is_accepted(gql, user, sid):
    issued = now()
    token = token_for(str(user.pk), sid=sid, iat=issued, exp=issued + 60)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 0}):
        response, _ = me_with(gql, f"Bearer {token}")
    assert_viewer(response, user)


def test_leeway_accepts_a_recently_expired_token_and_no_older_one(gql, user, sid):
    # given: one token 5 s past its exp, one 120 s past
    issued = now()
    recent = token_for(str(user.pk), sid=sid, iat=issued - 60, exp=issued - 5)
    old = token_for(str(user.pk), sid=sid, iat=issued - 180, exp=issued - 120)
    # when
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 60}):
        recent_response, _ = me_with(gql, f"Bearer {recent}")
        old_response, _ = me_with(gql, f"Bearer {old}")
    # then
    assert_viewer(recent_response, user)
    assert_token_error(old_response, AuthErrorCode.TOKEN_EXPIRED)


def test_token_lifetime_of_exactly_the_configured_one_is_accepted(gql, user, sid):
    issued = now()
    token = token_for(str(user.pk), sid=sid, iat=issued, exp=issued + access_lifetime())
    assert_viewer(me_with(gql, f"Bearer {token}")[0], user)


def test_expired_token_under_the_wrong_key_is_invalid_not_expired(gql, user):
    issued = now()
    token = sign(valid_claims(str(user.pk), iat=issued - 120, exp=issued - 60), key=OTHER_KEY)
    response, queries = me_with(gql, f"Bearer {token}")
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)
    assert queries == []


# --- key rotation -------------------------------------------------------------------------------


def test_token_of_a_previous_key_is_accepted_while_listed(gql, user):
    # given: a token signed with the key in use today
    old_key = settings.GRAPHQL_JWT["JWT_SECRET_KEY"]
    token = session_open(user=user).token
    # when: the key is rotated and the old one kept for verification
    with rotated(old_key):
        response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_viewer(response, user)
    assert len(queries) == 1


def test_token_of_a_previous_key_is_refused_once_dropped(gql, user):
    token = session_open(user=user).token
    with rotated():
        response, queries = me_with(gql, f"Bearer {token}")
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)
    assert queries == []


def test_token_of_the_new_key_is_accepted_after_rotation(gql, user, sid):
    with rotated():
        token = sign(valid_claims(str(user.pk), sid=sid), key=NEW_KEY)
        response, _ = me_with(gql, f"Bearer {token}")
    assert_viewer(response, user)


def test_sign_in_after_rotation_issues_a_token_of_the_new_key(gql, user):
    # given: the key rotated, the old one still accepted
    old_key = settings.GRAPHQL_JWT["JWT_SECRET_KEY"]
    with rotated(old_key):
        body = gql(
            "mutation($email: String!, $password: String!) { tokenAuth(email: $email, password: $password) { token } }",
            {"email": user.email, "password": PASSWORD},
        )
    token = body["data"]["tokenAuth"]["token"]
    # when: the rotation is undone, so the new key is unknown
    response, _ = me_with(gql, f"Bearer {token}")
    # then: the token was signed with the new key, not the old one
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)


# --- account state ---------------------------------------------------------------------------------


def test_token_of_a_deleted_user_is_revoked(gql, user, token):
    # given
    User.objects.filter(pk=user.pk).delete()
    # when
    response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_token_error(response, AuthErrorCode.TOKEN_REVOKED, token=token)
    assert len(queries) == 1
    assert queries[0]["sql"].lstrip().upper().startswith("SELECT")
    assert not User.objects.exists()


def test_token_of_a_deactivated_user_is_revoked(gql, user, token):
    # given: deactivated behind the model's back (no signal, no save())
    User.objects.filter(pk=user.pk).update(is_active=False)
    # when
    response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_token_error(response, AuthErrorCode.TOKEN_REVOKED, token=token)
    assert len(queries) == 1
    user.refresh_from_db()
    assert user.is_active is False


def test_token_follows_the_account_through_an_email_change(gql, user, token):
    # given
    User.objects.filter(pk=user.pk).update(email="alice.new@example.com")
    user.refresh_from_db()
    # when
    response, _ = me_with(gql, f"Bearer {token}")
    # then
    assert_viewer(response, user)
    assert response.json()["data"]["me"]["email"] == "alice.new@example.com"


def test_token_of_a_deleted_account_never_reaches_its_re_registered_email(gql, user, token):
    # given: alice deleted, then the same address registered again
    old_pk = user.pk
    user.delete()
    body = gql(
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
        "{ token errors { field code } } }",
        {"u": "alice", "e": "alice@example.com", "p": PASSWORD},
    )
    assert body["data"]["register"]["errors"] == []
    newcomer = User.objects.get(email="alice@example.com")
    assert newcomer.pk != old_pk
    # when
    response, _ = me_with(gql, f"Bearer {token}")
    # then: the old token is revoked; the new account answers only to its own token
    assert_token_error(response, AuthErrorCode.TOKEN_REVOKED, token=token)
    assert_viewer(me_with(gql, f"Bearer {body['data']['register']['token']}")[0], newcomer)


# --- the Authorization header --------------------------------------------------------------------------


def test_no_header_is_anonymous_without_a_query(gql, db):
    response, queries = me_with(gql)
    assert_anonymous(response)
    assert queries == []


@pytest.mark.parametrize("header", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
def test_blank_header_is_anonymous(gql, db, header):
    # Apollo's documented auth link sends an empty header when signed out.
    response, queries = me_with(gql, header)
    assert_anonymous(response)
    assert queries == []


@pytest.mark.parametrize(
    "shape",
    [
        "JWT {token}",
        "Token {token}",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer {token} {token}",
        "{token}",
        "Bearer:{token}",
    ],
)
def test_other_header_shapes_are_token_invalid(gql, user, shape):
    # A client that meant to authenticate is never quietly treated as anonymous.
    header = shape.format(token=session_open(user=user).token)
    response, queries = me_with(gql, header)
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID)
    assert queries == []


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_in_any_case_authenticates(gql, user, token, scheme):
    # RFC 7235 section 2.1: the auth-scheme is case-insensitive.
    assert_viewer(me_with(gql, f"{scheme} {token}")[0], user)


def test_oversized_header_is_token_invalid_without_a_query(gql, user):
    # given: a correctly signed token for alice, made too long by an ignored claim
    limit = settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]
    token = token_for(str(user.pk), padding="x" * limit)
    # when
    response, queries = me_with(gql, f"Bearer {token}")
    # then
    assert_token_error(response, AuthErrorCode.TOKEN_INVALID, token=token)
    assert queries == []


def test_header_limit_is_exact(gql, user, token):
    header = f"Bearer {token}"
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "MAX_AUTHORIZATION_HEADER": len(header)}):
        assert_viewer(me_with(gql, header)[0], user)
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "MAX_AUTHORIZATION_HEADER": len(header) - 1}):
        assert_token_error(me_with(gql, header)[0], AuthErrorCode.TOKEN_INVALID)


@pytest.mark.parametrize("name", ["JWT", "token", "access_token"])
def test_token_in_a_cookie_is_ignored(gql, client, user, token, name):
    # django-graphql-jwt reads a `JWT` cookie even in header-only setups; Gatehouse does not.
    client.cookies[name] = token
    response, queries = me_with(gql)
    assert_anonymous(response)
    assert queries == []


@pytest.mark.parametrize("name", ["token", "access_token", "jwt", "JWT"])
def test_token_in_the_url_is_ignored(gql, user, token, name):
    # RFC 6750's access_token query parameter leaks tokens into logs and Referer headers.
    response, queries = me_with(gql, path=f"/graphql?{name}={token}")
    assert_anonymous(response)
    assert queries == []


def test_token_in_the_body_is_ignored(gql, user, token):
    # django-graphql-jwt's JWT_ALLOW_ARGUMENT is off: a `token` variable authenticates nothing.
    response, queries = me_with(gql, variables={"token": token})
    assert_anonymous(response)
    assert queries == []


def test_django_session_does_not_authenticate_graphql(gql, client, user):
    # given: a session login, as the admin site makes
    client.force_login(user)
    # when
    response, queries = me_with(gql)
    # then
    assert_anonymous(response)
    assert queries == []


def test_bearer_token_wins_over_a_django_session(gql, client, user, make_user):
    # given: a session for alice and a token for bob
    client.force_login(user)
    bob = make_user(username="bob", email="bob@example.com")
    # when
    response, _ = me_with(gql, f"Bearer {session_open(user=bob).token}")
    # then
    assert_viewer(response, bob)


# --- sign-in with a bad header ----------------------------------------------------------------------------

TOKEN_AUTH = (
    "mutation($email: String!, $password: String!) "
    "{ tokenAuth(email: $email, password: $password) { token user { username } } }"
)


@pytest.mark.parametrize(
    "header",
    ["Bearer garbage", "JWT garbage", "Bearer a b"],
)
def test_bad_header_does_not_block_signing_in(gql, user, header):
    # given: a client still holding a broken token
    # when
    body = gql(TOKEN_AUTH, {"email": user.email, "password": PASSWORD}, headers={"HTTP_AUTHORIZATION": header})
    # then: it signs in, and the new token works
    assert "errors" not in body
    assert body["data"]["tokenAuth"]["user"] == {"username": "alice"}
    assert_viewer(me_with(gql, f"Bearer {body['data']['tokenAuth']['token']}")[0], user)
    user.refresh_from_db()
    assert user.last_login is not None


def test_expired_header_does_not_block_signing_in(gql, user):
    issued = now()
    expired = token_for(str(user.pk), iat=issued - 120, exp=issued - 60)
    body = gql(TOKEN_AUTH, {"email": user.email, "password": PASSWORD}, token=expired)
    assert "errors" not in body
    assert body["data"]["tokenAuth"]["token"]


def test_bad_header_does_not_block_registering(gql, db):
    body = gql(
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
        "{ token errors { field code } } }",
        {"u": "carol", "e": "carol@example.com", "p": PASSWORD},
        headers={"HTTP_AUTHORIZATION": "Bearer garbage"},
    )
    assert "errors" not in body
    assert body["data"]["register"]["errors"] == []
    assert User.objects.filter(email="carol@example.com").count() == 1


# --- query counts ----------------------------------------------------------------------------------------


def count_queries(gql, query, variables=None, **kwargs) -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        body = gql(query, variables, **kwargs)
    return body, len(queries)


def test_authenticated_me_costs_one_query(gql, user, token):
    body, queries = count_queries(gql, "{ me { id } }", token=token)
    assert body == {"data": {"me": {"id": to_global_id("User", user.pk)}}}
    assert queries == 1


def test_the_viewer_is_loaded_once_per_request(gql, user, token):
    body, queries = count_queries(gql, "{ a: me { id } b: me { username } c: me { email } }", token=token)
    assert body["data"] == {
        "a": {"id": to_global_id("User", user.pk)},
        "b": {"username": "alice"},
        "c": {"email": "alice@example.com"},
    }
    assert queries == 1


def test_me_and_own_node_cost_one_query(gql, user, token):
    global_id = to_global_id("User", user.pk)
    body, queries = count_queries(
        gql, "query($id: ID!) { me { id } node(id: $id) { id } }", {"id": global_id}, token=token
    )
    assert body["data"] == {"me": {"id": global_id}, "node": {"id": global_id}}
    assert queries == 1


def test_anonymous_me_costs_no_query(gql, db):
    body, queries = count_queries(gql, "{ me { id } }")
    assert body == {"data": {"me": None}}
    assert queries == 0


def test_invalid_token_costs_no_query(gql, user):
    body, queries = count_queries(gql, "{ a: me { id } b: me { id } }", token="not-a-token")
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value] * 2
    assert queries == 0


def test_expired_token_costs_no_query(gql, user):
    issued = now()
    token = token_for(str(user.pk), iat=issued - 120, exp=issued - 60)
    body, queries = count_queries(gql, "{ a: me { id } b: me { id } }", token=token)
    assert error_codes(body) == [AuthErrorCode.TOKEN_EXPIRED.value] * 2
    assert queries == 0


def test_revoked_token_costs_one_query_however_often_asked(gql, user, token):
    User.objects.filter(pk=user.pk).update(is_active=False)
    body, queries = count_queries(gql, "{ a: me { id } b: me { id } }", token=token)
    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value] * 2
    assert queries == 1
