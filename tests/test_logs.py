"""Passwords and tokens never reach the logs, whatever happens to a request."""

import logging

import pytest
from django.db import connection

from accounts.services import session_open
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD

REGISTER = """
mutation($u: String!, $e: String!, $p: String!) {
  register(username: $u, email: $e, password: $p) { token errors { field code } }
}
"""
LOGIN = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"
SECRET_PASSWORD = "Log-Canary-Passphrase-91"


def crash_on_update(execute, sql, params, many, context):
    # A fault after the password was hashed, so that the error path logs with the request around.
    if sql.lstrip().upper().startswith("UPDATE"):
        raise RuntimeError("sign-in recording failed")
    return execute(sql, params, many, context)


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_no_password_or_token_in_the_logs_of_any_outcome(gql, make_user, everything_logged):
    # given
    user = make_user(email="canary@example.com", password=SECRET_PASSWORD)
    token = session_open(user=user).token
    # when: successes, refusals, a forged token, a crash and malformed input
    issued = gql(LOGIN, {"e": "canary@example.com", "p": SECRET_PASSWORD})["data"]["tokenAuth"]["token"]
    gql(LOGIN, {"e": "canary@example.com", "p": SECRET_PASSWORD + "-wrong"})
    gql(LOGIN, {"e": "nobody@example.com", "p": SECRET_PASSWORD})
    gql(REGISTER, {"u": "canary2", "e": "canary@example.com", "p": SECRET_PASSWORD})
    gql(REGISTER, {"u": "c", "e": "c@example.com", "p": "123"})
    gql("{ me { id } }", token=token)
    gql("{ me { id } }", token=token[:-3] + "abc")
    gql(LOGIN, {"e": "canary@example.com", "p": 12345})
    with connection.execute_wrapper(crash_on_update):
        crashed = gql(LOGIN, {"e": "canary@example.com", "p": SECRET_PASSWORD})
    # then: the crash was logged, and nothing secret was
    assert crashed["errors"][0]["extensions"]["code"] == RequestErrorCode.INTERNAL_SERVER_ERROR.value
    assert any(record.levelno == logging.ERROR for record in everything_logged.records)
    logged = everything_logged.text + "".join(str(record.__dict__) for record in everything_logged.records)
    for secret in (SECRET_PASSWORD, token, issued, token.split(".")[2], issued.split(".")[2], PASSWORD):
        assert secret not in logged
