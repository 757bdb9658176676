"""Cookie mode over HTTP: the refresh token in an HttpOnly cookie, and every way to abuse it.

The cookie is attached by the browser on its own, so these tests behave like a hostile
page would: wrong or missing Origin, simple (preflight-free) requests, GET mutations, a
cookie where a token should be, an admin session cookie. After every refusal the session
and its refresh tokens must be exactly as they were, and no new cookie may be set.
"""

import json
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings
from django.utils import timezone

from accounts.checks import check_refresh_cookie_path
from accounts.error_codes import AuthErrorCode
from accounts.models import RefreshToken, Session, SessionEndReason
from accounts.services import session_open
from accounts.tokens import refresh_token_digest
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

SECURE_NAME = "__Secure-gatehouse_refresh"
HOST_NAME = "__Host-gatehouse_refresh"
# The test client talks to http://localhost (HTTP_HOST=localhost, no TLS).
SELF_ORIGIN = "http://localhost"
SAME_ORIGIN = {"HTTP_ORIGIN": SELF_ORIGIN}

TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token payload refreshToken refreshExpiresIn }
}
"""
REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    token refreshToken refreshExpiresIn errors { field code }
  }
}
"""
REFRESH = """
mutation Refresh($refreshToken: String) {
  refreshToken(refreshToken: $refreshToken) { token payload refreshToken refreshExpiresIn }
}
"""
REVOKE = "mutation Revoke($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
DELETE_COOKIE = "mutation { deleteRefreshTokenCookie { deleted } }"
ME = "{ me { username } }"


# --- helpers and fixtures --------------------------------------------------------------------


@pytest.fixture
def cookie_mode():
    """Turn cookie mode on (with credentialed CORS, as the settings derive it); call the
    fixture's value with more GATEHOUSE keys to change them."""
    overrides = []

    def configure(**options):
        override = override_settings(
            GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE": True, **options}, CORS_ALLOW_CREDENTIALS=True
        )
        override.enable()
        overrides.append(override)

    configure()
    yield configure
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def tokens(user):
    """A new session of `user`, opened by the service (so no cookie is set on the client)."""
    return session_open(user=user)


def sign_in(gql, email="alice@example.com"):
    """Post tokenAuth; return (response, payload)."""
    response = gql.post(TOKEN_AUTH, {"email": email, "password": PASSWORD})
    body = response.json()
    assert "errors" not in body, body
    return response, body["data"]["tokenAuth"]


def session_of(refresh_token: str) -> Session:
    return RefreshToken.objects.get(token_hash=refresh_token_digest(refresh_token)).session


def session_state(session_id) -> tuple:
    """Everything a refusal must leave alone: the session row and every refresh token row."""
    session = Session.objects.get(pk=session_id)
    rows = list(RefreshToken.objects.filter(session_id=session_id).order_by("pk").values_list("token_hash", "used_at"))
    return session.revoked_at, session.revoked_reason, session.last_used_at, session.expires_at, rows


def is_unused(refresh_token: str) -> bool:
    return RefreshToken.objects.get(token_hash=refresh_token_digest(refresh_token)).used_at is None


def assert_cookie_set(response, name=SECURE_NAME, path="/graphql", samesite="Lax") -> str:
    """Assert the refresh cookie was set with every protective attribute; return its value."""
    assert name in response.cookies, response.cookies
    morsel = response.cookies[name]
    assert morsel.value
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == samesite
    assert morsel["path"] == path
    # No Domain: a subdomain can neither read it nor (with __Host-) set it.
    assert morsel["domain"] == ""
    return morsel.value


