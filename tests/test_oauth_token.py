"""POST /oauth/token: the client credentials grant (RFC 6749 §4.4), over HTTP through Django's whole stack."""

import base64
import hashlib
import hmac
import time
from unittest import mock

import pytest
from django.test import Client, override_settings

from accounts.exceptions import TokenInvalid
from accounts.models import AuthEvent, ServiceClient
from accounts.services import client_disable, client_secret_rotate, service_token_check
from accounts.services import clients as clients_service
from accounts.tokens import jwt_decode, jwt_verify
from config.https import is_api_path
from tests.oauth import (
    ALL_SCOPES,
    INTROSPECT_URL,
    TOKEN_URL,
    assert_oauth_error,
    basic,
    fixed_settings,
    make_client,
    post_form,
    state,
)

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture(autouse=True)
def _fixed_settings(settings):
    fixed_settings(settings)


@pytest.fixture
def service(db):
    return make_client()


def test_basic_authentication_gets_a_service_token_with_rfc_9068_claims(client, service, settings):
    # given
    sc, secret = service
    events = AuthEvent.objects.count()
    # when
    response = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret))
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.SERVICE_TOKEN_LIFETIME == 600
    assert body["scope"] == ALL_SCOPES
    assert "no-store" in response["Cache-Control"]
    assert response["Pragma"] == "no-cache"
    claims = jwt_verify(body["access_token"], token_type="service", max_lifetime=600)
    assert set(claims) == {
        "iss",
        "aud",
        "exp",
        "iat",
        "jti",
        "sub",
        "client_id",
        "scope",
        "token_type",
        "secret_version",
    }
    assert claims["secret_version"] == sc.secret_version
    assert claims["sub"] == claims["client_id"] == sc.client_id
    assert (claims["iss"], claims["aud"]) == ("gatehouse", "gatehouse")
    assert claims["scope"] == ALL_SCOPES
    assert claims["token_type"] == "service"
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 5
    sc.refresh_from_db()
    assert sc.last_used_at is not None
    # Issuing a token is not an audit event (its client's last use is recorded instead).
    assert AuthEvent.objects.count() == events


def test_body_authentication_gets_a_token(client, service):
    sc, secret = service
    response = post_form(client, TOKEN_URL, {**GRANT, "client_id": sc.client_id, "client_secret": secret})
    assert response.status_code == 200, response.content
    assert service_token_check(response.json()["access_token"])[0] == sc


def test_basic_with_the_same_client_id_in_the_body_is_one_method(client, service):
    # Some libraries repeat the client_id in the body next to HTTP Basic; only a secret there is a second method.
    sc, secret = service
    data = {**GRANT, "client_id": sc.client_id}
    response = post_form(client, TOKEN_URL, data, authorization=basic(sc.client_id, secret))
    assert response.status_code == 200, response.content


def test_the_token_endpoint_needs_no_cookie_nor_csrf_token_and_sets_none(service):
    # given: a client that enforces CSRF as a browser's would
    sc, secret = service
    strict = Client(enforce_csrf_checks=True, HTTP_HOST="localhost")
    # when
    response = post_form(strict, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret))
    # then
    assert response.status_code == 200
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


@pytest.mark.parametrize("path", [TOKEN_URL, INTROSPECT_URL])
def test_the_oauth_endpoints_are_api_paths_refused_over_plain_http(service, path, settings):
    # given: production's HTTPS requirement, TLS ended at a proxy
    sc, secret = service
    assert is_api_path(path, settings.GATEHOUSE["API_PATH_PREFIXES"])
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        behind_proxy = Client(HTTP_HOST="localhost")
        before = state()
        # when
        plain = post_form(behind_proxy, path, GRANT, authorization=basic(sc.client_id, secret))
        secure = post_form(
            behind_proxy, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret), HTTP_X_FORWARDED_PROTO="https"
        )
    # then: refused, not redirected (the secret would be sent again), and nothing happened
    assert plain.status_code == 403
    assert "Location" not in plain.headers
    assert plain.json()["errors"][0]["extensions"]["code"] == "HTTPS_REQUIRED"
    assert secure.status_code == 200
    assert state()[1] == before[1]


@pytest.mark.parametrize("secret", ["s3cr+t/é:x y", "a%b&c=d", "plain-secret"])
def test_basic_credentials_are_form_urldecoded(client, db, secret):
    # given: a client whose secret holds characters that form-urlencoding changes
    sc, _ = make_client()
    ServiceClient.objects.filter(pk=sc.pk).update(secret_digest=hashlib.sha256(secret.encode()).hexdigest())
    # when
    response = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret))
    # then
    assert response.status_code == 200, response.content


