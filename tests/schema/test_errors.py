"""Top-level error codes of the GraphQL layer: parse and validation failures, introspection
and suggestions, variable coercion, operation selection, and masking of the unexpected."""

import json
import logging

import pytest
from django.conf import settings
from django.db import DatabaseError, connection
from django.test import override_settings

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
ME = "{ me { username } }"
SECRET = "secret internal detail SELECT * FROM accounts_user"


def introspection(enabled: bool):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, "INTROSPECTION": enabled})


def refused(body: dict) -> None:
    """Assert `body` is a validation failure: no data, every error GRAPHQL_VALIDATION_FAILED."""
    assert "data" not in body, body
    assert body["errors"]
    assert set(error_codes(body)) == {RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value}


def only_error(body: dict, code: RequestErrorCode) -> dict:
    """Assert `body` is a request error (no data) with exactly one error of `code`; return it."""
    assert "data" not in body, body
    assert error_codes(body) == [code.value]
    return body["errors"][0]


# --- parsing and validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ me { username }", id="unclosed"),
        pytest.param("mutation {", id="truncated"),
        pytest.param("{ me(id: ) { username } }", id="missing-value"),
        pytest.param('{ me { username } } "', id="unterminated-string"),
        pytest.param("query query query", id="keywords"),
        pytest.param("{ me { username } }\x00", id="nul"),
    ],
)
def test_a_syntax_error_is_graphql_parse_failed(gql, db, query):
    # when
    body = gql(query)
    # then
    error = only_error(body, RequestErrorCode.GRAPHQL_PARSE_FAILED)
    assert error["locations"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ me { password } }", id="private-column"),
        pytest.param("{ me { isStaff isSuperuser } }", id="private-flags"),
        pytest.param("{ users { id } }", id="unknown-root-field"),
        pytest.param("{ me }", id="missing-selection"),
        pytest.param("{ me { username { x } } }", id="selection-on-scalar"),
        pytest.param('mutation { register(username: "a", email: "b") { token } }', id="missing-argument"),
        pytest.param("query ($v: Boolean!) { __typename }", id="unused-variable"),
        pytest.param("{ me { ...F } } fragment F on Nope { id }", id="unknown-type"),
    ],
)
def test_an_invalid_document_is_graphql_validation_failed(gql, db, query):
    # when
    body = gql(query)
    # then
    refused(body)
    assert not User.objects.exists()


def test_an_unknown_field_is_one_validation_error(gql, db):
    # when
    body = gql("{ me { username nope } }")
    # then
    error = only_error(body, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    assert error["locations"] == [{"line": 1, "column": 17}]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(
            "{ me { ...A } } fragment A on User { ...B } fragment B on User { ...A }", id="two-fragment-cycle"
        ),
        pytest.param("{ me { ...A } } fragment A on User { id ...A }", id="self-cycle"),
        pytest.param("{ ...A } fragment A on Query { ...B } fragment B on Query { me { id } ...A }", id="root-cycle"),
    ],
)
@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
def test_a_fragment_cycle_is_a_validation_error(gql, db, query, accept):
    # when
    response = gql.post(query, headers={"HTTP_ACCEPT": accept})
    # then
    assert response.status_code == (200 if accept == "application/json" else 400)
    body = json.loads(response.content)
    only_error(body, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)


def test_an_unknown_fragment_is_a_validation_error(gql, db):
    # when
    body = gql("{ me { ...Nope } }")
    # then
    only_error(body, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)


