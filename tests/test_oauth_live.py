"""Stock client libraries against a live production server: Authlib's OAuth2Session and gql.

A backend holding only a client id and a secret (from `manage.py createclient --json`)
gets a token with Authlib's OAuth2Session (client_secret_basic and client_secret_post),
a resource server introspects it with the same library, and `manage.py disableclient`
ends it at once. The server is the shipped one (gunicorn, config/gunicorn.py, production
settings) on a SQLite file, spoken to as a TLS-terminating proxy would (X-Forwarded-Proto).
"""

import json

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from gql import Client as GQLClient
from gql import gql
from gql.transport.requests import RequestsHTTPTransport

from tests.live import manage, production_server

PROXY = {"X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, environment) of a production server of this module's own."""
    tmp = tmp_path_factory.mktemp("oauth-live")
    with production_server(tmp, SERVICE_TOKEN_LIFETIME="300") as (base, env):
        yield base, env


def create_client(env: dict, name: str, scope: str) -> dict:
    output = manage(env, "createclient", name, "--scope", scope, "--json")
    assert output.count("\n") == 1
    return json.loads(output)


def session(credentials: dict, **kwargs) -> OAuth2Session:
    oauth = OAuth2Session(credentials["client_id"], credentials["client_secret"], **kwargs)
    oauth.headers.update(PROXY)
    return oauth


@pytest.fixture(autouse=True)
def _behind_a_tls_proxy(monkeypatch):
    # TLS ends at the (simulated) proxy, so the library talks plain HTTP to the server.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_oauth2session_fetches_a_service_token_and_a_resource_server_introspects_it(server, method):
    base, env = server
    # given: two clients made by the command, as an operator would
    worker = create_client(env, f"worker-{method}", "users:read users:write")
    resource = create_client(env, f"resource-{method}", "tokens:introspect")
    # when: the worker gets a token with a stock OAuth client
    oauth = session(worker, scope="users:read", token_endpoint_auth_method=method)
    token = oauth.fetch_token(f"{base}/oauth/token", grant_type="client_credentials")
    # then
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "users:read"
    assert token["expires_in"] == 300
    # and the resource server learns it is live, with the same library
    checker = session(resource, token_endpoint_auth_method=method)
    answer = checker.introspect_token(f"{base}/oauth/introspect", token=token["access_token"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == worker["client_id"]
    assert body["scope"] == "users:read"
    # when: an operator disables the worker
    manage(env, "disableclient", worker["client_id"])
    # then: its token is dead at once, and it gets no new one
    assert checker.introspect_token(f"{base}/oauth/introspect", token=token["access_token"]).json() == {"active": False}
    with pytest.raises(OAuthError) as refused:
        session(worker, token_endpoint_auth_method=method).fetch_token(
            f"{base}/oauth/token", grant_type="client_credentials"
        )
    assert refused.value.error == "invalid_client"


def test_a_wrong_secret_is_invalid_client_for_the_library(server):
    base, env = server
    worker = create_client(env, "worker-wrong", "users:read")
    with pytest.raises(OAuthError) as refused:
        session({**worker, "client_secret": "not-the-secret"}).fetch_token(
            f"{base}/oauth/token", grant_type="client_credentials"
        )
    assert refused.value.error == "invalid_client"


def test_gql_with_a_service_token_names_its_client_and_never_a_user(server):
    base, env = server
    worker = create_client(env, "worker-gql", "users:read")
    token = session(worker).fetch_token(f"{base}/oauth/token", grant_type="client_credentials")["access_token"]
    transport = RequestsHTTPTransport(
        url=f"{base}/graphql", headers={**PROXY, "Authorization": f"Bearer {token}"}, timeout=15
    )
    with GQLClient(transport=transport) as graphql:
        result = graphql.execute(gql("query { me { id username } serviceClient { clientId name scopes } }"))
    # then: no user, and the calling client with the token's scopes
    assert result["me"] is None
    assert result["serviceClient"] == {"clientId": worker["client_id"], "name": "worker-gql", "scopes": ["users:read"]}
