"""The HTTP side of /graphql: malformed bodies, content types (CSRF), methods, media types,
GraphiQL, caching and CORS headers, and automatic persisted queries."""

import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from django.test.client import FakePayload

from accounts.models import User
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    user { username }
    token
    errors { field code }
  }
}
"""
REGISTER_VARIABLES = {"username": "mallory", "email": "mallory@example.com", "password": PASSWORD}
REGISTER_BODY = json.dumps({"query": REGISTER, "variables": REGISTER_VARIABLES})
ME = "{ me { username } }"

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
PREFLIGHT = {"HTTP_APOLLO_REQUIRE_PREFLIGHT": "true"}


def post(client, body, content_type=JSON, path="/graphql", **extra):
    # Set CONTENT_TYPE explicitly too: the test client leaves it out for an empty body.
    return client.post(path, body, content_type=content_type, CONTENT_TYPE=content_type, **extra)


def assert_request_error(response, status: int, code: RequestErrorCode, media_type: str = JSON) -> dict:
    """Assert `response` is exactly one GraphQL-shaped error with `code`; return its body."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].split(";")[0] == media_type
    body = json.loads(response.content)
    assert list(body) == ["errors"]
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert set(error) == {"message", "extensions"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error_codes(body) == [code.value]
    return body


def assert_registered_nobody():
    assert not User.objects.exists()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(REGISTER_BODY[:-5], id="truncated"),
        pytest.param(REGISTER_BODY.encode().replace(b"mallory", b"mall\xffory", 1), id="invalid-utf8"),
        pytest.param(REGISTER_BODY.encode().replace(b"mallory", b"mall\xc3ory", 1), id="truncated-utf8-sequence"),
        pytest.param(b"\xef\xbb\xbf" + REGISTER_BODY.encode()[:-1], id="bom-and-truncated"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="whitespace"),
        pytest.param("{'query': '{ me { id } }'}", id="single-quotes"),
        pytest.param('{"query": "{ __typename }",}', id="trailing-comma"),
        pytest.param('{"query": "{ __typename }"} {"query": "{ __typename }"}', id="two-documents"),
        pytest.param("NaN", id="nan"),
        pytest.param("[" * 5_000 + "]" * 5_000, id="array-nested-5000"),
        pytest.param('{"a":' * 2_000 + "1" + "}" * 2_000, id="object-nested-2000"),
        pytest.param(
            '{"query": "{ __typename }", "variables": {"v": ' + "[" * 2_000 + "]" * 2_000 + "}}",
            id="variables-nested-2000",
        ),
    ],
)
def test_a_body_that_is_not_json_is_bad_request(client, db, body):
    # when
    response = post(client, body)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000, id="array-100000"),
        pytest.param('{"a":' * 50_000, id="object-50000"),
    ],
)
def test_json_nested_100000_levels_is_a_4xx_at_any_body_size_limit(client, db, body):
    # when: the default body limit refuses it by size before parsing
    response = post(client, body)
    # then
    assert_request_error(response, 413, RequestErrorCode.PAYLOAD_TOO_LARGE)

    # when: with room for the whole body, the JSON parser itself must refuse the nesting
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1_000_000):
        response = post(client, body)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([{"query": REGISTER, "variables": REGISTER_VARIABLES}], id="batch"),
        pytest.param([], id="empty-batch"),
        pytest.param(REGISTER, id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param(True, id="boolean"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_bad_request(client, db, body):
    # when
    response = post(client, json.dumps(body))
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"variables": REGISTER_VARIABLES}, id="query-missing"),
        pytest.param({"query": None, "variables": REGISTER_VARIABLES}, id="query-null"),
        pytest.param({"query": 42, "variables": REGISTER_VARIABLES}, id="query-number"),
        pytest.param({"query": [REGISTER], "variables": REGISTER_VARIABLES}, id="query-list"),
        pytest.param({"query": {"query": REGISTER}, "variables": REGISTER_VARIABLES}, id="query-object"),
        pytest.param({"query": "", "variables": REGISTER_VARIABLES}, id="query-empty"),
        pytest.param({"query": " \n\t ", "variables": REGISTER_VARIABLES}, id="query-blank"),
        pytest.param({"query": REGISTER, "variables": [REGISTER_VARIABLES]}, id="variables-list"),
        pytest.param({"query": REGISTER, "variables": 7}, id="variables-number"),
        pytest.param({"query": REGISTER, "variables": "not json"}, id="variables-string-not-json"),
        pytest.param({"query": REGISTER, "variables": "[1, 2]"}, id="variables-string-of-a-list"),
        pytest.param({"query": REGISTER, "variables": True}, id="variables-boolean"),
        pytest.param(
            {"query": REGISTER, "variables": REGISTER_VARIABLES, "operationName": 1}, id="operation-name-number"
        ),
        pytest.param(
            {"query": REGISTER, "variables": REGISTER_VARIABLES, "operationName": ["Register"]},
            id="operation-name-list",
        ),
        pytest.param({"query": REGISTER, "variables": REGISTER_VARIABLES, "extensions": [1]}, id="extensions-list"),
        pytest.param(
            {"query": REGISTER, "variables": REGISTER_VARIABLES, "extensions": "nope"}, id="extensions-not-json"
        ),
    ],
)
def test_a_parameter_of_the_wrong_json_type_is_bad_request(client, db, body):
    # when
    response = post(client, json.dumps(body))
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


