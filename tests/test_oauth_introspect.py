"""POST /oauth/introspect (RFC 7662): user and service tokens, over HTTP through Django's whole stack."""

import secrets
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ServiceClient, SessionEndReason
from accounts.services import (
    client_disable,
    client_secret_rotate,
    refresh_token_revoke,
    session_open,
    session_revoke_all,
    user_deactivate,
)
from accounts.tokens import jwt_encode
from tests.oauth import (
    INTROSPECT_URL,
    TOKEN_URL,
    assert_oauth_error,
    basic,
    fixed_settings,
    make_client,
    post_form,
    state,
)

INACTIVE = {"active": False}


@pytest.fixture(autouse=True)
def _fixed_settings(settings):
    fixed_settings(settings)


@pytest.fixture
def caller(db):
    """A resource server allowed to introspect, and its Authorization header."""
    sc, secret = make_client(name="resource server", scopes="tokens:introspect")
    return sc, basic(sc.client_id, secret)


@pytest.fixture
def service(db):
    """Another client, with its secret."""
    return make_client(name="worker", scopes="users:read users:write")


def introspect(client, caller, token, **data):
    return post_form(client, INTROSPECT_URL, {"token": token, **data}, authorization=caller[1])


def service_token(client, service, scope=None) -> str:
    sc, secret = service
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    response = post_form(client, TOKEN_URL, data, authorization=basic(sc.client_id, secret))
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def test_a_live_user_token_is_active_with_its_claims(client, caller, user):
    # given
    tokens = session_open(user=user)
    # when
    response = introspect(client, caller, tokens.token)
    # then
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    payload = tokens.payload
    assert body == {
        "active": True,
        "sub": str(user.pk),
        "exp": payload["exp"],
        "iat": payload["iat"],
        "iss": "gatehouse",
        "aud": "gatehouse",
        "jti": payload["jti"],
        "token_type": "access",
        "sid": payload["sid"],
        "username": "alice",
    }


def test_a_user_token_is_inactive_after_logout(client, caller, user):
    tokens = session_open(user=user)
    assert introspect(client, caller, tokens.token).json()["active"] is True
    # when
    refresh_token_revoke(refresh_token=tokens.refresh_token)
    # then
    assert introspect(client, caller, tokens.token).json() == INACTIVE


def test_a_user_token_is_inactive_after_its_sessions_are_ended(client, caller, user):
    tokens = session_open(user=user)
    assert introspect(client, caller, tokens.token).json()["active"] is True
    session_revoke_all(user=user, reason=SessionEndReason.LOGOUT_ALL)
    assert introspect(client, caller, tokens.token).json() == INACTIVE


def test_a_user_token_is_inactive_after_the_account_is_deactivated(client, caller, user):
    tokens = session_open(user=user)
    assert introspect(client, caller, tokens.token).json()["active"] is True
    user_deactivate(user=user)
    assert introspect(client, caller, tokens.token).json() == INACTIVE


def test_a_user_token_is_inactive_after_the_account_is_deleted(client, caller, user):
    tokens = session_open(user=user)
    user.delete()
    assert introspect(client, caller, tokens.token).json() == INACTIVE


def test_a_live_service_token_is_active_with_its_scope_and_client(client, caller, service):
    # given
    token = service_token(client, service, scope="users:read")
    # when
    body = introspect(client, caller, token).json()
    # then
    sc = service[0]
    assert body.pop("active") is True
    assert body["sub"] == body["client_id"] == sc.client_id
    assert body["scope"] == "users:read"
    assert body["token_type"] == "service"
    assert (body["iss"], body["aud"]) == ("gatehouse", "gatehouse")
    assert body["exp"] - body["iat"] == 600
    assert set(body) == {"sub", "client_id", "scope", "token_type", "iss", "aud", "exp", "iat", "jti"}