def assert_cookie_deleted(response, name=SECURE_NAME, path="/graphql") -> None:
    assert name in response.cookies, response.cookies
    morsel = response.cookies[name]
    assert morsel.value == ""
    assert morsel["max-age"] == 0
    assert morsel["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert morsel["path"] == path
    assert morsel["secure"] is True


def assert_no_cookie(response) -> None:
    assert SECURE_NAME not in response.cookies
    assert HOST_NAME not in response.cookies


# --- 1. off by default -----------------------------------------------------------------------


def test_cookie_mode_is_off_in_settings():
    assert settings.GATEHOUSE["REFRESH_TOKEN_COOKIE"] is False


def test_off_token_auth_returns_refresh_token_in_body_and_sets_no_cookie(gql, user):
    response, payload = sign_in(gql)

    assert payload["token"]
    assert len(payload["refreshToken"]) == 43
    assert is_unused(payload["refreshToken"])
    assert_no_cookie(response)


def test_off_refresh_without_argument_is_unauthenticated_even_with_the_cookie(gql, client, tokens):
    # given: a valid refresh token in the cookie, sent from our own origin
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    # when
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    # then: off means off, the cookie is never read
    body = response.json()
    assert error_codes(body) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert body["data"] == {"refreshToken": None}
    assert session_state(session_of(tokens.refresh_token).pk) == before
    assert_no_cookie(response)


def test_off_revoke_without_argument_is_unauthenticated_and_the_session_lives(gql, client, tokens):
    client.cookies[SECURE_NAME] = tokens.refresh_token

    body = gql(REVOKE, headers=SAME_ORIGIN)

    assert error_codes(body) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert session_of(tokens.refresh_token).revoked_at is None


# --- 2. cookie set on sign-in, register and refresh ------------------------------------------


def test_token_auth_sets_the_cookie_and_no_refresh_token_in_the_body(gql, user, cookie_mode):
    response, payload = sign_in(gql)

    value = assert_cookie_set(response)
    assert payload["refreshToken"] is None
    # The access token still travels in the body.
    assert payload["token"]
    assert gql(ME, token=payload["token"])["data"]["me"] == {"username": "alice"}
    # The cookie holds a real, unused refresh token of alice's new session.
    assert session_of(value).user == user
    assert is_unused(value)


def test_cookie_max_age_matches_refresh_expires_in(gql, user, cookie_mode):
    response, payload = sign_in(gql)

    max_age = int(response.cookies[SECURE_NAME]["max-age"])
    assert abs(max_age - (payload["refreshExpiresIn"] - int(time.time()))) <= 2
    # The session ends at its idle expiry first: one day from now.
    assert abs(max_age - settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME) <= 2


def test_register_sets_the_cookie(gql, db, cookie_mode):
    response = gql.post(REGISTER, {"username": "carol", "email": "carol@example.com", "password": PASSWORD})

    payload = response.json()["data"]["register"]
    assert payload["errors"] == []
    assert payload["token"]
    assert payload["refreshToken"] is None
    value = assert_cookie_set(response)
    assert session_of(value).user.username == "carol"
    assert abs(int(response.cookies[SECURE_NAME]["max-age"]) - (payload["refreshExpiresIn"] - int(time.time()))) <= 2


def test_refused_register_sets_no_cookie(gql, user, cookie_mode):
    # alice@example.com is taken: nothing is written, so nothing may be set.
    response = gql.post(REGISTER, {"username": "other", "email": "alice@example.com", "password": PASSWORD})

    assert response.json()["data"]["register"]["errors"]
    assert_no_cookie(response)


def test_failed_token_auth_sets_no_cookie(gql, user, cookie_mode):
    response = gql.post(TOKEN_AUTH, {"email": "alice@example.com", "password": "wrong password"})

    assert error_codes(response.json()) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert_no_cookie(response)
    assert not Session.objects.filter(user=user).exists()


def test_refresh_by_cookie_max_age_follows_the_absolute_expiry(gql, client, tokens, cookie_mode):
    # given: a session whose absolute end (1 hour) comes before its idle end (1 day)
    session = session_of(tokens.refresh_token)
    Session.objects.filter(pk=session.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    client.cookies[SECURE_NAME] = tokens.refresh_token

    # when
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    # then: the cookie dies with the session, not a day later
    payload = response.json()["data"]["refreshToken"]
    assert_cookie_set(response)
    assert abs(int(response.cookies[SECURE_NAME]["max-age"]) - 3600) <= 2
    assert abs(payload["refreshExpiresIn"] - int(time.time()) - 3600) <= 2


# --- 3. SameSite and path options ------------------------------------------------------------


def test_samesite_strict_when_configured(gql, user, cookie_mode):
    cookie_mode(REFRESH_TOKEN_COOKIE_SAMESITE="Strict")

    response, _ = sign_in(gql)

    assert_cookie_set(response, samesite="Strict")


def test_root_path_gives_the_host_prefix(gql, client, user, cookie_mode):
    cookie_mode(REFRESH_TOKEN_COOKIE_PATH="/")

    response, _ = sign_in(gql)

    value = assert_cookie_set(response, name=HOST_NAME, path="/")
    assert SECURE_NAME not in response.cookies
    # ... and that is the name refresh reads.
    refreshed = gql.post(REFRESH, headers=SAME_ORIGIN)
    assert refreshed.json()["data"]["refreshToken"]["token"]
    assert assert_cookie_set(refreshed, name=HOST_NAME, path="/") != value
    assert not is_unused(value)


@pytest.mark.parametrize(
    ("path", "sent_as"),
    [
        ("/", SECURE_NAME),  # a __Host- deployment ignores a __Secure- cookie
        ("/graphql", HOST_NAME),  # and the reverse
        ("/graphql", "gatehouse_refresh"),  # an unprefixed cookie can be planted by any subdomain or http page
    ],
)
def test_only_the_configured_cookie_name_is_read(gql, client, tokens, cookie_mode, path, sent_as):
    cookie_mode(REFRESH_TOKEN_COOKIE_PATH=path)
    client.cookies[sent_as] = tokens.refresh_token

    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert is_unused(tokens.refresh_token)
    assert_no_cookie(response)


# --- 4. refresh and revoke read the cookie, from an allowed origin ---------------------------


def test_refresh_by_cookie_rotates_and_sets_a_new_cookie(gql, client, user, cookie_mode):
    # given: signed in, the client holds the cookie it was given
    signed_in, _ = sign_in(gql)
    first = signed_in.cookies[SECURE_NAME].value
    assert client.cookies[SECURE_NAME].value == first
    session = session_of(first)

    # when
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    # then: a new access token in the body, a new refresh token in the cookie only
    payload = response.json()["data"]["refreshToken"]
    assert payload["refreshToken"] is None
    assert payload["payload"]["sid"] == session.pk.hex
    assert gql(ME, token=payload["token"])["data"]["me"] == {"username": "alice"}
    second = assert_cookie_set(response)
    assert second != first
    assert not is_unused(first)
    assert is_unused(second)
    assert session_of(second).pk == session.pk
    assert RefreshToken.objects.filter(session=session).count() == 2

    # and the new cookie refreshes again (the client stored it)
    again = gql.post(REFRESH, headers=SAME_ORIGIN)
    third = assert_cookie_set(again)
    assert third not in (first, second)
    assert not is_unused(second)


def test_refresh_by_cookie_from_a_cors_allowed_origin(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token

    with override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"]):
        response = gql.post(REFRESH, headers={"HTTP_ORIGIN": "https://app.example"})

    assert response.json()["data"]["refreshToken"]["token"]
    assert_cookie_set(response)
    assert not is_unused(tokens.refresh_token)


def test_cross_origin_cookie_refresh_is_readable_by_the_browser(gql, client, tokens, cookie_mode):
    """A browser only sends the cookie cross-origin (fetch credentials: "include"), and only
    lets the page read the answer and store the new cookie, when the response carries
    Access-Control-Allow-Credentials: true. Without it, cookie mode for CORS_ALLOWED_ORIGINS
    cannot work at all."""
    client.cookies[SECURE_NAME] = tokens.refresh_token

    with override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"]):
        preflight = client.options(
            "/graphql",
            HTTP_ORIGIN="https://app.example",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        )
        response = gql.post(REFRESH, headers={"HTTP_ORIGIN": "https://app.example"})

    assert preflight["Access-Control-Allow-Origin"] == "https://app.example"
    assert response["Access-Control-Allow-Origin"] == "https://app.example"
    assert preflight.get("Access-Control-Allow-Credentials") == "true"
    assert response.get("Access-Control-Allow-Credentials") == "true"


def test_without_cookie_mode_cors_never_allows_credentials(client):
    # No cookie authenticates anything then, so no origin is invited to send one.
    with override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"]):
        preflight = client.options(
            "/graphql",
            HTTP_ORIGIN="https://app.example",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        )
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Credentials" not in preflight


def test_an_expired_sessions_cookie_is_deleted_on_refresh(gql, client, tokens, cookie_mode):
    # given: the session ran out
    client.cookies[SECURE_NAME] = tokens.refresh_token
    Session.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    # when
    response = gql.post(REFRESH, headers=SAME_ORIGIN)
    # then: refused, and the browser stops sending a cookie that cannot work
    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_EXPIRED.value]
    assert_cookie_deleted(response)


def test_cookie_replayed_within_the_grace_window_is_refused_harmlessly(gql, client, tokens, cookie_mode):
    # given: the cookie was just rotated (a second tab still holds the old value)
    client.cookies[SECURE_NAME] = tokens.refresh_token
    assert gql.post(REFRESH, headers=SAME_ORIGIN).status_code == 200
    client.cookies[SECURE_NAME] = tokens.refresh_token

    # when
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    # then
    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_INVALID.value]
    assert session_of(tokens.refresh_token).revoked_at is None
    assert_no_cookie(response)


def test_old_cookie_replayed_after_the_grace_window_kills_the_session(gql, client, tokens, cookie_mode):
    # given: the cookie was rotated, longer ago than the grace window
    client.cookies[SECURE_NAME] = tokens.refresh_token
    rotated = gql.post(REFRESH, headers=SAME_ORIGIN)
    new_value = rotated.cookies[SECURE_NAME].value
    new_access = rotated.json()["data"]["refreshToken"]["token"]
    grace = settings.REFRESH_TOKEN_REUSE_GRACE
    RefreshToken.objects.filter(token_hash=refresh_token_digest(tokens.refresh_token)).update(
        used_at=timezone.now() - timedelta(seconds=grace + 1)
    )

    # when: the stolen old value comes back
    client.cookies[SECURE_NAME] = tokens.refresh_token
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    # then: the whole session is over, for the thief and the owner alike
    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_REVOKED.value]
    session = session_of(tokens.refresh_token)
    assert session.revoked_at is not None
    assert session.revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    # a cookie that can never work again is deleted
    assert_cookie_deleted(response)
    assert error_codes(gql(ME, token=new_access)) == [AuthErrorCode.TOKEN_REVOKED.value]
    client.cookies[SECURE_NAME] = new_value
    assert error_codes(gql(REFRESH, headers=SAME_ORIGIN)) == [AuthErrorCode.TOKEN_REVOKED.value]


