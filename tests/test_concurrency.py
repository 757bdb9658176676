"""Races that only a real database with real concurrent connections can show (Postgres)."""

import re

import pytest
from django.core import mail
from django.db import connection
from django.test import RequestFactory

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import AccountToken, AccountTokenPurpose, RefreshToken, Session, SessionEndReason, User
from accounts.services import (
    password_reset,
    password_reset_request,
    refresh_token_revoke,
    refresh_token_rotate,
    session_open,
)
from accounts.tokens import refresh_token_digest
from tests.conftest import error_codes
from tests.races import post, post_in_parallel, race_with_held_transaction

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections (Postgres)"),
]


REGISTER = """
mutation($u: String!, $e: String!, $p: String!) {
  register(username: $u, email: $e, password: $p) { user { id } errors { field code } }
}
"""


def register_in_parallel(attempts: list[dict]) -> list[dict]:
    """Send every registration at once, each from its own thread and database connection."""
    return post_in_parallel([{"query": REGISTER, "variables": variables} for variables in attempts])


def test_parallel_registrations_of_one_address_in_different_cases_create_one_account():
    # given: eight clients racing for one address, typed in different cases
    emails = ["race@example.com", "RACE@example.com", "Race@Example.com", "race@EXAMPLE.COM"] * 2
    attempts = [{"u": f"racer{i}", "e": email, "p": "a-Long-passphrase-1"} for i, email in enumerate(emails)]
    # when
    results = register_in_parallel(attempts)
    # then: one winner, every other attempt a UNIQUE error on email, and no 500
    assert all(r is not None and r["status"] == 200 for r in results)
    payloads = [r["body"]["data"]["register"] for r in results]
    winners = [p for p in payloads if p["errors"] == []]
    losers = [p for p in payloads if p["errors"]]
    assert len(winners) == 1
    assert len(losers) == len(attempts) - 1
    for loser in losers:
        assert loser["user"] is None
        assert loser["errors"] == [{"field": "email", "code": UserErrorCode.UNIQUE.name}]
    assert User.objects.filter(email="race@example.com").count() == 1
    assert User.objects.count() == 1


def test_parallel_registrations_of_one_username_in_different_cases_create_one_account():
    names = ["Racer", "racer", "RACER", "rAcEr"] * 2
    attempts = [{"u": name, "e": f"racer{i}@example.com", "p": "a-Long-passphrase-1"} for i, name in enumerate(names)]
    results = register_in_parallel(attempts)
    payloads = [r["body"]["data"]["register"] for r in results]
    winners = [p for p in payloads if p["errors"] == []]
    assert len(winners) == 1
    for loser in (p for p in payloads if p["errors"]):
        assert loser["errors"] == [{"field": "username", "code": UserErrorCode.UNIQUE.name}]
    assert User.objects.count() == 1


def test_a_nul_byte_never_reaches_postgres(gql):
    # Postgres refuses NUL in text with an error whose text would leak; validation stops it first.
    body = gql(REGISTER, {"u": "nul\u0000user", "e": "nul\u0000@example.com", "p": "a-Long-passphrase-1"})
    errors = body["data"]["register"]["errors"]
    assert sorted(e["field"] for e in errors) == ["email", "username"]
    assert {e["code"] for e in errors} == {UserErrorCode.INVALID.name}
    assert User.objects.count() == 0


def test_a_registration_that_loses_the_race_at_insert_time_is_a_unique_error_not_a_500():
    # given: another transaction has inserted the address but not yet committed, so the
    # service's existence check cannot see it and only the unique index can refuse
    def insert():
        User.objects.create_user(username="first", email="late@example.com", password="a-Long-passphrase-1")

    # when: our registration runs, and is seen blocked on the unique index before the
    # other transaction commits (so the insert-time path is the one exercised)
    variables = {"u": "second", "e": "LATE@example.com", "p": "a-Long-passphrase-1"}
    response = race_with_held_transaction(
        insert, lambda: post({"query": REGISTER, "variables": variables}), lock="the unique index"
    )
    # then
    assert response["status"] == 200
    payload = response["body"]["data"]["register"]
    assert payload == {"user": None, "errors": [{"field": "email", "code": UserErrorCode.UNIQUE.name}]}
    assert list(User.objects.values_list("username", flat=True)) == ["first"]


def test_a_query_that_runs_too_long_is_cancelled_by_the_database():
    # The statement timeout cuts a runaway query off inside the request.
    from django.db import OperationalError

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "5s"
        with pytest.raises(OperationalError, match="statement timeout"):
            cursor.execute("SET LOCAL statement_timeout = 50; SELECT pg_sleep(1)")


# --- refresh-token rotation under concurrency -------------------------------------------------

REFRESH = "mutation($t: String) { refreshToken(refreshToken: $t) { token refreshToken payload } }"


def refresh_in_parallel(refresh_token: str, copies: int) -> list[dict]:
    """Present one refresh token `copies` times at once, each from its own thread and connection."""
    return post_in_parallel([{"query": REFRESH, "variables": {"t": refresh_token}}] * copies)