def test_variables_may_be_sent_as_a_json_string(client, db):
    # given: some clients serialise `variables` twice
    body = json.dumps({"query": REGISTER, "variables": json.dumps(REGISTER_VARIABLES)})
    # when
    response = post(client, body)
    # then
    assert response.status_code == 200
    assert response.json()["data"]["register"]["errors"] == []
    assert list(User.objects.values_list("username", flat=True)) == ["mallory"]


def test_a_body_over_the_upload_limit_is_payload_too_large(client, db):
    # given: a well-formed register request padded past the limit
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    padding = " " * (limit + 1 - len(REGISTER_BODY))
    body = REGISTER_BODY[:-1] + padding + "}"
    assert len(body.encode()) == limit + 1
    # when
    response = post(client, body)
    # then
    assert_request_error(response, 413, RequestErrorCode.PAYLOAD_TOO_LARGE)
    assert_registered_nobody()


def test_a_body_exactly_at_the_upload_limit_is_read(client, db):
    # given
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = REGISTER_BODY[:-1] + " " * (limit - len(REGISTER_BODY)) + "}"
    assert len(body.encode()) == limit
    # when
    response = post(client, body)
    # then
    assert response.status_code == 200
    assert response.json()["data"]["register"]["errors"] == []
    assert User.objects.filter(username="mallory").exists()


@pytest.mark.parametrize("content_length", ["abc", "1e3", "12 bytes"])
def test_a_content_length_that_is_not_a_number_is_bad_request(client, db, content_length):
    # when: a malformed header that a lenient front server could pass through
    response = post(client, REGISTER_BODY, CONTENT_LENGTH=content_length)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


# --- bodies without Content-Length (chunked) ---------------------------------------------------


def _chunked(client, body: bytes, content_type=JSON):
    # What a WSGI server passes for `Transfer-Encoding: chunked`: the header, no CONTENT_LENGTH.
    return client.request(
        PATH_INFO="/graphql",
        REQUEST_METHOD="POST",
        CONTENT_TYPE=content_type,
        HTTP_TRANSFER_ENCODING="chunked",
        QUERY_STRING="",
        **{"wsgi.input": FakePayload(body)},
    )


def test_a_chunked_body_is_length_required(client, db):
    # when: a valid request, sent without Content-Length
    response = _chunked(client, REGISTER_BODY.encode())
    # then
    body = assert_request_error(response, 411, RequestErrorCode.LENGTH_REQUIRED)
    assert "Content-Length" in body["errors"][0]["message"]
    assert_registered_nobody()