def test_revoke_by_cookie_ends_the_session_and_deletes_the_cookie(gql, client, user, cookie_mode):
    _, signed_in = sign_in(gql)
    value = client.cookies[SECURE_NAME].value

    response = gql.post(REVOKE, headers=SAME_ORIGIN)

    assert response.json()["data"]["revokeToken"]["revoked"] >= int(time.time()) - 2
    session = session_of(value)
    assert session.revoked_at is not None
    assert session.revoked_reason == SessionEndReason.LOGOUT
    assert_cookie_deleted(response)
    assert error_codes(gql(ME, token=signed_in["token"])) == [AuthErrorCode.TOKEN_REVOKED.value]


def test_revoke_by_cookie_with_root_path_deletes_the_host_cookie(gql, client, user, cookie_mode):
    cookie_mode(REFRESH_TOKEN_COOKIE_PATH="/")
    sign_in(gql)
    value = client.cookies[HOST_NAME].value

    response = gql.post(REVOKE, headers=SAME_ORIGIN)

    assert session_of(value).revoked_at is not None
    assert_cookie_deleted(response, name=HOST_NAME, path="/")


def test_revoke_by_cookie_of_an_unknown_token_still_deletes_the_cookie(gql, client, user, cookie_mode):
    # A cookie that no longer matches anything is useless: the client should lose it.
    client.cookies[SECURE_NAME] = "x" * 43

    response = gql.post(REVOKE, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_INVALID.value]
    assert_cookie_deleted(response)