def test_parallel_refreshes_of_one_token_never_fork_the_session(make_user):
    # given: one session and its refresh token, presented by eight clients at once
    user = make_user()
    tokens = session_open(user=user)
    session = Session.objects.get(user=user)
    # when
    results = refresh_in_parallel(tokens.refresh_token, 8)
    # then: exactly one rotation; the rest refused inside the grace window, without harm
    assert all(r is not None and r["status"] == 200 for r in results)
    winners = [r["body"]["data"]["refreshToken"] for r in results if "errors" not in r["body"]]
    losers = [r["body"] for r in results if "errors" in r["body"]]
    assert len(winners) == 1
    assert len(losers) == 7
    assert all(error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value] for body in losers)
    assert winners[0]["payload"]["sid"] == session.id.hex
    # one live refresh token came out of it, and the session is still live
    unused = RefreshToken.objects.filter(session=session, used_at__isnull=True)
    assert unused.count() == 1
    assert RefreshToken.objects.filter(session=session).count() == 2
    session.refresh_from_db()
    assert session.revoked_at is None
    # and the winner's refresh token carries the session on
    again = refresh_in_parallel(winners[0]["refreshToken"], 1)[0]["body"]
    assert again["data"]["refreshToken"]["payload"]["sid"] == session.id.hex


def test_a_refresh_waits_for_a_concurrent_rotation_and_then_sees_the_token_used(make_user):
    # given: another transaction has rotated the token but not yet committed
    user = make_user()
    tokens = session_open(user=user)
    # when: a second refresh of the same token arrives and is seen waiting on the row lock
    result = race_with_held_transaction(
        lambda: refresh_token_rotate(refresh_token=tokens.refresh_token),
        lambda: post({"query": REFRESH, "variables": {"t": tokens.refresh_token}}),
        lock="the refresh token's row lock",
    )
    # then: it read the committed rotation, so it was refused and nothing forked
    body = result["body"]
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    session = Session.objects.get(user=user)
    assert session.revoked_at is None
    assert RefreshToken.objects.filter(session=session, used_at__isnull=True).count() == 1


def test_a_refresh_racing_a_logout_of_its_session_never_succeeds(make_user):
    # given: a logout of the session holds its locks, not yet committed
    user = make_user()
    tokens = session_open(user=user)
    # when: a refresh of the same session arrives and waits on the locks
    result = race_with_held_transaction(
        lambda: refresh_token_revoke(refresh_token=tokens.refresh_token),
        lambda: post({"query": REFRESH, "variables": {"t": tokens.refresh_token}}),
        lock="the logout's locks",
    )
    # then: it saw the session ended; no token came out for a signed-out session
    body = result["body"]
    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert body["data"] == {"refreshToken": None}
    session = Session.objects.get(user=user)
    assert session.revoked_reason == SessionEndReason.LOGOUT
    assert (
        not RefreshToken.objects.filter(session=session, used_at__isnull=True)
        .exclude(token_hash=refresh_token_digest(tokens.refresh_token))
        .exists()
    )


# --- account flows under concurrency -----------------------------------------------------------

SEND_RESET = "mutation($e: String!) { sendPasswordResetEmail(email: $e) { success } }"
CHANGE = """
mutation($o: String!, $n: String!) {
  passwordChange(oldPassword: $o, newPassword: $n) { success token errors { field code } }
}
"""


def test_parallel_reset_requests_leave_one_live_link(make_user):
    # given: an account, and six reset requests for it at once (say, several workers)
    user = make_user(email="racer@example.com")
    # when
    results = post_in_parallel([{"query": SEND_RESET, "variables": {"e": "racer@example.com"}}] * 6)
    # then: all answered alike, and only the newest link works
    assert all(result["body"] == {"data": {"sendPasswordResetEmail": {"success": True}}} for result in results)
    live = AccountToken.objects.filter(user=user, purpose=AccountTokenPurpose.RESET_PASSWORD, used_at__isnull=True)
    assert live.count() == 1


def test_a_password_change_racing_a_reset_never_overwrites_it(make_user):
    # given: a reset of alice's password holds the account's row, not yet committed, while a
    # password change authenticated with the old password is on its way
    user = make_user(email="alice@example.com", password="the-Old-passphrase-1")
    tokens = session_open(user=user)
    link = _reset_link(user)
    change = {"query": CHANGE, "variables": {"o": "the-Old-passphrase-1", "n": "the-Thiefs-passphrase-3"}}
    result = race_with_held_transaction(
        lambda: password_reset(
            request=RequestFactory().post("/graphql"), token=link, new_password="the-Reset-passphrase-2"
        ),
        lambda: post(change, token=tokens.token),
        lock="the reset's lock on the account",
    )
    # then: the change saw the reset's outcome (its session ended), and the reset's password stands
    assert error_codes(result["body"]) == [AuthErrorCode.TOKEN_REVOKED.value]
    user.refresh_from_db()
    assert user.check_password("the-Reset-passphrase-2")
    assert not user.check_password("the-Thiefs-passphrase-3")


def _reset_link(user) -> str:
    """Ask for a reset of `user` through the service; return the token of the mailed link."""
    password_reset_request(request=RequestFactory().post("/graphql"), email=user.email)
    (message,) = [message for message in mail.outbox if message.to == [user.email]]
    return re.search(r"reset-password\?token=([A-Za-z0-9_-]{43})", message.body).group(1)