def test_basic_credentials_sent_without_form_urlencoding_are_refused_when_it_matters(client, db):
    # given: "+" is a space in form-urlencoding, so a raw "+" is not the secret
    sc, _ = make_client()
    ServiceClient.objects.filter(pk=sc.pk).update(secret_digest=hashlib.sha256(b"a+b").hexdigest())
    # when
    response = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, "a+b", encode=False))
    # then
    assert_oauth_error(response, 401, "invalid_client")


def test_an_unnecessarily_percent_encoded_client_id_is_decoded(client, service):
    sc, secret = service
    encoded_id = "".join(f"%{byte:02X}" for byte in sc.client_id.encode())
    response = post_form(client, TOKEN_URL, GRANT, authorization=basic(encoded_id, secret, encode=False))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("users:read", "users:read"),
        ("tokens:introspect users:read", "users:read tokens:introspect"),
        ("users:read users:read", "users:read"),
        ("", ALL_SCOPES),
    ],
)
def test_the_scope_is_the_requested_subset_or_all_of_the_clients(client, service, requested, granted):
    sc, secret = service
    data = {**GRANT, "scope": requested}
    response = post_form(client, TOKEN_URL, data, authorization=basic(sc.client_id, secret))
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == granted
    assert jwt_verify(response.json()["access_token"], token_type="service", max_lifetime=600)["scope"] == granted


@pytest.mark.parametrize(
    "requested",
    [
        "users:write",
        "users:read users:write",
        "admin",
        "USERS:READ",
        "users:read*",
        # RFC 6749 §3.3: scope tokens are separated by single spaces.
        "users:read  tokens:introspect",
        "users:read\ttokens:introspect",
        "users:read\ntokens:introspect",
        " users:read",
    ],
)
def test_a_scope_the_client_does_not_hold_is_invalid_scope(client, db, requested):
    # given
    sc, secret = make_client(scopes="users:read tokens:introspect")
    before = state()
    # when
    response = post_form(client, TOKEN_URL, {**GRANT, "scope": requested}, authorization=basic(sc.client_id, secret))
    # then
    body = assert_oauth_error(response, 400, "invalid_scope")
    assert requested not in body["error_description"]
    assert state() == before


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"])
def test_other_grant_types_are_unsupported(client, service, grant_type):
    sc, secret = service
    before = state()
    response = post_form(client, TOKEN_URL, {"grant_type": grant_type}, authorization=basic(sc.client_id, secret))
    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert state() == before


def _bad_requests(client_id: str, secret: str):
    """(name, body, content type, extra request arguments) of each malformed request."""
    auth = {"HTTP_AUTHORIZATION": basic(client_id, secret)}
    form = "application/x-www-form-urlencoded"
    return [
        ("empty body", "", form, auth),
        ("missing grant_type with scope", "scope=users%3Aread", form, auth),
        ("empty grant_type", "grant_type=", form, auth),
        ("repeated grant_type", "grant_type=client_credentials&grant_type=client_credentials", form, auth),
        ("repeated empty grant_type", "grant_type=&grant_type=client_credentials", form, auth),
        ("repeated scope", "grant_type=client_credentials&scope=users%3Aread&scope=users%3Aread", form, auth),
        (
            "repeated client_id",
            f"grant_type=client_credentials&client_id={client_id}&client_id={client_id}&client_secret={secret}",
            form,
            {},
        ),
        ("JSON body", '{"grant_type": "client_credentials"}', "application/json", auth),
        ("plain text", "grant_type=client_credentials", "text/plain", auth),
        ("no content type", "grant_type=client_credentials", "", auth),
        ("multipart", "--x\r\n\r\n--x--", "multipart/form-data; boundary=x", auth),
        ("another charset", "grant_type=client_credentials", f"{form}; charset=iso-8859-1", auth),
        ("undecodable escape", "grant_type=client_credentials&scope=%ff", form, auth),
        ("raw non-ASCII", "grant_type=client_credentials&scope=é".encode(), form, auth),
        ("field without a value", "grant_type=client_credentials&scope", form, auth),
        ("empty field", "grant_type=client_credentials&&scope=users%3Aread", form, auth),
        ("too many fields", "&".join(f"f{n}=1" for n in range(40)), form, auth),
        (
            "credentials in the body and in Basic",
            f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}",
            form,
            auth,
        ),
        ("Basic and a different body client_id", "grant_type=client_credentials&client_id=svc_other", form, auth),
        ("oversized body", "grant_type=client_credentials&scope=" + "x" * 9000, form, auth),
    ]