# --- 5. CSRF refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        None,  # no Origin header at all
        "null",  # sandboxed iframe, data: URL, some redirects
        "https://evil.example",
        "https://localhost",  # same host, other scheme
        "http://localhost:8000",  # same host, other port
        "http://localhost.evil.example",  # our host as a prefix
        "http://evil.example/http://localhost",
        "http://localhost/",  # not an origin serialisation
        "",
    ],
)
@pytest.mark.parametrize("mutation", [REFRESH, REVOKE])
def test_cookie_from_a_disallowed_origin_is_forbidden(gql, client, tokens, cookie_mode, origin, mutation):
    # given: the victim's browser holds a valid cookie
    client.cookies[SECURE_NAME] = tokens.refresh_token
    session_id = session_of(tokens.refresh_token).pk
    before = session_state(session_id)
    headers = {} if origin is None else {"HTTP_ORIGIN": origin}

    # when: a request the victim's page did not make uses it
    response = gql.post(mutation, headers=headers)

    # then: refused before the token is touched
    body = response.json()
    assert error_codes(body) == [AuthErrorCode.FORBIDDEN.value]
    assert list(body["data"].values()) == [None]
    assert session_state(session_id) == before
    assert is_unused(tokens.refresh_token)
    assert_no_cookie(response)