def test_a_service_token_is_inactive_once_its_client_is_disabled(client, caller, service):
    token = service_token(client, service)
    assert introspect(client, caller, token).json()["active"] is True
    client_disable(client=service[0], via="tests")
    assert introspect(client, caller, token).json() == INACTIVE


def test_a_service_token_is_inactive_once_its_clients_secret_is_rotated(client, caller, service):
    # given: a token issued before the rotation (a second earlier: `iat` counts whole seconds)
    sc = service[0]
    token = service_token(client, service)
    assert introspect(client, caller, token).json()["active"] is True
    new_secret = client_secret_rotate(client=sc, via="tests")
    ServiceClient.objects.filter(pk=sc.pk).update(secret_changed_at=timezone.now() + timedelta(seconds=1))
    # then
    assert introspect(client, caller, token).json() == INACTIVE
    # and a token got with the new secret after the rotation is live
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda real=time.time: real() + 2)
        fresh = service_token(client, (sc, new_secret))
        assert introspect(client, caller, fresh).json()["active"] is True


def test_a_service_token_holding_a_scope_its_client_lost_is_inactive(client, caller, service):
    token = service_token(client, service)
    ServiceClient.objects.filter(pk=service[0].pk).update(scopes="users:read")
    assert introspect(client, caller, token).json() == INACTIVE


def _signed(**claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "gatehouse",
        "aud": "gatehouse",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **claims,
    }
    return jwt_encode({key: value for key, value in payload.items() if value is not None})


def test_expired_forged_and_malformed_tokens_are_exactly_inactive(client, caller, service, user):
    sc = service[0]
    now = int(time.time())
    session = session_open(user=user)
    tokens = [
        "garbage",
        "a.b.c",
        "x" * 5000,
        session.refresh_token,
        session.token[:-2] + ("AA" if not session.token.endswith("AA") else "BB"),
        # expired
        _signed(
            sub=sc.client_id,
            client_id=sc.client_id,
            scope="users:read",
            token_type="service",
            iat=now - 700,
            exp=now - 100,
        ),
        # a service token of a client that does not exist
        _signed(sub="svc_" + "Z" * 24, client_id="svc_" + "Z" * 24, scope="users:read", token_type="service"),
        # sub and client_id disagree
        _signed(sub=sc.client_id, client_id="svc_" + "Z" * 24, scope="users:read", token_type="service"),
        # a scope nobody has
        _signed(sub=sc.client_id, client_id=sc.client_id, scope="admin", token_type="service"),
        # a service token that names a session
        _signed(sub=sc.client_id, client_id=sc.client_id, scope="users:read", token_type="service", sid="0" * 32),
        # a token type we never issue
        _signed(sub=sc.client_id, client_id=sc.client_id, scope="users:read", token_type="refresh"),
        # a user token without its session
        _signed(sub=str(user.pk), token_type="access"),
    ]
    for token in tokens:
        response = introspect(client, caller, token)
        assert response.status_code == 200
        assert response.json() == INACTIVE, token[:40]


def test_the_caller_needs_client_authentication(client, caller, user):
    token = session_open(user=user).token
    before = state()
    response = post_form(client, INTROSPECT_URL, {"token": token})
    assert_oauth_error(response, 401, "invalid_client")
    wrong = post_form(client, INTROSPECT_URL, {"token": token}, authorization=basic(caller[0].client_id, "wrong"))
    assert_oauth_error(wrong, 401, "invalid_client")
    assert state() == before


def test_a_caller_without_the_introspect_scope_is_forbidden(client, service, user):
    token = session_open(user=user).token
    sc, secret = service
    before = state()
    response = post_form(client, INTROSPECT_URL, {"token": token}, authorization=basic(sc.client_id, secret))
    body = assert_oauth_error(response, 403, "insufficient_scope")
    assert "tokens:introspect" in body["error_description"]
    assert "active" not in body
    assert state() == before