def test_a_chunked_body_is_length_required_in_the_accepted_media_type(client, db):
    # when
    response = client.request(
        PATH_INFO="/graphql",
        REQUEST_METHOD="POST",
        CONTENT_TYPE=JSON,
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_ACCEPT=GRAPHQL_RESPONSE,
        QUERY_STRING="",
        **{"wsgi.input": FakePayload(REGISTER_BODY.encode())},
    )
    # then
    assert_request_error(response, 411, RequestErrorCode.LENGTH_REQUIRED, media_type=GRAPHQL_RESPONSE)
    assert_registered_nobody()


def test_a_transfer_encoding_beside_a_content_length_is_length_required(client, db):
    # given: framing a server or proxy could read two ways (request smuggling)
    data = REGISTER_BODY.encode()
    # when
    response = client.request(
        PATH_INFO="/graphql",
        REQUEST_METHOD="POST",
        CONTENT_TYPE=JSON,
        CONTENT_LENGTH=str(len(data)),
        HTTP_TRANSFER_ENCODING="chunked",
        QUERY_STRING="",
        **{"wsgi.input": FakePayload(data)},
    )
    # then
    assert_request_error(response, 411, RequestErrorCode.LENGTH_REQUIRED)
    assert_registered_nobody()


def test_a_chunked_form_post_is_still_unsupported_media_type(client, db):
    # when: the CSRF refusal comes first, whatever the framing
    response = _chunked(client, REGISTER_BODY.encode(), content_type="text/plain")
    # then
    assert_request_error(response, 415, RequestErrorCode.UNSUPPORTED_MEDIA_TYPE)
    assert_registered_nobody()


def test_an_empty_body_with_a_content_length_of_zero_is_still_bad_request(client, db):
    # when
    response = post(client, "", CONTENT_LENGTH="0")
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)


ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server_port(tmp_path_factory):
    """gunicorn serving the shipped command with the production settings, on SQLite in a tmp dir."""
    port = _free_port()
    database = tmp_path_factory.mktemp("live") / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"sqlite:///{database}",
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start listening"
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _live_post(port: int, body: bytes, *, chunked: bool) -> tuple[int, str, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": JSON, "X-Forwarded-Proto": "https"}
    try:
        if chunked:
            # A generator has no length: http.client sends it with Transfer-Encoding: chunked.
            connection.request("POST", "/graphql", body=iter([body[:20], body[20:]]), headers=headers)
        else:
            connection.request("POST", "/graphql", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_through_gunicorn_is_length_required_and_changes_nothing(live_server_port):
    # when: a valid registration, chunked
    status, content_type, body = _live_post(live_server_port, REGISTER_BODY.encode(), chunked=True)
    # then
    assert status == 411
    assert content_type.split(";")[0] == JSON
    assert list(body) == ["errors"]
    assert error_codes(body) == [RequestErrorCode.LENGTH_REQUIRED.value]
    assert "Content-Length" in body["errors"][0]["message"]

    # when: the same registration with a Content-Length
    status, _, body = _live_post(live_server_port, REGISTER_BODY.encode(), chunked=False)
    # then: it is the first one (the chunked one created nothing)
    assert status == 200
    assert body["data"]["register"]["errors"] == []
    assert body["data"]["register"]["user"] == {"username": "mallory"}


# --- content types: only application/json (cross-site simple requests are refused) ----------


def _form_urlencoded(client):
    data = f"query={REGISTER}&variables={json.dumps(REGISTER_VARIABLES)}"
    return client.post("/graphql", data, content_type="application/x-www-form-urlencoded")


def _multipart(client):
    # The test client's default encoding for a dict.
    return client.post("/graphql", {"query": REGISTER, "variables": json.dumps(REGISTER_VARIABLES)})


def _empty_content_type(client):
    return client.generic("POST", "/graphql", REGISTER_BODY, content_type="")


def _no_content_type(client):
    # No CONTENT_TYPE key at all in the WSGI environ, as a server passes a request without the header.
    data = REGISTER_BODY.encode()
    return client.request(
        PATH_INFO="/graphql",
        REQUEST_METHOD="POST",
        CONTENT_LENGTH=str(len(data)),
        QUERY_STRING="",
        **{"wsgi.input": FakePayload(data)},
    )


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda client: post(client, REGISTER_BODY, content_type="text/plain"), id="text-plain"),
        pytest.param(
            lambda client: post(client, REGISTER_BODY, content_type="text/plain; charset=utf-8"), id="text-plain-utf8"
        ),
        pytest.param(_form_urlencoded, id="form-urlencoded"),
        pytest.param(_multipart, id="multipart"),
        pytest.param(_empty_content_type, id="empty-content-type"),
        pytest.param(_no_content_type, id="no-content-type"),
        pytest.param(lambda client: post(client, REGISTER_BODY, content_type="application/jsonp"), id="jsonp"),
        pytest.param(lambda client: post(client, REGISTER_BODY, content_type="text/json"), id="text-json"),
        pytest.param(lambda client: post(client, REGISTER, content_type="application/graphql"), id="graphql"),
    ],
)
def test_a_register_mutation_without_a_json_content_type_is_refused(client, db, send):
    # when
    response = send(client)
    # then
    assert_request_error(response, 415, RequestErrorCode.UNSUPPORTED_MEDIA_TYPE)
    assert_registered_nobody()


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json;"])
def test_json_with_parameters_or_other_case_is_accepted(client, db, content_type):
    # when
    response = post(client, REGISTER_BODY, content_type=content_type)
    # then
    assert response.status_code == 200
    assert response.json()["data"]["register"]["errors"] == []
    assert list(User.objects.values_list("username", flat=True)) == ["mallory"]