def test_an_unknown_fragment_in_a_mutation_writes_nothing(gql, db):
    # when
    body = gql(REGISTER.replace("token", "token ...Nope"), REGISTER_VARIABLES)
    # then
    only_error(body, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    assert not User.objects.exists()


# --- introspection and suggestions -----------------------------------------------------------

INTROSPECTION_QUERIES = [
    pytest.param("{ __schema { types { name } } }", id="schema"),
    pytest.param('{ __type(name: "User") { name } }', id="type"),
    pytest.param("{ ...F } fragment F on Query { __schema { queryType { name } } }", id="schema-in-fragment"),
    pytest.param('{ me { id } t: __type(name: "User") { fields { name } } }', id="aliased-type"),
]


@pytest.mark.parametrize("query", INTROSPECTION_QUERIES)
def test_introspection_is_refused_when_disabled(gql, db, query):
    # when
    with introspection(False):
        body = gql(query)
    # then: one error per introspection field selected
    refused(body)
    assert "__schema" in json.dumps(body) or "__type" in json.dumps(body)


def test_introspection_works_when_enabled(gql, db):
    # when
    with introspection(True):
        schema_body = gql("{ __schema { types { name } } }")
        type_body = gql('{ __type(name: "User") { name fields { name } } }')
    # then
    assert "errors" not in schema_body
    names = {t["name"] for t in schema_body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "User", "UserError"} <= names
    assert "errors" not in type_body
    assert type_body["data"]["__type"]["name"] == "User"
    fields = {f["name"] for f in type_body["data"]["__type"]["fields"]}
    assert "password" not in fields
    assert {"id", "username", "email"} <= fields


def test_the_introspection_setting_applies_to_a_document_already_seen(gql, db):
    # given: the same text validated under both policies (documents are cached per text)
    query = "{ __schema { queryType { name } } }"
    # when
    with introspection(True):
        allowed = gql(query)
    with introspection(False):
        forbidden = gql(query)
    with introspection(True):
        allowed_again = gql(query)
    # then
    assert allowed == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    refused(forbidden)
    assert allowed_again == allowed


@pytest.mark.parametrize(
    ("query", "suggested"),
    [
        pytest.param("{ mee { id } }", "me", id="root-field"),
        pytest.param("{ me { usernme } }", "username", id="object-field"),
        pytest.param('mutation { regster(username: "a", email: "b", password: "c") { token } }', "register", id="mut"),
    ],
)
def test_field_suggestions_only_when_introspection_is_enabled(gql, db, query, suggested):
    # when
    with introspection(False):
        hidden = gql(query)
    with introspection(True):
        shown = gql(query)
    # then
    hidden_error = only_error(hidden, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    shown_error = only_error(shown, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
    assert "Did you mean" not in hidden_error["message"]
    assert f"'{suggested}'" not in hidden_error["message"]
    assert "Did you mean" in shown_error["message"]
    assert f"'{suggested}'" in shown_error["message"]


def test_an_argument_suggestion_is_hidden_when_introspection_is_disabled(gql, db):
    # given
    query = 'mutation { tokenAuth(emali: "a@example.com", password: "x") { token } }'
    # when
    with introspection(False):
        body = gql(query)
    # then
    refused(body)
    assert all("Did you mean" not in error["message"] for error in body["errors"])


@pytest.mark.parametrize("enabled", [True, False])
def test_typename_always_works(gql, user, token, enabled):
    # when
    with introspection(enabled):
        body = gql("{ __typename me { __typename username } }", token=token)
    # then
    assert body == {"data": {"__typename": "Query", "me": {"__typename": "User", "username": "alice"}}}


# --- variable coercion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "marker"),
    [
        pytest.param(12345, "12345", id="number"),
        pytest.param(98765.4321, "98765", id="float"),
        pytest.param(["hunter2-secret"], "hunter2", id="list"),
        pytest.param({"plain": "hunter2-secret"}, "hunter2", id="object"),
        pytest.param(True, "True", id="boolean"),
        pytest.param([[["hunter2-secret"]]] * 3, "hunter2", id="nested-list"),
    ],
)
def test_a_wrong_typed_variable_is_bad_user_input_and_not_echoed(gql, db, password, marker):
    # when
    response = gql.post(REGISTER, {**REGISTER_VARIABLES, "password": password})
    # then
    assert response.status_code == 200
    body = response.json()
    error = only_error(body, RequestErrorCode.BAD_USER_INPUT)
    assert "$password" in error["message"]
    assert marker not in response.content.decode()
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"username": "mallory", "email": "mallory@example.com"}, id="missing"),
        pytest.param({**REGISTER_VARIABLES, "password": None}, id="null"),
    ],
)
def test_a_missing_required_variable_is_bad_user_input(gql, db, variables):
    # when
    body = gql(REGISTER, variables)
    # then
    error = only_error(body, RequestErrorCode.BAD_USER_INPUT)
    assert "$password" in error["message"]
    assert not User.objects.exists()


def test_two_wrong_variables_are_two_bad_user_input_errors(gql, db):
    # when
    body = gql(REGISTER, {**REGISTER_VARIABLES, "username": 1, "email": ["mallory@example.com"]})
    # then
    assert "data" not in body
    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value] * 2
    assert "mallory@example.com" not in json.dumps(body)
    assert not User.objects.exists()


# --- operation selection ---------------------------------------------------------------------

TWO_OPERATIONS = "query Me { me { username } }\n" + REGISTER


def test_two_operations_without_an_operation_name_is_bad_user_input(gql, db):
    # when
    body = gql(TWO_OPERATIONS, REGISTER_VARIABLES)
    # then
    only_error(body, RequestErrorCode.BAD_USER_INPUT)
    assert not User.objects.exists()


def test_the_operation_name_selects_the_operation_to_run(gql, db):
    # when
    query_body = gql(TWO_OPERATIONS, operation_name="Me")
    # then
    assert query_body == {"data": {"me": None}}
    assert not User.objects.exists()

    # when
    mutation_body = gql(TWO_OPERATIONS, REGISTER_VARIABLES, operation_name="Register")
    # then
    assert "errors" not in mutation_body
    assert mutation_body["data"]["register"]["user"] == {"username": "mallory"}
    assert list(User.objects.values_list("username", flat=True)) == ["mallory"]