def test_each_malformed_request_is_invalid_request_and_changes_nothing(client, service):
    sc, secret = service
    for name, body, content_type, extra in _bad_requests(sc.client_id, secret):
        # given
        before = state()
        # when
        response = client.post(TOKEN_URL, body, content_type=content_type, **extra)
        # then
        assert response.status_code == 400, name
        assert_oauth_error(response, 400, "invalid_request")
        assert state() == before, name


def test_parameters_in_the_url_are_refused(client, service):
    sc, secret = service
    before = state()
    response = client.post(
        f"{TOKEN_URL}?client_id={sc.client_id}&client_secret={secret}",
        "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
    )
    assert_oauth_error(response, 400, "invalid_request")
    assert state() == before


def test_a_body_over_the_limit_is_refused_unread(client, service):
    sc, secret = service
    response = client.post(
        TOKEN_URL,
        "grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic(sc.client_id, secret),
        CONTENT_LENGTH="1000000",
    )
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "larger" in body["error_description"]


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch", "options"])
def test_only_post_is_allowed(client, db, method):
    response = getattr(client, method)(TOKEN_URL)
    assert_oauth_error(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


def _odd_authorizations(client_id: str, secret: str) -> list[str]:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return [
        "Basic",
        "Basic ",
        "Basic !!!not-base64!!!",
        "Basic " + b64(f"{client_id}:{secret}".encode())[:-2],  # padding cut off
        "Basic " + b64(f"{client_id}{secret}".encode()),  # no colon
        "Basic " + b64(f":{secret}".encode()),  # no client id
        "Basic " + b64(f"{client_id}:".encode()),  # no secret
        "Basic " + b64(b"\xff\xfe:\xff"),  # not UTF-8
        "Basic " + b64(f"{client_id}:%ff".encode()),  # escape of no UTF-8 character
        "Basic " + b64(f"{client_id}:{secret}".encode()) + "é",
        "Basíc " + b64(f"{client_id}:{secret}".encode()),
        "Bearer " + secret,
        "Digest username=x",
        b64(f"{client_id}:{secret}".encode()),
        basic(client_id, secret + "x"),
        basic(client_id[:-1] + ("B" if client_id.endswith("A") else "A"), secret),
        basic("svc_" + "A" * 24, secret),
        basic("x" * 500, secret),
        basic(client_id, "x" * 5000),
        basic("\x00", "\x00"),
    ]


def test_each_odd_authorization_header_is_invalid_client_with_basic_challenge(client, service):
    sc, secret = service
    for header in _odd_authorizations(sc.client_id, secret):
        # given
        before = state()
        # when
        response = post_form(client, TOKEN_URL, GRANT, authorization=header)
        # then
        assert response.status_code == 401, header
        assert_oauth_error(response, 401, "invalid_client")
        assert state() == before, header


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"client_id": "svc_" + "A" * 24},
        {"client_secret": "whatever"},
        {"client_id": "svc_" + "A" * 24, "client_secret": ""},
    ],
)
def test_missing_credentials_are_invalid_client(client, db, data):
    before = state()
    response = post_form(client, TOKEN_URL, {**GRANT, **data})
    assert_oauth_error(response, 401, "invalid_client")
    assert state() == before


@pytest.mark.parametrize("how", ["basic", "post"])
def test_wrong_unknown_and_disabled_clients_get_the_same_answer(client, db, how):
    # given
    known, secret = make_client()
    disabled, disabled_secret = make_client(name="old")
    client_disable(client=disabled, via="tests")
    attempts = [
        (known.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        ("svc_" + "B" * 24, secret),
        (disabled.client_id, disabled_secret),
    ]
    answers = []
    for client_id, attempt in attempts:
        before = state()
        if how == "basic":
            response = post_form(client, TOKEN_URL, GRANT, authorization=basic(client_id, attempt))
        else:
            response = post_form(client, TOKEN_URL, {**GRANT, "client_id": client_id, "client_secret": attempt})
        answers.append(assert_oauth_error(response, 401, "invalid_client"))
        assert state() == before
    # then: one answer for all three
    assert answers[0] == answers[1] == answers[2]


def test_a_rotated_secret_stops_working_and_the_new_one_works(client, service):
    # given
    sc, old = service
    new = client_secret_rotate(client=sc, via="tests")
    # when
    refused = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, old))
    accepted = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, new))
    # then
    assert_oauth_error(refused, 401, "invalid_client")
    assert accepted.status_code == 200