def test_cors_allow_list_is_exact(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    with override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"]):
        for origin in ("https://evil.app.example", "http://app.example", "https://app.example:444"):
            response = gql.post(REFRESH, headers={"HTTP_ORIGIN": origin})
            assert error_codes(response.json()) == [AuthErrorCode.FORBIDDEN.value], origin
            assert_no_cookie(response)

    assert session_state(session_of(tokens.refresh_token).pk) == before


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", "query=mutation+%7B+refreshToken+%7B+token+%7D+%7D"),
        ("text/plain", json.dumps({"query": "mutation { refreshToken { token } }"})),
        ("text/plain;charset=UTF-8", json.dumps({"query": "mutation { revokeToken { revoked } }"})),
    ],
)
@pytest.mark.parametrize("origin", [SELF_ORIGIN, "https://evil.example"])
def test_simple_posts_carrying_the_cookie_are_refused_before_anything_runs(
    client, tokens, cookie_mode, content_type, data, origin
):
    # A page on any site can make a browser send these without a preflight.
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    response = client.post("/graphql", data, content_type=content_type, HTTP_ORIGIN=origin)

    assert response.status_code == 415
    assert error_codes(response.json()) == [RequestErrorCode.UNSUPPORTED_MEDIA_TYPE.value]
    assert "data" not in response.json()
    assert session_state(session_of(tokens.refresh_token).pk) == before
    assert_no_cookie(response)


