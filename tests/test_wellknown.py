"""/.well-known/jwks.json and /.well-known/oauth-authorization-server: what they publish, to whom, how.

In process through Django's test client (the whole middleware stack), and once against
gunicorn with the production settings, where PyJWT's PyJWKClient verifies a user's token
with nothing but the live JWKS.
"""

import contextlib
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from accounts.keys import key_set
from accounts.scopes import SCOPES
from config.settings.base import public_url
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD
from tests.live import production_env
from tests.signing_keys import ALGORITHMS, key_pair, run_django, signing_with

JWKS = "/.well-known/jwks.json"
METADATA = "/.well-known/oauth-authorization-server"
PUBLIC = "https://auth.example.com"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"
ROOT = Path(__file__).resolve().parent.parent


def get(client, path, **extra):
    return client.get(path, **extra)


def assert_published(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Access-Control-Allow-Origin"] == "*"
    # No session, CSRF or other cookie: these are API paths.
    assert not response.cookies
    return response.json()


# --- the JWKS ------------------------------------------------------------------------------


def test_under_hs256_the_jwks_is_empty(client):
    assert settings.GRAPHQL_JWT["JWT_ALGORITHM"] == "HS256"
    body = assert_published(get(client, JWKS))
    assert body == {"keys": []}
    # The HMAC secret appears nowhere, in any form.
    assert settings.GRAPHQL_JWT["JWT_SECRET_KEY"] not in json.dumps(body)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_jwks_lists_the_current_then_the_previous_public_keys(algorithm, client, tmp_path):
    private, _ = key_pair(tmp_path, algorithm, 1)
    _, old_public = key_pair(tmp_path, algorithm, 0)
    with signing_with(algorithm, private, previous=[old_public]):
        body = assert_published(get(client, JWKS))
        current_kid = key_set().signing_kid
    assert body["keys"][0]["kid"] == current_kid
    assert len(body["keys"]) == 2
    assert len({key["kid"] for key in body["keys"]}) == 2
    for key in body["keys"]:
        assert not set(key) & PRIVATE_MEMBERS
        assert key["alg"] == algorithm
        assert key["use"] == "sig"
        assert {"kty", "kid"} <= set(key)
        # PyJWT's own JWK loading gets a public key out of each
        assert not hasattr(jwt.PyJWK.from_dict(key).key, "private_bytes")


def test_the_jwks_is_served_without_touching_the_database(client, tmp_path):
    # No database fixture: pytest-django fails any query (session, user, anything) outright.
    private, _ = key_pair(tmp_path, "ES256")
    with signing_with("ES256", private):
        assert_published(get(client, JWKS))


# --- the metadata ----------------------------------------------------------------------------


def expected_metadata(base: str = PUBLIC) -> dict:
    return {
        "issuer": settings.GRAPHQL_JWT["JWT_ISSUER"],
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/oauth/token",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["users:read", "users:write", "tokens:introspect"],
    }


@override_settings(PUBLIC_URL=PUBLIC)
def test_the_metadata_is_built_from_public_url(client):
    body = assert_published(get(client, METADATA))
    assert body == expected_metadata()
    assert body["scopes_supported"] == list(SCOPES)


@override_settings(PUBLIC_URL="https://example.com/auth", GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_ISSUER": "x"})
def test_the_metadata_keeps_public_urls_path_and_names_jwt_issuer(client):
    body = assert_published(get(client, METADATA))
    assert body["jwks_uri"] == "https://example.com/auth/.well-known/jwks.json"
    assert body["token_endpoint"] == "https://example.com/auth/oauth/token"
    assert body["issuer"] == "x"


@override_settings(PUBLIC_URL=PUBLIC, GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_ISSUER": PUBLIC}, ALLOWED_HOSTS=["*"])
@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HOST": "evil.example"},
        {"HTTP_HOST": "localhost", "HTTP_X_FORWARDED_HOST": "evil.example"},
        {"HTTP_HOST": "evil.example:8443", "HTTP_X_FORWARDED_PROTO": "http", "HTTP_FORWARDED": "host=evil.example"},
        {"SERVER_NAME": "evil.example", "SCRIPT_NAME": "/evil"},
    ],
    ids=["host", "x-forwarded-host", "forwarded", "server-name"],
)
def test_a_hostile_host_header_changes_nothing_in_the_metadata(headers):
    # ALLOWED_HOSTS accepts anything here, so only the view stands between the header and the URLs.
    response = Client().get(METADATA, **headers)
    body = assert_published(response)
    assert body == {**expected_metadata(), "issuer": PUBLIC}
    assert "evil" not in response.content.decode()
    # And a metadata client library accepts what it reads.
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    metadata = AuthorizationServerMetadata(body)
    for member in ("issuer", "jwks_uri", "token_endpoint", "scopes_supported", "grant_types_supported"):
        getattr(metadata, f"validate_{member}")()
    metadata.validate_token_endpoint_auth_methods_supported()


def test_a_host_not_allowed_is_refused_before_the_view(client):
    response = Client().get(METADATA, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert b"evil" not in response.content


def test_without_public_url_the_metadata_is_not_published(client):
    assert settings.PUBLIC_URL == ""
    response = get(client, METADATA)
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == RequestErrorCode.NOT_FOUND.value
    assert "PUBLIC_URL" in response.json()["errors"][0]["message"]
    assert "public" not in response.get("Cache-Control", "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://auth.example.com", "https://auth.example.com"),
        ("https://auth.example.com/", "https://auth.example.com"),
        (" https://auth.example.com:8443/auth/ ", "https://auth.example.com:8443/auth"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("", ""),
        (None, ""),
    ],
)
def test_public_url_accepts_absolute_http_urls(raw, expected):
    assert public_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "auth.example.com",
        "/auth",
        "//auth.example.com",
        "ftp://auth.example.com",
        "javascript:alert(1)",
        "https://",
        "https://auth.example.com/?next=x",
        "https://auth.example.com/?",
        "https://auth.example.com/#x",
        "https://user:pw@auth.example.com",
        "https://user@auth.example.com",
        "https://auth.example.com:port",
        "https://auth.example.com:99999",
    ],
)
def test_public_url_refuses_anything_else(raw):
    with pytest.raises(ImproperlyConfigured, match="PUBLIC_URL"):
        public_url(raw)


