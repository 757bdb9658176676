"""Server to server, end to end: what a backend with only a client id and a secret can do, and how
a resource server learns of a logout, against the shipped server with stock client libraries.

The server is the one the Dockerfile runs (gunicorn, config/gunicorn.py, production
settings) signing with ES256, its key made by `manage.py generate_signing_key` as the
README says, and with PUBLIC_URL set: every URL a client uses (token, introspection,
JWKS) is the one the server publishes at /.well-known/oauth-authorization-server. Its
database follows this run's: a scratch database (gh_s2s_<pid>_<hex>, created and
dropped here) on the Postgres DATABASE_URL points at, else a SQLite file; so the two CI
passes serve it on both. It has a redis-server of its own, so the session cache is on
and a client disabled by `manage.py disableclient` (another process) is refused through
it. Without redis-server (or an unreachable Postgres) the module skips, except in CI,
where it fails.

Only stock libraries speak to it: Authlib's OAuth2Session (client_secret_basic) for
/oauth/token and /oauth/introspect, the `gql` client for GraphQL, and PyJWT's
PyJWKClient, which verifies user and service tokens offline with the live JWKS alone.
All traffic is on the loopback interface; every wait is bounded.
"""

import base64
import contextlib
import hashlib
import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from gql import Client as GQLClient
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from accounts.error_codes import AuthErrorCode
from tests.live import RedisServer, free_port, gunicorn_serving, live_database_url, production_env
from tests.signing_keys import run_django

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AUDIENCE = "gatehouse-s2s"
PASSWORD = "a-Long-passphrase-for-s2s-tests"
ALL_SCOPES = "users:read users:write tokens:introspect"
# The default SERVICE_TOKEN_LIFETIME: the issue's "10 minutes", left unset here on purpose.
SERVICE_TOKEN_LIFETIME = 600
REQUEST_TIMEOUT = 15
COMMAND_TIMEOUT = 120
START_DEADLINE = 40

REVOKED = AuthErrorCode.TOKEN_REVOKED.value
FORBIDDEN = AuthErrorCode.FORBIDDEN.value
INVALID_CREDENTIALS = AuthErrorCode.INVALID_CREDENTIALS.value

REGISTER = (
    "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
    "{ user { id username email } errors { field code } } }"
)
TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token refreshToken } }"
ME = "query { me { id username } }"
WHO = "query { me { id } serviceClient { clientId name scopes } }"
SERVICE_CLIENT = "query { serviceClient { clientId scopes } }"
USERS = (
    "query($s: String!, $n: Int!) { users(search: $s, first: $n) "
    "{ totalCount pageInfo { hasNextPage } edges { node { id username email } } } }"
)
NODE = "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }"
REVOKE_USER_SESSIONS = (
    "mutation($id: ID!) { revokeUserSessions(id: $id) { success revokedSessions errors { field code } } }"
)
DEACTIVATE_USER = "mutation($id: ID!) { deactivateUser(id: $id) { success errors { field code } } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_TOKEN = "mutation($r: String!) { revokeToken(refreshToken: $r) { revoked } }"