# --- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_not_allowed(client, db, method):
    # when
    response = client.generic(method, "/graphql", REGISTER_BODY, content_type=JSON)
    # then
    assert_request_error(response, 405, RequestErrorCode.METHOD_NOT_ALLOWED)
    allowed = {name.strip() for name in response["Allow"].split(",")}
    assert allowed == {"GET", "POST"}
    assert_registered_nobody()


def test_get_runs_a_query_with_a_preflight_header(client, user, token):
    # when
    response = client.get("/graphql", {"query": ME}, HTTP_AUTHORIZATION=f"Bearer {token}", **PREFLIGHT)
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"username": "alice"}}}


def test_get_accepts_the_apollo_operation_name_header_as_preflight(client, user, token):
    # when
    response = client.get(
        "/graphql",
        {"query": "query Me { me { username } }", "operationName": "Me"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_APOLLO_OPERATION_NAME="Me",
    )
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"username": "alice"}}}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param({"HTTP_APOLLO_REQUIRE_PREFLIGHT": ""}, id="empty-preflight"),
    ],
)
def test_get_without_a_preflight_header_is_bad_request(client, user, token, headers):
    # when: what a cross-site <img> or link could send
    response = client.get("/graphql", {"query": ME}, HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    # then
    body = assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert "alice" not in json.dumps(body)


@pytest.mark.parametrize("headers", [pytest.param(PREFLIGHT, id="with-preflight"), pytest.param({}, id="plain")])
def test_get_refuses_a_mutation_with_405(client, db, headers):
    # when
    response = client.get("/graphql", {"query": REGISTER, "variables": json.dumps(REGISTER_VARIABLES)}, **headers)
    # then
    assert_request_error(response, 405, RequestErrorCode.METHOD_NOT_ALLOWED)
    assert response["Allow"] == "POST"
    assert_registered_nobody()


def test_get_refuses_the_mutation_of_a_document_that_also_holds_a_query(client, db):
    # given
    document = "query Me { me { username } }\n" + REGISTER
    # when
    response = client.get(
        "/graphql",
        {"query": document, "variables": json.dumps(REGISTER_VARIABLES), "operationName": "Register"},
        **PREFLIGHT,
    )
    # then
    assert_request_error(response, 405, RequestErrorCode.METHOD_NOT_ALLOWED)
    assert_registered_nobody()

    # when: the query of the same document is fine
    response = client.get("/graphql", {"query": document, "operationName": "Me"}, **PREFLIGHT)
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": None}}
    assert_registered_nobody()


def test_get_takes_variables_as_a_json_string(client, user, token):
    # given
    query = "query Me($with: Boolean!) { me @include(if: $with) { username } }"
    # when
    shown = client.get(
        "/graphql",
        {"query": query, "variables": json.dumps({"with": True})},
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **PREFLIGHT,
    )
    hidden = client.get(
        "/graphql",
        {"query": query, "variables": json.dumps({"with": False})},
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **PREFLIGHT,
    )
    # then
    assert shown.status_code == 200
    assert shown.json() == {"data": {"me": {"username": "alice"}}}
    assert hidden.status_code == 200
    assert hidden.json() == {"data": {}}


@pytest.mark.parametrize("variables", ["not json", "[1]", "3"])
def test_get_with_variables_that_are_not_a_json_object_is_bad_request(client, db, variables):
    # when
    response = client.get("/graphql", {"query": ME, "variables": variables}, **PREFLIGHT)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)