PRINT_PUBLIC_URL = ["-c", "import django; django.setup(); from django.conf import settings; print(settings.PUBLIC_URL)"]


@pytest.mark.parametrize(
    ("variables", "printed"),
    [
        ({"PUBLIC_URL": "https://auth.example.com/"}, "https://auth.example.com"),
        ({}, ""),
        ({"PUBLIC_URL": "http://127.0.0.1:8000", "SECURE_SSL_REDIRECT": "false"}, "http://127.0.0.1:8000"),
    ],
)
def test_production_reads_public_url(variables, printed):
    result = run_django({"JWT_SIGNING_KEY": "j" * 48, **variables}, PRINT_PUBLIC_URL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://auth.example.com", "PUBLIC_URL must be an https:// URL"),
        ("auth.example.com", "PUBLIC_URL must be an absolute http(s) URL"),
        ("https://auth.example.com/?x=1", "PUBLIC_URL must be an absolute http(s) URL"),
    ],
)
def test_production_refuses_a_bad_public_url(value, message):
    result = run_django({"JWT_SIGNING_KEY": "j" * 48, "PUBLIC_URL": value}, PRINT_PUBLIC_URL)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr, result.stderr


# --- methods, queries, transport ---------------------------------------------------------------


@override_settings(PUBLIC_URL=PUBLIC)
@pytest.mark.parametrize("path", [JWKS, METADATA])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_only_get_and_head_are_allowed(path, method, client):
    # A form POST without any CSRF token reaches the method check (405), not a CSRF 403 page;
    # and without a database fixture, any query would fail the test.
    response = getattr(client, method)(path, "a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == RequestErrorCode.METHOD_NOT_ALLOWED.value
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies


@override_settings(PUBLIC_URL=PUBLIC)
@pytest.mark.parametrize("path", [JWKS, METADATA])
def test_head_answers_like_get(path, client):
    response = client.head(path)
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    assert response.content == b""


@override_settings(PUBLIC_URL=PUBLIC)
@pytest.mark.parametrize("path", [JWKS, METADATA])
@pytest.mark.parametrize(
    "query",
    ["", "?", "?x=1", "?x=1&x=2", "?%00", "?a=%ff%fe", "?" + "a" * 4000, "?callback=alert", "?format=xml", "?;;&&=="],
)
def test_odd_query_strings_change_nothing(path, query, client):
    plain = get(client, path).json()
    assert assert_published(client.get(path + query)) == plain


@override_settings(PUBLIC_URL=PUBLIC)
@pytest.mark.parametrize(
    "path", ["/.well-known/jwks.json/", "/.well-known/JWKS.json", "/.well-known/", "/.well-known/x"]
)
def test_other_paths_below_well_known_are_json_404s(path, client):
    response = get(client, path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


@override_settings(SECURE_SSL_REDIRECT=True, PUBLIC_URL=PUBLIC)
@pytest.mark.parametrize("path", [JWKS, METADATA])
def test_plain_http_is_refused_not_redirected_where_https_is_required(path):
    client = Client()
    response = client.get(path)
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == RequestErrorCode.HTTPS_REQUIRED.value
    # Through the TLS-terminating proxy it is served.
    assert_published(client.get(path, HTTP_X_FORWARDED_PROTO="https", secure=True))


# --- live: PyJWKClient against the JWKS of a production server ---------------------------------


@pytest.fixture(scope="module")
def live_rs256(tmp_path_factory):
    """gunicorn with the production settings, signing with RS256, one previous key listed."""
    tmp = tmp_path_factory.mktemp("wellknown")
    private, _ = key_pair(tmp, "RS256", 1)
    _, old_public = key_pair(tmp, "RS256", 0)
    env = production_env(
        tmp,
        JWT_ALGORITHM="RS256",
        JWT_PRIVATE_KEY_FILE=str(private),
        JWT_PREVIOUS_PUBLIC_KEY_FILES=str(old_public),
        PUBLIC_URL="https://auth.example.com",
        JWT_ISSUER="https://auth.example.com",
        STATIC_ROOT=str(tmp / "static"),
    )
    del env["JWT_SIGNING_KEY"]  # not needed with an asymmetric algorithm
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        done = subprocess.run(  # noqa: S603 - our own management commands
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    log = tmp / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    port = int(env["PORT"])
    try:
        deadline = time.monotonic() + 40
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, "GET", "/readyz")[0] == 200:
                    break
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body, {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def graphql(port: int, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, _, body = request(port, "POST", "/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                              headers)  # fmt: skip
    assert status == 200, body
    return json.loads(body)


def test_a_user_token_verifies_offline_with_pyjwkclient_against_the_live_jwks(live_rs256):
    port = live_rs256
    # given: an account and a token issued by the live server
    registered = graphql(
        port,
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
        "{ errors { code } } }",
        {"u": "remote", "e": "remote@example.com", "p": PASSWORD},
    )
    assert registered["data"]["register"]["errors"] == [], registered
    token = graphql(port, TOKEN_AUTH, {"e": "remote@example.com", "p": PASSWORD})["data"]["tokenAuth"]["token"]
    # the metadata points at the JWKS, with the public URL (never the address asked)
    status, _, body = request(port, "GET", METADATA)
    assert status == 200
    metadata = json.loads(body)
    assert metadata["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json"
    assert metadata["issuer"] == "https://auth.example.com"
    # when: another service verifies it with PyJWT and the JWKS alone (reached at this test's address)
    client = jwt.PyJWKClient(
        f"http://127.0.0.1:{port}{JWKS}", headers={"X-Forwarded-Proto": "https"}, cache_keys=False, cache_jwk_set=False
    )
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, signing_key.key, algorithms=["RS256"], audience="gatehouse", issuer="https://auth.example.com"
    )
    # then
    assert claims["token_type"] == "access"
    assert graphql(port, "{ me { username } }", token=token)["data"]["me"]["username"] == "remote"
    assert len(client.get_jwk_set().keys) == 2
    # and a token the JWKS did not sign is refused by the same client
    forged = jwt.encode(claims, "not-the-key" * 4, algorithm="HS256", headers={"kid": signing_key.key_id})
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(forged, client.get_signing_key_from_jwt(forged).key, algorithms=["RS256"], audience="gatehouse")


def test_the_live_well_known_paths_refuse_other_methods_and_plain_http(live_rs256):
    port = live_rs256
    for method in ("POST", "PUT", "DELETE"):
        status, headers, body = request(
            port, method, JWKS, b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 405, body
        assert headers["Allow"] == "GET, HEAD"
        assert json.loads(body)["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("GET", JWKS, headers={"Host": "127.0.0.1"})  # no X-Forwarded-Proto: plain HTTP
        response = connection.getresponse()
        assert response.status == 403
        assert json.loads(response.read())["errors"][0]["extensions"]["code"] == "HTTPS_REQUIRED"
    finally:
        connection.close()
    status, headers, body = request(port, "GET", JWKS)
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=300"
    assert "Set-Cookie" not in headers