# The server --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gatehouse:
    """A production server of this module's own, and what the operator knows about it."""

    base: str  # also its PUBLIC_URL and JWT_ISSUER
    env: dict
    kid: str  # as generate_signing_key printed it
    public_key: Path
    redis: object  # a redis.Redis client of the server's own redis-server
    log: Path

    def manage(self, *args: str) -> str:
        """Run a management command as the operator would (the server's environment); return its output."""
        done = subprocess.run(  # noqa: S603 - our own management commands
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, timeout=COMMAND_TIMEOUT
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        return done.stdout.decode()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def signing_key(tmp: Path) -> tuple[Path, Path, str]:
    """Make an ES256 key with the README's command; return (private, public, kid)."""
    private, public = tmp / "jwt-1.pem", tmp / "jwt-1.pub.pem"
    command = ["generate_signing_key", "--algorithm", "ES256", "--out", str(private), "--public-out", str(public)]
    made = run_django({}, ["manage.py", *command], settings_module="config.settings.local")
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    [kid] = re.findall(r"kid ([A-Za-z0-9_-]{43})\.", made.stdout)
    return private, public, kid


@pytest.fixture(scope="module")
def gatehouse(tmp_path_factory) -> Iterator[Gatehouse]:
    tmp = tmp_path_factory.mktemp("s2s-live")
    with contextlib.ExitStack() as stack:
        database = live_database_url(stack, tmp, "gh_s2s")
        redis_server = RedisServer.start(tmp)
        stack.callback(redis_server.stop)
        private, public, kid = signing_key(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = production_env(
            tmp,
            port=port,
            DATABASE_URL=database,
            REDIS_URL=redis_server.url,
            JWT_ALGORITHM="ES256",
            JWT_PRIVATE_KEY_FILE=str(private),
            # Loopback only, so plain HTTP: the URLs published are the very ones the clients use.
            PUBLIC_URL=base,
            SECURE_SSL_REDIRECT="false",
            JWT_ISSUER=base,
            JWT_AUDIENCE=AUDIENCE,
            # Account mail goes nowhere, at once: nothing listens on this port.
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(free_port()),
            LOGIN_RATE_PER_ADDRESS="off",
            REGISTER_RATE_PER_ADDRESS="1000/3600",
        )
        del env["JWT_SIGNING_KEY"]  # no HMAC secret: ES256 signs with the key file alone
        # The Dockerfile's steps: collectstatic at build time, migrate before start.
        preparing = [
            subprocess.Popen(  # noqa: S603 - our own management commands
                [PYTHON, "manage.py", *command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"])
        ]
        for process in preparing:
            output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
            assert process.returncode == 0, (process.args, output.decode(errors="replace")[-3000:])
        log = tmp / "server.log"
        stack.enter_context(gunicorn_serving(env, log, ready_url=f"{base}/readyz", start_deadline=START_DEADLINE))
        yield Gatehouse(base=base, env=env, kid=kid, public_key=public, redis=redis_server.client, log=log)


@pytest.fixture(autouse=True)
def _loopback_over_plain_http(monkeypatch):
    # The server is on 127.0.0.1 without TLS: Authlib must allow plain HTTP, and no proxy
    # from the environment may carry a request (or a token) off this machine.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# What the backend and the resource server do -------------------------------------------------


def discover(live: Gatehouse) -> dict:
    """Return the server's RFC 8414 metadata, as a client configured with only the base URL reads it."""
    response = requests.get(f"{live.base}/.well-known/oauth-authorization-server", timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def create_client(live: Gatehouse, name: str, scope: str) -> dict:
    """`manage.py createclient --json`: one line, the client's id, its secret (shown once) and its scope."""
    output = live.manage("createclient", name, "--scope", scope, "--json")
    assert output.count("\n") == 1, output
    credentials = json.loads(output)
    assert set(credentials) == {"client_id", "client_secret", "scope"}
    assert credentials["scope"] == scope
    return credentials


def oauth(credentials: dict, **kwargs) -> OAuth2Session:
    """A stock OAuth 2.0 client holding only the client id and secret, authenticating by HTTP Basic."""
    return OAuth2Session(
        credentials["client_id"],
        credentials["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        default_timeout=REQUEST_TIMEOUT,
        **kwargs,
    )


def service_token(live: Gatehouse, credentials: dict, scope: str | None = None) -> dict:
    """Fetch a client-credentials token at the token endpoint the metadata names."""
    session = oauth(credentials, **({"scope": scope} if scope else {}))
    return session.fetch_token(discover(live)["token_endpoint"], grant_type="client_credentials")


def introspect(live: Gatehouse, credentials: dict, token: str) -> dict:
    """Ask the introspection endpoint the metadata names about `token` (RFC 7662), as a resource server."""
    response = oauth(credentials).introspect_token(discover(live)["introspection_endpoint"], token=token)
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["Cache-Control"]
    return response.json()


def graphql(live: Gatehouse, document: str, variables: dict | None = None, token: str | None = None):
    """Send one operation with the gql client; return (data, error codes)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = RequestsHTTPTransport(url=f"{live.base}/graphql", headers=headers, timeout=REQUEST_TIMEOUT)
    try:
        return GQLClient(transport=transport).execute(GraphQLRequest(document, variable_values=variables)), []
    except TransportQueryError as refused:
        return refused.data, [error["extensions"]["code"] for error in refused.errors]


def register(live: Gatehouse, name: str) -> dict:
    """Create an account over HTTP; return what `register` shows of it."""
    data, codes = graphql(live, REGISTER, {"u": name, "e": f"{name}@example.com", "p": PASSWORD})
    assert codes == [], codes
    assert data["register"]["errors"] == [], data
    return data["register"]["user"]


def sign_in(live: Gatehouse, account: dict) -> dict:
    """`tokenAuth` over HTTP: the session's access token and refresh token."""
    data, codes = graphql(live, TOKEN_AUTH, {"e": account["email"], "p": PASSWORD})
    assert codes == [], codes
    return data["tokenAuth"]


def assert_me(live: Gatehouse, token: str, account: dict) -> None:
    assert graphql(live, ME, token=token) == ({"me": {"id": account["id"], "username": account["username"]}}, [])


def assert_revoked(live: Gatehouse, token: str) -> None:
    data, codes = graphql(live, ME, token=token)
    assert (data or {}).get("me") is None, data
    assert codes == [REVOKED], codes


def account_pk(account: dict) -> str:
    kind, pk = base64.b64decode(account["id"]).decode().split(":")
    assert kind == "User", account
    return pk


def thumbprint(jwk: dict) -> str:
    """The RFC 7638 thumbprint of an EC public JWK, computed here from the published members."""
    members = json.dumps({name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


# The cases ---------------------------------------------------------------------------------


def test_the_metadata_and_the_jwks_publish_the_es256_key_that_generate_signing_key_made(gatehouse):
    live = gatehouse
    # when: a client that knows only the base URL discovers the server
    metadata = discover(live)
    # then: every URL is built from PUBLIC_URL, and a metadata library accepts them
    assert (
        metadata.items()
        >= {
            "issuer": live.base,
            "jwks_uri": f"{live.base}/.well-known/jwks.json",
            "token_endpoint": f"{live.base}/oauth/token",
            "introspection_endpoint": f"{live.base}/oauth/introspect",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ALL_SCOPES.split(),
        }.items()
    ), metadata
    checked = AuthorizationServerMetadata(metadata)
    for member in ("issuer", "jwks_uri", "token_endpoint", "introspection_endpoint", "scopes_supported"):
        getattr(checked, f"validate_{member}")()
    checked.validate_grant_types_supported()
    checked.validate_token_endpoint_auth_methods_supported()
    # when: it reads the JWKS the metadata names
    response = requests.get(metadata["jwks_uri"], timeout=REQUEST_TIMEOUT)
    # then: exactly the public half of the key the command made, named by its RFC 7638 thumbprint
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    [key] = response.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}, key
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"] == live.kid == thumbprint(key)
    published = jwt.PyJWK.from_dict(key).key.public_numbers()
    assert published == load_pem_public_key(live.public_key.read_bytes()).public_numbers()


def test_a_backend_with_only_an_id_and_a_secret_calls_graphql_within_its_scopes(gatehouse):
    live = gatehouse
    # given: accounts, two of them signed in, and two clients made by the command, as an operator would
    accounts = [register(live, f"roster-{letter}") for letter in "abc"]
    target, bystander = accounts[0], accounts[1]
    target_session, bystander_session = sign_in(live, target), sign_in(live, bystander)
    backend = create_client(live, "backend", ALL_SCOPES)
    reader = create_client(live, "reader", "users:read")
    resource = create_client(live, "backend-resource", "tokens:introspect")
    # when: each gets a token with a stock OAuth library, at the published token endpoint
    issued = service_token(live, backend)
    read_only = service_token(live, reader)["access_token"]
    # then: an RFC 6749 §5.1 answer, with every scope of the client by default
    assert issued["token_type"].lower() == "bearer"
    assert issued["scope"] == ALL_SCOPES
    assert issued["expires_in"] == SERVICE_TOKEN_LIFETIME
    full = issued["access_token"]

    # then: GraphQL (through the gql client) knows the client and no user
    data, codes = graphql(live, WHO, token=full)
    assert codes == []
    assert data == {
        "me": None,
        "serviceClient": {"clientId": backend["client_id"], "name": "backend", "scopes": ALL_SCOPES.split()},
    }
    assert graphql(live, SERVICE_CLIENT, token=read_only) == (
        {"serviceClient": {"clientId": reader["client_id"], "scopes": ["users:read"]}},
        [],
    )
    # then: users:read lists and fetches any user, a page at a time
    for token in (full, read_only):
        data, codes = graphql(live, USERS, {"s": "roster-", "n": 2}, token=token)
        assert codes == []
        assert data["users"]["totalCount"] == 3
        assert data["users"]["pageInfo"]["hasNextPage"] is True
        listed = [edge["node"] for edge in data["users"]["edges"]]
        assert len(listed) == 2
        assert all(node in accounts for node in listed), listed
    assert graphql(live, NODE, {"id": target["id"]}, token=read_only) == (
        {"node": {"__typename": "User", "id": target["id"], "username": target["username"]}},
        [],
    )

    # when: the read-only client tries to end the target's sessions, or a user-only mutation
    data, codes = graphql(live, REVOKE_USER_SESSIONS, {"id": target["id"]}, token=read_only)
    # then: FORBIDDEN, and nothing changed
    assert codes == [FORBIDDEN]
    assert (data or {}).get("revokeUserSessions") is None, data
    data, codes = graphql(live, LOGOUT_ALL, token=read_only)
    assert codes == [FORBIDDEN]
    assert (data or {}).get("logoutAll") is None, data
    assert_me(live, target_session["token"], target)
    assert introspect(live, resource, target_session["token"])["active"] is True

    # when: the full client ends them
    data, codes = graphql(live, REVOKE_USER_SESSIONS, {"id": target["id"]}, token=full)
    # then: both of the target's sessions (register's and tokenAuth's) end at once, and no one else's
    assert codes == []
    assert data == {"revokeUserSessions": {"success": True, "revokedSessions": 2, "errors": []}}
    assert_revoked(live, target_session["token"])
    assert introspect(live, resource, target_session["token"]) == {"active": False}
    assert_me(live, bystander_session["token"], bystander)
    assert introspect(live, resource, bystander_session["token"])["active"] is True


def test_user_and_service_tokens_verify_offline_with_pyjwkclient_against_the_live_jwks(gatehouse):
    live = gatehouse
    # given: a user's token from tokenAuth over HTTP, and a service token from the token endpoint
    account = register(live, "offline")
    user_token = sign_in(live, account)["token"]
    worker = create_client(live, "offline-worker", "users:read")
    service = service_token(live, worker)["access_token"]
    metadata = discover(live)
    # when: another service verifies both with PyJWT and the published JWKS alone
    keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_jwk_set=False, timeout=REQUEST_TIMEOUT)
    claims = {}
    for name, token in (("user", user_token), ("service", service)):
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == ("ES256", live.kid), header
        key = keys.get_signing_key_from_jwt(token)
        assert key.key_id == live.kid
        claims[name] = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=metadata["issuer"],
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
    # then: a user's access token names the account and its session
    user = claims["user"]
    assert user["token_type"] == "access"
    assert user["sub"] == account_pk(account)
    assert isinstance(user["sid"], str)
    assert user["sid"]
    # then: a service token is RFC 9068's, names the client, and has no session
    served = claims["service"]
    assert served["token_type"] == "service"
    assert served["sub"] == served["client_id"] == worker["client_id"]
    assert "sid" not in served
    assert served["scope"] == "users:read"
    assert served["exp"] - served["iat"] == SERVICE_TOKEN_LIFETIME
    # and a token whose claims were changed after signing fails the same check
    header, _payload, signature = service.split(".")
    changed = base64.urlsafe_b64encode(json.dumps({**served, "scope": ALL_SCOPES}).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            f"{header}.{changed}.{signature}",
            keys.get_signing_key(live.kid).key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=metadata["issuer"],
        )


@pytest.mark.parametrize("logout", ["logoutAll", "revokeToken"])
def test_a_resource_server_learns_of_a_logout_through_introspection_at_once(gatehouse, logout):
    live = gatehouse
    # given: a signed-in user, served once (so the server may have cached the session)
    account = register(live, f"logout-{logout.lower()}")
    session = sign_in(live, account)
    assert_me(live, session["token"], account)
    resource = create_client(live, f"resource-{logout}", "tokens:introspect")
    # when: a resource server introspects the user's token
    before = introspect(live, resource, session["token"])
    # then: live, with the token's own claims, the session and the username
    claims = jwt.decode(session["token"], options={"verify_signature": False})
    assert before["active"] is True
    for name in ("sub", "exp", "iat", "iss", "aud", "jti", "token_type", "sid"):
        assert before[name] == claims[name], name
    assert before["username"] == account["username"]
    assert "client_id" not in before
    # when: the user signs out through GraphQL
    if logout == "logoutAll":
        data, codes = graphql(live, LOGOUT_ALL, token=session["token"])
        assert (data, codes) == ({"logoutAll": {"success": True, "revokedSessions": 2}}, [])
    else:
        data, codes = graphql(live, REVOKE_TOKEN, {"r": session["refreshToken"]})
        assert codes == []
        assert isinstance(data["revokeToken"]["revoked"], int), data
    # then: the very next introspection says exactly that it is not active, and GraphQL agrees
    assert introspect(live, resource, session["token"]) == {"active": False}
    assert_revoked(live, session["token"])


def test_deactivate_user_ends_the_users_tokens_at_introspection_and_in_graphql(gatehouse):
    live = gatehouse
    # given: a signed-in user and a client that may write users and introspect
    account = register(live, "deactivated")
    session = sign_in(live, account)
    assert_me(live, session["token"], account)
    admin = create_client(live, "deactivator", "users:write tokens:introspect")
    token = service_token(live, admin)["access_token"]
    assert introspect(live, admin, session["token"])["active"] is True
    # when
    data, codes = graphql(live, DEACTIVATE_USER, {"id": account["id"]}, token=token)
    # then
    assert (data, codes) == ({"deactivateUser": {"success": True, "errors": []}}, [])
    assert introspect(live, admin, session["token"]) == {"active": False}
    assert_revoked(live, session["token"])
    assert graphql(live, TOKEN_AUTH, {"e": account["email"], "p": PASSWORD})[1] == [INVALID_CREDENTIALS]


def test_disableclient_revokes_the_clients_token_on_the_next_request_and_at_introspection(gatehouse):
    live = gatehouse
    # given: a worker's token, served twice (so the server has its client in the shared cache)
    worker = create_client(live, "to-disable", "users:read")
    resource = create_client(live, "disable-resource", "tokens:introspect")
    token = service_token(live, worker)["access_token"]
    for _ in range(2):
        assert graphql(live, SERVICE_CLIENT, token=token) == (
            {"serviceClient": {"clientId": worker["client_id"], "scopes": ["users:read"]}},
            [],
        )
    # The session cache's entry for the client (accounts/session_cache.py: `{prefix}:sc:c:<client_id>`),
    # so that what follows goes through the cache, not merely the database.
    assert list(live.redis.scan_iter(match=f"*:sc:c:{worker['client_id']}")), "the client was not cached"
    answer = introspect(live, resource, token)
    assert (answer["active"], answer["client_id"], answer["scope"]) == (True, worker["client_id"], "users:read")
    # when: the operator disables the worker, from another process
    assert worker["client_id"] in live.manage("disableclient", worker["client_id"])
    # then: its token is refused on the very next GraphQL request, for every field
    data, codes = graphql(live, SERVICE_CLIENT, token=token)
    assert codes == [REVOKED]
    assert (data or {}).get("serviceClient") is None, data
    data, codes = graphql(live, USERS, {"s": "roster-", "n": 1}, token=token)
    assert codes == [REVOKED]
    assert (data or {}).get("users") is None, data
    # then: introspection says exactly that it is not active, and the worker gets no new token
    assert introspect(live, resource, token) == {"active": False}
    with pytest.raises(OAuthError) as refused:
        service_token(live, worker)
    assert refused.value.error == "invalid_client"