@pytest.mark.parametrize("operation_name", ["Nope", "me", "register", "register Register"])
def test_an_unknown_operation_name_is_bad_user_input(gql, db, operation_name):
    # when
    body = gql(TWO_OPERATIONS, REGISTER_VARIABLES, operation_name=operation_name)
    # then
    only_error(body, RequestErrorCode.BAD_USER_INPUT)
    assert not User.objects.exists()


def test_an_operation_name_for_a_single_anonymous_operation_is_bad_user_input(gql, db):
    # when
    body = gql(ME, operation_name="Me")
    # then
    only_error(body, RequestErrorCode.BAD_USER_INPUT)


# --- masking of unexpected exceptions --------------------------------------------------------


def assert_masked(response) -> dict:
    """Assert the one error in `response` is a generic INTERNAL_SERVER_ERROR; return it."""
    assert response.status_code == 200
    text = response.content.decode()
    for leak in ("secret", "SELECT", "Traceback", "RuntimeError", "DatabaseError", "accounts_user", ".py"):
        assert leak not in text
    body = response.json()
    assert error_codes(body) == [RequestErrorCode.INTERNAL_SERVER_ERROR.value]
    return body


def fail_on(statement: str, exception: Exception):
    """Return a database execute wrapper that raises `exception` on SQL starting with `statement`."""

    def wrapper(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(statement):
            raise exception
        return execute(sql, params, many, context)

    return wrapper


def test_an_unexpected_exception_in_a_resolver_is_masked_and_logged(gql, user, token, caplog):
    # given: something unforeseen breaks while `me` loads the viewer
    # when
    with caplog.at_level(logging.ERROR), connection.execute_wrapper(fail_on("SELECT", RuntimeError(SECRET))):
        response = gql.post(ME, token=token)
    # then
    body = assert_masked(response)
    assert body["data"] == {"me": None}
    assert body["errors"][0]["path"] == ["me"]
    assert "locations" not in body["errors"][0]
    logged = [record for record in caplog.records if record.exc_info and record.exc_info[0] is RuntimeError]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert str(logged[0].exc_info[1]) == SECRET


def test_a_mutation_that_fails_half_way_is_masked_and_leaves_no_partial_write(gql, db, caplog):
    # given: the account row is inserted, then recording the sign-in fails
    # when
    with caplog.at_level(logging.ERROR), connection.execute_wrapper(fail_on("UPDATE", RuntimeError(SECRET))):
        response = gql.post(REGISTER, REGISTER_VARIABLES)
    # then: the insert was rolled back with the rest of the service's transaction
    body = assert_masked(response)
    assert body["data"] == {"register": None}
    assert not User.objects.exists()
    assert any(record.exc_info and str(record.exc_info[1]) == SECRET for record in caplog.records)


def test_a_database_failure_is_masked_like_any_other_error(gql, user, token, caplog):
    # given: the database fails on the query that loads the viewer
    failure = DatabaseError('relation "accounts_user" does not exist: SELECT * FROM accounts_user')
    # when
    with caplog.at_level(logging.ERROR), connection.execute_wrapper(fail_on("SELECT", failure)):
        response = gql.post(ME, token=token)
    # then
    body = assert_masked(response)
    assert body["data"] == {"me": None}
    assert any(record.exc_info and record.exc_info[0] is DatabaseError for record in caplog.records)

    # and the generic message is the same whatever failed
    with connection.execute_wrapper(fail_on("SELECT", RuntimeError(SECRET))):
        other = assert_masked(gql.post(ME, token=token))
    assert other["errors"][0]["message"] == body["errors"][0]["message"]


SECRET_PASSWORD = "hunter2-Secret-value"


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param(f'{{s: "{SECRET_PASSWORD}"}}', id="object"),
        pytest.param(f'["{SECRET_PASSWORD}"]', id="list"),
        pytest.param("hunter2_Secret_value", id="enum-like-name"),
    ],
)
def test_a_wrongly_typed_literal_is_refused_without_echoing_it(gql, db, literal):
    # when
    body = gql(f'mutation {{ tokenAuth(email: "a@example.com", password: {literal}) {{ token }} }}')
    # then
    assert error_codes(body) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]
    assert "hunter2" not in json.dumps(body)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(
            f'mutation {{ tokenAuth(email: "a@example.com", password: "{SECRET_PASSWORD}" {{ token }} }}',
            id="missing-parenthesis",
        ),
        pytest.param(
            f'mutation {{ tokenAuth(email: "a@example.com" password: {SECRET_PASSWORD} hunter2) }}', id="bare-words"
        ),
        pytest.param('mutation { tokenAuth(email: "a@example.com", password: "hunter2-Secret-value', id="unterminated"),
    ],
)
def test_a_syntax_error_does_not_quote_the_document_back(gql, db, document):
    body = gql(document)
    assert error_codes(body) == [RequestErrorCode.GRAPHQL_PARSE_FAILED.value]
    assert "hunter2" not in json.dumps(body)