def test_multipart_post_carrying_the_cookie_is_refused(client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    # The test client encodes a dict as multipart/form-data.
    response = client.post(
        "/graphql", {"query": "mutation { revokeToken { revoked } }"}, HTTP_ORIGIN="https://evil.example"
    )

    assert response.status_code == 415
    assert error_codes(response.json()) == [RequestErrorCode.UNSUPPORTED_MEDIA_TYPE.value]
    assert session_state(session_of(tokens.refresh_token).pk) == before
    assert_no_cookie(response)


@pytest.mark.parametrize(
    "preflight", [{}, {"HTTP_APOLLO_REQUIRE_PREFLIGHT": "true"}, {"HTTP_X_APOLLO_OPERATION_NAME": "Refresh"}]
)
@pytest.mark.parametrize("mutation", ["mutation { refreshToken { token } }", "mutation { revokeToken { revoked } }"])
def test_get_mutation_carrying_the_cookie_is_405(client, tokens, cookie_mode, preflight, mutation):
    # An <img src> or a top-level navigation sends a GET with the cookie (SameSite=Lax allows the latter).
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    response = client.get("/graphql", {"query": mutation}, HTTP_ORIGIN=SELF_ORIGIN, **preflight)

    assert response.status_code == 405
    assert error_codes(response.json()) == [RequestErrorCode.METHOD_NOT_ALLOWED.value]
    assert session_state(session_of(tokens.refresh_token).pk) == before
    assert_no_cookie(response)


# --- 6. the argument wins --------------------------------------------------------------------


def test_argument_wins_over_the_cookie_without_an_origin(gql, client, make_user, user, cookie_mode):
    # given: the cookie holds alice's token, the argument bob's; no Origin header
    alice = session_open(user=user)
    bob = session_open(user=make_user(username="bob"))
    client.cookies[SECURE_NAME] = alice.refresh_token

    # when
    response = gql.post(REFRESH, {"refreshToken": bob.refresh_token})

    # then: bob's session rotated, alice's cookie token untouched
    payload = response.json()["data"]["refreshToken"]
    assert payload["payload"]["sid"] == session_of(bob.refresh_token).pk.hex
    assert gql(ME, token=payload["token"])["data"]["me"] == {"username": "bob"}
    assert not is_unused(bob.refresh_token)
    assert is_unused(alice.refresh_token)
    # Cookie mode still delivers the successor as the cookie, never in the body.
    assert payload["refreshToken"] is None
    assert session_of(assert_cookie_set(response)).user.username == "bob"


def test_wrong_argument_does_not_fall_back_to_the_cookie(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token

    response = gql.post(REFRESH, {"refreshToken": ""}, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_INVALID.value]
    assert is_unused(tokens.refresh_token)
    assert_no_cookie(response)


def test_revoke_with_argument_ignores_the_cookie_and_keeps_it(gql, client, make_user, user, cookie_mode):
    alice = session_open(user=user)
    bob = session_open(user=make_user(username="bob"))
    client.cookies[SECURE_NAME] = alice.refresh_token

    response = gql.post(REVOKE, {"refreshToken": bob.refresh_token})

    assert response.json()["data"]["revokeToken"]["revoked"]
    assert session_of(bob.refresh_token).revoked_at is not None
    assert session_of(alice.refresh_token).revoked_at is None
    # The cookie belongs to another session: signing out bob must not delete it.
    assert_no_cookie(response)


# --- 7. logout paths and deleteRefreshTokenCookie --------------------------------------------


def test_logout_all_in_cookie_mode_deletes_the_cookie(gql, client, user, cookie_mode):
    _, signed_in = sign_in(gql)
    other = session_open(user=user)

    response = gql.post(LOGOUT_ALL, token=signed_in["token"])

    assert response.json()["data"]["logoutAll"] == {"success": True, "revokedSessions": 2}
    assert not Session.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert session_of(other.refresh_token).revoked_reason == SessionEndReason.LOGOUT_ALL
    assert_cookie_deleted(response)


def test_logout_all_with_cookie_mode_off_touches_no_cookie(gql, user, token):
    response = gql.post(LOGOUT_ALL, token=token)

    assert response.json()["data"]["logoutAll"]["success"] is True
    assert_no_cookie(response)


def test_logout_all_needs_the_bearer_token_not_the_cookie(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token

    response = gql.post(LOGOUT_ALL, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert session_of(tokens.refresh_token).revoked_at is None
    assert_no_cookie(response)


def test_delete_cookie_reports_deleted_and_keeps_the_session(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token
    before = session_state(session_of(tokens.refresh_token).pk)

    response = gql.post(DELETE_COOKIE, headers=SAME_ORIGIN)

    assert response.json()["data"]["deleteRefreshTokenCookie"] == {"deleted": True}
    assert_cookie_deleted(response)
    # Deleting the cookie is not a logout: the session and its token are as they were.
    assert session_state(session_of(tokens.refresh_token).pk) == before
    assert gql(ME, token=tokens.token)["data"]["me"] == {"username": "alice"}


def test_delete_cookie_without_the_cookie_reports_not_deleted(gql, user, cookie_mode):
    response = gql.post(DELETE_COOKIE, headers=SAME_ORIGIN)

    assert response.json()["data"]["deleteRefreshTokenCookie"] == {"deleted": False}
    assert_cookie_deleted(response)


def test_after_delete_cookie_refresh_by_cookie_is_unauthenticated(gql, client, user, cookie_mode):
    sign_in(gql)
    value = client.cookies[SECURE_NAME].value
    gql.post(DELETE_COOKIE, headers=SAME_ORIGIN)

    # The client applied the deletion (an empty value).
    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert is_unused(value)


# --- 8. the cookie authenticates nothing else ------------------------------------------------


def test_refresh_cookie_does_not_authenticate_me(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.refresh_token

    body = gql(ME, headers=SAME_ORIGIN)

    assert body == {"data": {"me": None}}
    assert is_unused(tokens.refresh_token)


@pytest.mark.parametrize("name", [SECURE_NAME, HOST_NAME, "JWT", "token", "sessionid"])
def test_access_token_in_any_cookie_authenticates_nothing(gql, client, tokens, cookie_mode, name):
    client.cookies[name] = tokens.token

    assert gql(ME, headers=SAME_ORIGIN) == {"data": {"me": None}}
    assert error_codes(gql(LOGOUT_ALL, headers=SAME_ORIGIN)) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert session_of(tokens.refresh_token).revoked_at is None


def test_access_token_in_the_refresh_cookie_is_not_a_refresh_token(gql, client, tokens, cookie_mode):
    client.cookies[SECURE_NAME] = tokens.token

    response = gql.post(REFRESH, headers=SAME_ORIGIN)

    assert error_codes(response.json()) == [AuthErrorCode.TOKEN_INVALID.value]
    assert is_unused(tokens.refresh_token)
    # a cookie that can never work again is deleted
    assert_cookie_deleted(response)


# --- 9. a Django admin session never authenticates GraphQL -----------------------------------


@pytest.mark.parametrize("mode", [False, True])
def test_force_login_session_does_not_authenticate_graphql(gql, client, tokens, user, mode):
    client.force_login(user)
    assert settings.SESSION_COOKIE_NAME in client.cookies

    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE": mode}):
        assert gql(ME, headers=SAME_ORIGIN) == {"data": {"me": None}}
        assert error_codes(gql(LOGOUT_ALL, headers=SAME_ORIGIN)) == [AuthErrorCode.UNAUTHENTICATED.value]
        assert error_codes(gql(REFRESH, headers=SAME_ORIGIN)) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert session_of(tokens.refresh_token).revoked_at is None


def test_admin_login_session_does_not_authenticate_graphql(gql, client, make_user):
    # given: a superuser signed in to the admin through its login form
    staff = make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)
    other = session_open(user=staff)
    login = client.post("/admin/login/?next=/admin/", {"username": "root@example.com", "password": PASSWORD})
    assert login.status_code == 302, login.content[:300]
    assert client.get("/admin/").status_code == 200

    # then: GraphQL sees an anonymous request
    assert gql(ME, headers=SAME_ORIGIN) == {"data": {"me": None}}
    assert error_codes(gql(LOGOUT_ALL, headers=SAME_ORIGIN)) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert session_of(other.refresh_token).revoked_at is None


def test_bearer_token_beats_an_admin_session(gql, client, make_user, user, tokens):
    # An admin's session cookie must not turn alice's request into the admin's.
    staff = make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)

    assert gql(ME, token=tokens.token)["data"]["me"] == {"username": "alice"}


# --- 10. the path check ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api", "graph", "graphql", "/graphq", "/graphql/", "/GRAPHQL", "/graphqlx", ""])
def test_cookie_path_that_misses_the_endpoint_is_e004(path):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE_PATH": path}):
        issues = check_refresh_cookie_path(None)

    assert [issue.id for issue in issues] == ["gatehouse.E004"]
    assert issues[0].is_serious()


@pytest.mark.parametrize("path", ["/", "/graphql"])
def test_cookie_path_that_covers_the_endpoint_passes(path):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE_PATH": path}):
        assert check_refresh_cookie_path(None) == []


def test_e004_is_a_registered_security_check():
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE_PATH": "/api"}):
        ids = [issue.id for issue in run_checks(tags=["security"])]

    assert "gatehouse.E004" in ids