def test_a_disabled_caller_is_refused(client, caller, user):
    client_disable(client=caller[0], via="tests")
    response = introspect(client, caller, session_open(user=user).token)
    assert_oauth_error(response, 401, "invalid_client")


def test_the_caller_may_authenticate_in_the_body_and_its_last_use_is_recorded(client, db, user):
    sc, secret = make_client(scopes="tokens:introspect")
    token = session_open(user=user).token
    response = post_form(client, INTROSPECT_URL, {"token": token, "client_id": sc.client_id, "client_secret": secret})
    assert response.json()["active"] is True
    sc.refresh_from_db()
    assert sc.last_used_at is not None


def test_a_token_type_hint_is_accepted_and_ignored(client, caller, user):
    token = session_open(user=user).token
    for hint in ("access_token", "refresh_token", "whatever"):
        assert introspect(client, caller, token, token_type_hint=hint).json()["active"] is True


def test_each_malformed_request_is_invalid_request_and_changes_nothing(client, caller, user):
    token = session_open(user=user).token
    form = "application/x-www-form-urlencoded"
    auth = {"HTTP_AUTHORIZATION": caller[1]}
    cases = [
        ("empty body", "", form),
        ("no token", "token_type_hint=access_token", form),
        ("empty token", "token=", form),
        ("repeated token", f"token={token}&token={token}", form),
        ("JSON", f'{{"token": "{token}"}}', "application/json"),
        ("text", f"token={token}", "text/plain"),
        ("bad escape", "token=%ff", form),
        ("huge", "token=" + "x" * 20000, form),
    ]
    for name, body, content_type in cases:
        before = state()
        response = client.post(INTROSPECT_URL, body, content_type=content_type, **auth)
        assert_oauth_error(response, 400, "invalid_request")
        assert state() == before, name


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic %%%", "Basic " + "YWJj", "Bearer abc", "Basic " + "w6k6w6k=", "Basíc abc"],
)
def test_odd_authorization_headers_are_invalid_client(client, caller, user, header):
    token = session_open(user=user).token
    before = state()
    response = post_form(client, INTROSPECT_URL, {"token": token}, authorization=header)
    assert_oauth_error(response, 401, "invalid_client")
    assert state() == before


def test_a_user_token_cannot_authenticate_the_caller(client, caller, user):
    # A Bearer user token is not client authentication, even for a staff member.
    user.is_staff = True
    user.save()
    token = session_open(user=user).token
    response = post_form(client, INTROSPECT_URL, {"token": token}, authorization=f"Bearer {token}")
    assert_oauth_error(response, 401, "invalid_client")


def test_only_post_is_allowed(client, db):
    response = client.get(INTROSPECT_URL)
    assert_oauth_error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


def test_introspection_past_the_per_client_rate_is_slow_down(client, caller, user, settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "OAUTH_INTROSPECT_RATE_PER_CLIENT": (3, 60)}
    token = session_open(user=user).token
    answers = [introspect(client, caller, token).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = introspect(client, caller, token)
    assert_oauth_error(refused, 429, "slow_down")
    assert int(refused["Retry-After"]) > 0


def test_introspection_past_the_per_address_rate_is_slow_down(client, caller, user, settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "OAUTH_INTROSPECT_RATE_PER_ADDRESS": (2, 60)}
    token = session_open(user=user).token
    answers = [introspect(client, caller, token).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("", "application/x-www-form-urlencoded"),
        ('{"token": "x"}', "application/json"),
        ("token=%ff", "application/x-www-form-urlencoded"),
        ("token_type_hint=access_token", "application/x-www-form-urlencoded"),
    ],
    ids=["empty", "JSON", "malformed", "no token"],
)
def test_without_client_authentication_the_answer_is_401_whatever_the_body(client, db, body, content_type):
    # RFC 7662 §2.1: the caller authenticates first; what else is wrong comes after.
    before = state()
    response = client.post(INTROSPECT_URL, body, content_type=content_type)
    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert state() == before
