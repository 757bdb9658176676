"""Plain HTTP to the API is refused with a JSON error, never redirected (config/https.py).

Production settings require HTTPS (SECURE_SSL_REDIRECT, with TLS ended at a proxy that
says so in X-Forwarded-Proto). The test settings do not, so the first half of this file
turns the requirement on around Django's test client; the second half runs the shipped
server command (gunicorn, production settings) and talks plain HTTP to it.
"""

import json
import logging
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

from accounts.models import AuthEvent, AuthEventKind, Session
from config.https import _normalized, is_api_path
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD
from tests.live import production_env

REPO_ROOT = Path(__file__).resolve().parent.parent
HTTPS_REQUIRED = RequestErrorCode.HTTPS_REQUIRED.value
PROXY_SAYS_HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}
ME = json.dumps({"query": "{ me { username } }"})
TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"


@pytest.fixture
def https_required():
    """Django's test client under production's HTTPS settings (built inside them: middleware reads them once)."""
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        yield Client(HTTP_HOST="localhost")


def assert_https_required(response):
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Type"] == "application/json"


def assert_https_required_body(response):
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == [HTTPS_REQUIRED]
    assert "use https" in body["errors"][0]["message"]
    assert set(body) == {"errors"}


# --- Django's test client, production-like settings ----------------------------------------


@pytest.mark.parametrize("path", ["/graphql", "/graphql/"])
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("authorization", [None, "Bearer some.access.token"], ids=["anonymous", "bearer"])
def test_plain_http_to_graphql_is_refused_not_redirected(https_required, path, method, authorization):
    # given
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    send = getattr(https_required, method)
    # when
    if method == "get":
        response = send(path, {"query": "{ me { username } }"}, **headers)
    else:
        response = send(path, ME, content_type="application/json", **headers)
    # then
    assert_https_required(response)
    assert_https_required_body(response)


def test_plain_http_head_is_refused_too(https_required):
    response = https_required.head("/graphql")
    assert_https_required(response)


def test_plain_http_token_auth_is_never_executed(https_required, user):
    # given: one right and one wrong password, both in clear
    for password in (PASSWORD, "wrong-password"):
        # when
        response = https_required.post(
            "/graphql",
            json.dumps({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": password}}),
            content_type="application/json",
        )
        # then: refused before the view: no session, no audit entry, so no password check
        assert_https_required(response)
        assert_https_required_body(response)
    assert Session.objects.count() == 0
    assert AuthEvent.objects.count() == 0
    # and the same sign-in over https is executed (and audited), as a control
    response = https_required.post(
        "/graphql",
        json.dumps({"query": TOKEN_AUTH, "variables": {"e": user.email, "p": PASSWORD}}),
        content_type="application/json",
        **PROXY_SAYS_HTTPS,
    )
    assert response.json()["data"]["tokenAuth"]["token"]
    assert list(AuthEvent.objects.values_list("kind", flat=True)) == [AuthEventKind.LOGIN_SUCCEEDED]


def test_a_request_the_proxy_marks_https_is_served(https_required, token):
    response = https_required.post(
        "/graphql", ME, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **PROXY_SAYS_HTTPS
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"username": "alice"}}}


def test_a_proxy_saying_http_is_refused(https_required):
    response = https_required.post("/graphql", ME, content_type="application/json", HTTP_X_FORWARDED_PROTO="http")
    assert_https_required(response)


@pytest.mark.parametrize("path", ["/./graphql", "/x/../graphql", "/graphql;a", "///graphql/"])
def test_spellings_of_the_api_path_are_refused_too(https_required, path):
    # (Django's test client reads "//graphql" as a host name; the folding is checked below.)
    assert_https_required(https_required.post(path, ME, content_type="application/json"))


@pytest.mark.parametrize(
    ("path", "folded"),
    [("//graphql", "/graphql"), ("/a/../graphql/", "/graphql"), ("/graphql;x=1", "/graphql"), ("/", "/")],
)
def test_paths_are_folded_before_they_are_compared(path, folded):
    assert _normalized(path) == folded


@pytest.mark.parametrize("path", ["/Graphql", "/admin/", "/anything"])
def test_a_plain_http_request_carrying_a_credential_is_never_redirected(https_required, path):
    response = https_required.get(path, HTTP_AUTHORIZATION="Bearer some.access.token")
    assert_https_required(response)


def test_the_admin_still_redirects_to_https(https_required):
    response = https_required.get("/admin/")
    assert response.status_code == 301
    assert response["Location"] == "https://localhost/admin/"


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_the_health_probes_answer_plain_http(https_required, probe, db):
    response = https_required.get(probe)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_refusal_logs_nothing(https_required, caplog):
    # given: every logger at DEBUG, Django's request logger included (it logs 4xx answers)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.request")
    # when
    for _ in range(3):
        assert https_required.post("/graphql", ME, content_type="application/json").status_code == 403
    # then
    assert [record.getMessage() for record in caplog.records] == []


def test_without_the_https_requirement_plain_http_is_served(client):
    # given: the test settings, like local development, do not require HTTPS
    assert settings.SECURE_SSL_REDIRECT is False
    # when
    response = client.post("/graphql", ME, content_type="application/json")
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": None}}