def test_get_without_a_query_is_bad_request(client, db):
    # when
    response = client.get("/graphql", HTTP_ACCEPT=JSON, **PREFLIGHT)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)


@pytest.mark.parametrize("path", ["/graphql", "/graphql/"])
def test_both_paths_serve_the_api_with_bearer_authentication(gql, client, user, token, path):
    # when
    posted = gql.post(ME, token=token, path=path)
    fetched = client.get(path, {"query": ME}, HTTP_AUTHORIZATION=f"Bearer {token}", **PREFLIGHT)
    # then
    assert posted.status_code == 200
    assert posted.json() == {"data": {"me": {"username": "alice"}}}
    assert fetched.status_code == 200
    assert fetched.json() == {"data": {"me": {"username": "alice"}}}


# --- GraphiQL --------------------------------------------------------------------------------


def graphiql_enabled(enabled: bool):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, "GRAPHIQL": enabled})


@pytest.mark.parametrize("path", ["/graphql", "/graphql/"])
def test_graphiql_is_served_to_browsers_when_enabled(client, db, path):
    # when
    with graphiql_enabled(True):
        response = client.get(path, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"graphiql" in response.content.lower()
    assert "no-store" in response["Cache-Control"]


def test_graphiql_is_not_served_when_disabled(client, db):
    # when
    with graphiql_enabled(False):
        response = client.get("/graphql", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert b"<html" not in response.content.lower()
    assert b"graphiql" not in response.content.lower()


def test_graphiql_is_not_served_to_a_client_that_asks_for_json(client, db):
    # when
    with graphiql_enabled(True):
        response = client.get("/graphql", HTTP_ACCEPT=JSON)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)


def test_a_browser_get_with_a_query_runs_it_instead_of_graphiql(client, user, token):
    # when
    with graphiql_enabled(True):
        response = client.get(
            "/graphql", {"query": ME}, HTTP_ACCEPT="text/html", HTTP_AUTHORIZATION=f"Bearer {token}", **PREFLIGHT
        )
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    assert response.json() == {"data": {"me": {"username": "alice"}}}


# --- response media types (GraphQL over HTTP) ------------------------------------------------

REQUEST_ERRORS = [
    pytest.param("{ me { username }", None, RequestErrorCode.GRAPHQL_PARSE_FAILED, id="parse"),
    pytest.param("{ me { password } }", None, RequestErrorCode.GRAPHQL_VALIDATION_FAILED, id="validation"),
    pytest.param(
        "{ me { " + " ".join(f"a{n}: id" for n in range(50)) + " } }",
        None,
        RequestErrorCode.QUERY_TOO_COMPLEX,
        id="aliases-limit",
    ),
    pytest.param("{ me { id } }" + " " * 8_000, None, RequestErrorCode.QUERY_TOO_COMPLEX, id="length-limit"),
    pytest.param(REGISTER, {**REGISTER_VARIABLES, "password": 12345}, RequestErrorCode.BAD_USER_INPUT, id="variables"),
    pytest.param(
        "query A { __typename } query B { __typename }", None, RequestErrorCode.BAD_USER_INPUT, id="operation"
    ),
]


@pytest.mark.parametrize(("query", "variables", "code"), REQUEST_ERRORS)
def test_request_errors_are_400_with_graphql_response_json(gql, db, query, variables, code):
    # when
    response = gql.post(query, variables, headers={"HTTP_ACCEPT": GRAPHQL_RESPONSE})
    # then
    assert response.status_code == 400
    assert response["Content-Type"] == GRAPHQL_RESPONSE
    body = json.loads(response.content)
    assert "data" not in body
    assert error_codes(body) == [code.value]
    assert_registered_nobody()


@pytest.mark.parametrize(("query", "variables", "code"), REQUEST_ERRORS)
@pytest.mark.parametrize("accept", [JSON, None], ids=["accept-json", "no-accept"])
def test_request_errors_are_200_with_application_json(gql, db, query, variables, code, accept):
    # when
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = gql.post(query, variables, headers=headers)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == [code.value]
    assert_registered_nobody()


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (JSON, JSON),
        (None, JSON),
        ("*/*", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),
        (f"{JSON};q=0.9, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    ],
)
def test_a_successful_query_is_200_in_the_preferred_media_type(gql, user, token, accept, media_type):
    # when
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = gql.post(ME, token=token, headers=headers)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == media_type
    assert json.loads(response.content) == {"data": {"me": {"username": "alice"}}}


def test_a_field_error_with_data_is_200_even_with_graphql_response_json(gql, db):
    # when: a bad token is a field error; `data` is present
    response = gql.post(ME, token="garbage", headers={"HTTP_ACCEPT": GRAPHQL_RESPONSE})
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == GRAPHQL_RESPONSE
    body = json.loads(response.content)
    assert body["data"] == {"me": None}
    assert len(body["errors"]) == 1


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_a_refused_body_is_answered_in_the_accepted_media_type(client, db, accept):
    # when
    response = post(client, REGISTER_BODY[:-3], HTTP_ACCEPT=accept)
    unsupported = post(client, REGISTER_BODY, content_type="text/plain", HTTP_ACCEPT=accept)
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST, media_type=accept)
    assert_request_error(unsupported, 415, RequestErrorCode.UNSUPPORTED_MEDIA_TYPE, media_type=accept)
    assert_registered_nobody()


