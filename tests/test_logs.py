"""Passwords and tokens never reach the logs, whatever happens to a request."""

import io
import logging
import sys
import unicodedata

import pytest
from django.db import connection
from django.test import Client, override_settings

from accounts.services import session_open
from config.logs import CONTINUATION, EscapingFormatter, escape_controls
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


# Escaped control characters and one line per client error (config/logs.py): what the
# console handler configured by LOGGING writes. The live server's logs are checked in
# tests/test_log_forging.py.
FORGED = '203.0.113.66 "POST /graphql" 200 1234 5ms'
# Characters a log viewer or terminal may take for a line break or a control sequence.
UNSAFE = [chr(code) for code in (*range(0x20), *range(0x7F, 0xA0))] + [
    "\u061c",
    "\u200e",
    "\u200f",
    "\u2028",
    "\u2029",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]


@pytest.fixture
def console():
    """What the console handler configured by LOGGING writes, captured in a buffer."""
    handler = next(
        handler for handler in logging.getLogger().handlers if isinstance(handler.formatter, EscapingFormatter)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def records(output: str) -> list[str]:
    return [line for line in output.split("\n")[:-1] if not line.startswith(CONTINUATION)]


@pytest.mark.parametrize("char", UNSAFE, ids=lambda char: f"U+{ord(char):04X}")
def test_every_control_and_line_separator_is_escaped(char):
    # when
    escaped = escape_controls(f"a{char}b")
    # then: one line, the character shown as a backslash escape
    assert char not in escaped
    assert escaped.startswith("a\\")
    assert escaped.endswith("b")
    assert escaped.splitlines() == [escaped]
    assert escape_controls(escaped) == escaped


def test_printable_text_is_left_as_it_is():
    text = "Zoë 日本 ✓ 'single' \"double\" back\\slash"
    assert escape_controls(text) == text
    assert escape_controls("\n\r\t\x1b\x85\u2028") == "\\n\\r\\t\\x1b\\x85\\u2028"


def test_a_forged_path_is_one_escaped_warning_line(client, db, console):
    # when
    response = client.get("/x%0a" + FORGED.replace(" ", "%20").replace('"', "%22"))
    # then
    assert response.status_code == 404
    (line,) = console.getvalue().splitlines()
    assert " WARNING django.request Not Found: /x\\n203.0.113.66 " in line


def test_a_disallowed_host_is_one_warning_line_without_a_traceback(db, console):
    # when
    response = Client(HTTP_HOST="evil.example").get("/graphql")
    # then
    assert response.status_code == 400
    (line,) = console.getvalue().splitlines()
    assert " WARNING django.security.DisallowedHost Invalid HTTP_HOST header: 'evil.example'." in line


def test_too_many_form_fields_is_one_warning_line_without_a_traceback(client, db, console):
    # when
    response = client.post("/admin/login/", {f"field{n}": "x" for n in range(1_100)})
    # then
    assert response.status_code == 400
    (line,) = console.getvalue().splitlines()
    assert " WARNING django.security.TooManyFieldsSent " in line


def test_a_client_error_follows_the_level_of_its_logger(db, console):
    # given: an operator silences warnings of the security logger
    logger = logging.getLogger("django.security")
    level = logger.level
    logger.setLevel(logging.ERROR)
    # when
    try:
        response = Client(HTTP_HOST="evil.example").get("/graphql")
    finally:
        logger.setLevel(level)
    # then: the ERROR Django gives the record does not carry it past that choice as a WARNING
    assert response.status_code == 400
    assert console.getvalue() == ""


def test_a_server_error_keeps_its_error_and_traceback(db, console):
    # when
    with override_settings(ROOT_URLCONF="tests.urls_faults"):
        response = Client(HTTP_HOST="localhost", raise_request_exception=False).get("/crash")
    # then: one ERROR record, the traceback on continuation lines under it
    assert response.status_code == 500
    output = console.getvalue()
    (line,) = records(output)
    assert " ERROR django.request Internal Server Error: /crash" in line
    assert f"\n{CONTINUATION}Traceback (most recent call last):\n" in output
    assert f"\n{CONTINUATION}RuntimeError: secret internal detail" in output


def test_exception_text_cannot_start_a_line_of_its_own(console):
    # when: an exception's message carries client input with line breaks
    try:
        raise ValueError(f"bad value x\n{FORGED}\r\x1b[2J\u2028")
    except ValueError:
        logging.getLogger("schema.errors").exception("Unexpected error")
    # then: the record is one line; the traceback lines are marked, their controls escaped
    output = console.getvalue()
    (line,) = records(output)
    assert line.endswith(" ERROR schema.errors Unexpected error")
    assert f"\n{CONTINUATION}{FORGED}\\r\\x1b[2J\\u2028\n" in output
    assert output.splitlines() == output.split("\n")[:-1]


def test_every_format_character_is_escaped_so_no_text_hides_in_a_line():
    # Zero-width spaces, the BOM, the soft hyphen, bidi controls: all of Unicode's Cf.
    hidden = [chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"]
    assert hidden
    escaped = [escape_controls(f"a{char}b") for char in hidden]
    assert [text for text in escaped if not text.startswith("a\\")] == []
    assert escape_controls("Ünïcödé text, 日本語") == "Ünïcödé text, 日本語"