def test_a_new_api_prefix_gets_the_same_treatment():
    # given: a later endpoint joins the one list
    config = {**settings.GATEHOUSE, "API_PATH_PREFIXES": (*settings.GATEHOUSE["API_PATH_PREFIXES"], "/.well-known/")}
    with override_settings(
        SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"), GATEHOUSE=config
    ):
        plain = Client(HTTP_HOST="localhost")
        # when
        response = plain.get("/.well-known/openid-configuration")
    # then
    assert_https_required(response)
    assert_https_required_body(response)


def test_every_graphql_path_is_an_api_path():
    for path in settings.GATEHOUSE["GRAPHQL_PATHS"]:
        assert is_api_path(path, settings.GATEHOUSE["API_PATH_PREFIXES"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/graphql", True),
        ("/graphql/", True),
        ("/graphql/anything", True),
        ("/graphqlx", False),
        ("/admin/", False),
        ("/", False),
        ("/.well-known/", True),
        ("/.well-known/jwks.json", True),
        ("/.well-known", True),
        ("/.well-knownx", False),
    ],
)
def test_a_prefix_covers_itself_and_what_lies_below_it(path, expected):
    assert is_api_path(path, ("/graphql", "/.well-known/")) is expected


# --- the shipped server command over real HTTP -------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def http(base, path, body=None, headers=None):
    """Return (status, headers, body) of one request, redirects not followed."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")  # noqa: S310 - loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The Dockerfile's steps and command: migrate, collectstatic, gunicorn -c config/gunicorn.py."""
    tmp = tmp_path_factory.mktemp("https-only")
    env = production_env(tmp)
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env, check=True, timeout=120)  # noqa: S603
    # Append mode: the server writes at the end whatever offset a reader of this shared
    # file description has moved to (the test reads through its own handle anyway).
    log = (tmp / "server.log").open("a+")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(  # noqa: S603 - our own server command
        [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if http(base, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            log.seek(0)
            pytest.fail(f"gunicorn did not start:\n{log.read()}")
        yield {"base": base, "database": tmp / "db.sqlite3", "log": log, "log_path": tmp / "server.log"}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def register_over_https(base, name) -> str:
    """Return the access token of a new account, registered over (proxied) https."""
    query = (
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) { token } }"
    )
    variables = {"u": name, "e": f"{name}@example.com", "p": PASSWORD}
    status, _, raw = http(base, "/graphql", {"query": query, "variables": variables}, {"X-Forwarded-Proto": "https"})
    assert status == 200, raw
    return json.loads(raw)["data"]["register"]["token"]


def count_sessions(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT COUNT(*) FROM accounts_session").fetchone()[0]


def test_live_plain_http_with_a_bearer_token_is_refused(server):
    # given
    token = register_over_https(server["base"], "livebearer")
    # when
    status, headers, raw = http(
        server["base"], "/graphql", {"query": "{ me { username } }"}, {"Authorization": f"Bearer {token}"}
    )
    # then
    assert status == 403
    assert headers.get("Location") is None
    assert "no-store" in headers["Cache-Control"]
    body = json.loads(raw)
    assert [error["extensions"]["code"] for error in body["errors"]] == [HTTPS_REQUIRED]
    assert "data" not in body


def test_live_the_same_request_marked_https_is_served(server):
    token = register_over_https(server["base"], "liveserved")
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
    status, _, raw = http(server["base"], "/graphql", {"query": "{ me { username } }"}, headers)
    assert status == 200
    assert json.loads(raw) == {"data": {"me": {"username": "liveserved"}}}


def test_live_plain_http_token_auth_opens_no_session(server):
    # given
    register_over_https(server["base"], "livesignin")
    before = count_sessions(server["database"])
    # when
    variables = {"e": "livesignin@example.com", "p": PASSWORD}
    status, headers, raw = http(server["base"], "/graphql", {"query": TOKEN_AUTH, "variables": variables})
    # then
    assert (status, headers.get("Location")) == (403, None)
    assert json.loads(raw)["errors"][0]["extensions"]["code"] == HTTPS_REQUIRED
    assert count_sessions(server["database"]) == before


def test_live_the_admin_still_redirects(server):
    status, headers, _ = http(server["base"], "/admin/")
    assert status == 301
    assert headers["Location"] == f"https://{server['base'].removeprefix('http://')}/admin/"


def test_live_the_health_probe_answers_plain_http(server):
    assert http(server["base"], "/healthz")[0] == 200


def test_live_a_refusal_writes_only_its_access_log_line(server):
    # given: the log has settled (gunicorn writes an access line after its response is sent,
    # so an earlier test's last line may still be on its way)
    path = server["log_path"]
    start, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        size = path.stat().st_size
        if size == start:
            break
        start = size
    # when
    for _ in range(3):
        assert http(server["base"], "/graphql", {"query": "{ me { username } }"})[0] == 403
    # then: three access-log lines (written once each response is sent) and nothing else
    lines = []
    with path.open() as reader:
        for _ in range(50):
            reader.seek(start)
            lines = reader.read().splitlines()
            if len(lines) >= 3:
                break
            time.sleep(0.1)
        time.sleep(0.2)
        reader.seek(start)
        lines = reader.read().splitlines()
    assert len(lines) == 3, lines
    assert all('"POST /graphql" 403' in line for line in lines), lines