def test_unknown_and_known_clients_take_the_same_hash_and_comparison(client, db):
    # given: a known client with a wrong secret, an unknown well-formed id, a malformed id
    # and a disabled client
    known, secret = make_client()
    disabled, disabled_secret = make_client(name="old")
    client_disable(client=disabled, via="tests")
    cases = [
        (known.client_id, "wrong-" + secret, known.secret_digest),
        ("svc_" + "C" * 24, secret, clients_service._DUMMY_DIGEST),
        ("not-a-client-id", secret, clients_service._DUMMY_DIGEST),
        (disabled.client_id, disabled_secret, disabled.secret_digest),
    ]
    for client_id, attempt, digest in cases:
        with (
            mock.patch.object(clients_service, "client_secret_digest", wraps=clients_service.client_secret_digest) as d,
            mock.patch.object(clients_service.hmac, "compare_digest", wraps=hmac.compare_digest) as c,
        ):
            # when
            response = post_form(client, TOKEN_URL, GRANT, authorization=basic(client_id, attempt))
        # then: the presented secret is hashed once and compared once, in constant time,
        # against the client's digest or, when there is none, the dummy one
        assert response.status_code == 401
        d.assert_called_once_with(attempt)
        assert c.call_count == 1, client_id
        assert c.call_args.args == (hashlib.sha256(attempt.encode()).hexdigest(), digest)


def test_requests_past_the_per_client_rate_are_slow_down_until_the_window_passes(client, service, settings):
    # given
    settings.GATEHOUSE = {**settings.GATEHOUSE, "OAUTH_TOKEN_RATE_PER_CLIENT": (2, 60)}
    sc, secret = service
    auth = basic(sc.client_id, secret)
    for _ in range(2):
        assert post_form(client, TOKEN_URL, GRANT, authorization=auth).status_code == 200
    before = state()
    # when: a third, with the right secret
    refused = post_form(client, TOKEN_URL, GRANT, authorization=auth)
    # then
    body = assert_oauth_error(refused, 429, "slow_down")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused["Retry-After"] in body["error_description"]
    assert state() == before
    # and another client is not affected
    other, other_secret = make_client(name="other")
    assert post_form(client, TOKEN_URL, GRANT, authorization=basic(other.client_id, other_secret)).status_code == 200


def test_wrong_secrets_never_spend_a_clients_budget(client, service, settings):
    # A client id is no secret (every service token's `sub`): whoever knows it must not
    # be able to lock the client out with wrong secrets.
    settings.GATEHOUSE = {**settings.GATEHOUSE, "OAUTH_TOKEN_RATE_PER_CLIENT": (2, 60)}
    sc, secret = service
    for _ in range(5):
        assert_oauth_error(
            post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, "wrong")), 401, "invalid_client"
        )
    assert post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret)).status_code == 200


def test_requests_past_the_per_address_rate_are_slow_down_whatever_the_client(client, db, settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "OAUTH_TOKEN_RATE_PER_ADDRESS": (2, 60)}
    made = [make_client(name=f"c{n}") for n in range(3)]
    answers = [
        post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret)).status_code
        for sc, secret in made
    ]
    assert answers == [200, 200, 429]
    # Counted before the body is read: even a malformed request is refused as slow_down.
    assert_oauth_error(client.post(TOKEN_URL, "x", content_type="text/plain"), 429, "slow_down")


def test_a_service_token_is_refused_where_a_user_token_is_required(client, gql, service):
    # given
    sc, secret = service
    token = post_form(client, TOKEN_URL, GRANT, authorization=basic(sc.client_id, secret)).json()["access_token"]
    # then: the user-token check refuses it, whatever its signature
    with pytest.raises(TokenInvalid):
        jwt_decode(token)
    # and GraphQL never takes it for a user
    body = gql("{ me { id username } }", token=token)
    assert (body.get("data") or {}).get("me") is None


def test_a_user_token_is_refused_where_a_service_token_is_required(token):
    with pytest.raises(TokenInvalid):
        service_token_check(token)