# --- headers ---------------------------------------------------------------------------------


def _success(client, token):
    return client.post("/graphql", json.dumps({"query": ME}), content_type=JSON, HTTP_AUTHORIZATION=f"Bearer {token}")


def _field_error(client, token):
    return client.post("/graphql", json.dumps({"query": ME}), content_type=JSON, HTTP_AUTHORIZATION="Bearer garbage")


def _validation_error(client, token):
    return client.post("/graphql", json.dumps({"query": "{ nope }"}), content_type=JSON)


def _parse_error_graphql_response(client, token):
    return client.post("/graphql", json.dumps({"query": "{"}), content_type=JSON, HTTP_ACCEPT=GRAPHQL_RESPONSE)


def _get_success(client, token):
    return client.get("/graphql", {"query": ME}, HTTP_AUTHORIZATION=f"Bearer {token}", **PREFLIGHT)


def _get_without_preflight(client, token):
    return client.get("/graphql", {"query": ME}, HTTP_AUTHORIZATION=f"Bearer {token}")


def _get_mutation(client, token):
    return client.get("/graphql", {"query": REGISTER}, **PREFLIGHT)


def _malformed(client, token):
    return client.post("/graphql", "{", content_type=JSON)


def _too_large(client, token):
    return client.post("/graphql", " " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1), content_type=JSON)


def _text_plain(client, token):
    return client.post("/graphql", REGISTER_BODY, content_type="text/plain")


def _put(client, token):
    return client.generic("PUT", "/graphql", REGISTER_BODY, content_type=JSON)


def _graphiql(client, token):
    with graphiql_enabled(True):
        return client.get("/graphql/", HTTP_ACCEPT="text/html")


@pytest.mark.parametrize(
    ("send", "status"),
    [
        pytest.param(_success, 200, id="success"),
        pytest.param(_field_error, 200, id="field-error"),
        pytest.param(_validation_error, 200, id="validation-error"),
        pytest.param(_parse_error_graphql_response, 400, id="parse-error-400"),
        pytest.param(_get_success, 200, id="get"),
        pytest.param(_get_without_preflight, 400, id="get-without-preflight"),
        pytest.param(_get_mutation, 405, id="get-mutation"),
        pytest.param(_malformed, 400, id="malformed"),
        pytest.param(_too_large, 413, id="too-large"),
        pytest.param(_text_plain, 415, id="text-plain"),
        pytest.param(_put, 405, id="put"),
        pytest.param(_graphiql, 200, id="graphiql"),
    ],
)
def test_every_response_is_not_stored_by_caches(client, token, send, status):
    # when
    response = send(client, token)
    # then
    assert response.status_code == status
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "no-store" in directives


APP = "https://app.example.com"
EVIL = "https://evil.example"


def cors_preflight(client, origin):
    return client.options(
        "/graphql",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
def test_cors_preflight_is_allowed_for_a_configured_origin(client, db):
    # when
    response = cors_preflight(client, APP)
    # then
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed_headers = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "apollo-require-preflight"} <= allowed_headers
    assert "POST" in response["Access-Control-Allow-Methods"]


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
@pytest.mark.parametrize("origin", [EVIL, "https://app.example.com.evil.example", "http://app.example.com", "null"])
def test_cors_preflight_is_refused_for_any_other_origin(client, db, origin):
    # when
    response = cors_preflight(client, origin)
    # then
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
def test_cors_headers_on_the_actual_request_only_for_a_configured_origin(client, user, token):
    # when
    allowed = client.post(
        "/graphql",
        json.dumps({"query": ME}),
        content_type=JSON,
        HTTP_ORIGIN=APP,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    refused = client.post(
        "/graphql",
        json.dumps({"query": ME}),
        content_type=JSON,
        HTTP_ORIGIN=EVIL,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    # then
    assert allowed["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Origin" not in refused


# --- automatic persisted queries -------------------------------------------------------------


def apq(client, digest, query=None, variables=None, version=1, **extra):
    body = {"extensions": {"persistedQuery": {"version": version, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    if variables is not None:
        body["variables"] = variables
    return post(client, json.dumps(body), **extra)


def test_a_persisted_query_is_registered_with_its_text_then_runs_from_its_hash(client, user, token):
    # given
    digest = sha256(ME)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    # when: the hash alone, before the server knows it
    unknown = apq(client, digest, **auth)
    # then
    assert_request_error(unknown, 200, RequestErrorCode.PERSISTED_QUERY_NOT_FOUND)

    # when: the query with its hash registers it and runs it
    registered = apq(client, digest, query=ME, **auth)
    # then
    assert registered.status_code == 200
    assert registered.json() == {"data": {"me": {"username": "alice"}}}

    # when: the hash alone now stands for the query
    by_hash = apq(client, digest, **auth)
    # then
    assert by_hash.status_code == 200
    assert by_hash.json() == {"data": {"me": {"username": "alice"}}}


def test_a_persisted_query_hash_is_case_insensitive(client, user, token):
    # given
    digest = sha256(ME)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert apq(client, digest.upper(), query=ME, **auth).status_code == 200
    # when
    response = apq(client, digest, **auth)
    # then
    assert response.json() == {"data": {"me": {"username": "alice"}}}


def test_a_hash_that_does_not_match_the_query_is_bad_request_and_not_stored(client, user, token):
    # given
    wrong = sha256("{ __typename }")
    # when
    response = apq(client, wrong, query=ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    # and the hash still names nothing
    assert_request_error(apq(client, wrong), 200, RequestErrorCode.PERSISTED_QUERY_NOT_FOUND)


@pytest.mark.parametrize(
    "persisted",
    [
        pytest.param({"version": 2, "sha256Hash": "0" * 64}, id="version-2"),
        pytest.param({"sha256Hash": "0" * 64}, id="no-version"),
        pytest.param({"version": 1, "sha256Hash": "abc"}, id="short-hash"),
        pytest.param({"version": 1, "sha256Hash": 12345}, id="number-hash"),
        pytest.param({"version": 1}, id="no-hash"),
        pytest.param("0" * 64, id="not-an-object"),
    ],
)
def test_a_malformed_persisted_query_extension_is_bad_request(client, db, persisted):
    # when
    body = {"query": REGISTER, "variables": REGISTER_VARIABLES, "extensions": {"persistedQuery": persisted}}
    response = post(client, json.dumps(body))
    # then
    assert_request_error(response, 400, RequestErrorCode.BAD_REQUEST)
    assert_registered_nobody()


def test_a_persisted_query_over_the_length_limit_is_refused_and_not_stored(client, db):
    # given
    query = "{ __typename }" + " " * settings.GATEHOUSE["MAX_QUERY_LENGTH"]
    digest = sha256(query)
    # when
    response = apq(client, digest, query=query)
    # then
    assert_request_error(response, 200, RequestErrorCode.QUERY_TOO_COMPLEX)
    assert_request_error(apq(client, digest), 200, RequestErrorCode.PERSISTED_QUERY_NOT_FOUND)


def test_a_persisted_mutation_still_cannot_run_over_get(client, db):
    # given: a registration persisted (and run) over POST
    digest = sha256(REGISTER)
    first = apq(client, digest, query=REGISTER, variables=REGISTER_VARIABLES)
    assert first.json()["data"]["register"]["errors"] == []
    # when: its hash is sent over GET
    variables = {"username": "trudy", "email": "trudy@example.com", "password": PASSWORD}
    response = client.get(
        "/graphql",
        {
            "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}}),
            "variables": json.dumps(variables),
        },
        **PREFLIGHT,
    )
    # then
    assert_request_error(response, 405, RequestErrorCode.METHOD_NOT_ALLOWED)
    assert list(User.objects.values_list("username", flat=True)) == ["mallory"]


def test_a_persisted_query_runs_over_get_by_hash(client, user, token):
    # given
    digest = sha256(ME)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert apq(client, digest, query=ME, **auth).status_code == 200
    # when
    response = client.get(
        "/graphql",
        {"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})},
        **auth,
        **PREFLIGHT,
    )
    # then
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"username": "alice"}}}


def test_registering_persisted_queries_never_writes_the_shared_cache(client, db):
    # given: the shared cache holds one rate-limit counter
    from django.core.cache import cache

    from schema.views import persisted_queries

    cache.set("rl:canary", 1)
    # when: far more distinct valid queries are registered than the store keeps
    for i in range(persisted_queries.size + 100):
        query = f"query Q{i} {{ __typename }}"
        assert apq(client, sha256(query), query=query).status_code == 200
    # then: nothing was written to the shared cache, and the store stayed bounded
    assert list(cache._cache) == [cache.make_key("rl:canary")]
    assert len(persisted_queries._queries) == persisted_queries.size
