"""Password reset and password change over HTTP, with the locmem mailbox.

`sendPasswordResetEmail` must not tell who has an account (byte-identical answers, the
same SQL but for the token row, one rate limit for every recipient); `passwordReset`
links are one-time and bound to the password they were sent for; `passwordChange`
checks the old password, runs the validators and ends every other session. Each case
checks the answer and what was (or was not) written.

Account mail (and, for reset requests, the lookup and the token) happens when the
request's transaction commits. Inside a test's transaction nothing commits, so `gql` here
runs each request's after-commit work when the request ends, as the commit would (with
GATEHOUSE["EMAIL_ASYNC"] off, in the same thread: the mail is in the outbox when the
response arrives). The tests marked `transaction=True` commit for real, to show the
emulation changes nothing.
"""

import hashlib
import json
import re
import secrets
from collections import Counter
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import (
    AccountToken,
    AccountTokenPurpose,
    AuthEvent,
    AuthEventKind,
    RefreshToken,
    Session,
    SessionEndReason,
    User,
)
from accounts.services import password_set
from tests.conftest import PASSWORD, GraphQLClient, error_codes
from tests.hashers import CountingMD5PasswordHasher

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-Brand-new-passphrase-42"
OTHER_PASSWORD = "Yet-another-passphrase-77"

SEND_RESET = """
mutation SendReset($email: String!) {
  sendPasswordResetEmail(email: $email) { success errors { field message code } }
}
"""
RESET = """
mutation Reset($token: String!, $newPassword: String!) {
  passwordReset(token: $token, newPassword: $newPassword) { success errors { field message code } }
}
"""
CHANGE = """
mutation Change($oldPassword: String!, $newPassword: String!) {
  passwordChange(oldPassword: $oldPassword, newPassword: $newPassword) {
    success errors { field message code } token refreshToken refreshExpiresIn payload
  }
}
"""
TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken payload }
}
"""
REFRESH = """
mutation Refresh($refreshToken: String) {
  refreshToken(refreshToken: $refreshToken) { token refreshToken payload }
}
"""
REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) { errors { field code } }
}
"""
VERIFY_ACCOUNT = (
    "mutation Verify($token: String!) { verifyAccount(token: $token) { success errors { field message code } } }"
)
ME = "{ me { username isEmailVerified } }"

RESET_LINK = re.compile(r"https://app\.example\.com/reset-password\?token=([A-Za-z0-9_-]+)")
ACTIVATE_LINK = re.compile(r"https://app\.example\.com/activate\?token=([A-Za-z0-9_-]+)")


# --- helpers ---------------------------------------------------------------------------------


class CommittingGraphQLClient(GraphQLClient):
    """The shared GraphQL client; each request's on-commit work runs when the request ends."""

    def __init__(self, client, capture_on_commit):
        super().__init__(client)
        self.capture_on_commit = capture_on_commit

    def post(self, *args, **kwargs):
        with self.capture_on_commit(execute=True):
            return super().post(*args, **kwargs)


@pytest.fixture
def gql(client, django_capture_on_commit_callbacks):
    return CommittingGraphQLClient(client, django_capture_on_commit_callbacks)


def sign_in(gql, email="alice@example.com", password=PASSWORD, agent="Device/1.0") -> dict:
    body = gql(TOKEN_AUTH, {"email": email, "password": password}, headers={"HTTP_USER_AGENT": agent})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def sign_in_codes(gql, email="alice@example.com", password=PASSWORD) -> list[str]:
    return error_codes(gql(TOKEN_AUTH, {"email": email, "password": password}))


def me_codes(gql, token) -> list[str]:
    return error_codes(gql(ME, token=token))


def refresh(gql, refresh_token) -> dict:
    return gql(REFRESH, {"refreshToken": refresh_token})


def request_reset(gql, email, **kwargs) -> dict:
    return gql(SEND_RESET, {"email": email}, **kwargs)


def link_token(message, pattern=RESET_LINK) -> str:
    """Return the token of the one link in a mail; the HTML part must carry the same link."""
    tokens = pattern.findall(message.body)
    assert len(tokens) == 1, message.body
    token = tokens[0]
    assert len(token) == 43
    html = [content for content, mimetype in message.alternatives if mimetype == "text/html"]
    assert len(html) == 1
    assert pattern.findall(html[0]) == [token]
    return token


def ask_reset_token(gql, email="alice@example.com") -> str:
    """Request a reset over HTTP and return the token of the one mail it sent."""
    before = len(mail.outbox)
    body = request_reset(gql, email)
    assert body == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}}, body
    assert len(mail.outbox) == before + 1
    return link_token(mail.outbox[-1])


def reset(gql, token, new_password=NEW_PASSWORD) -> dict:
    body = gql(RESET, {"token": token, "newPassword": new_password})
    assert "errors" not in body, body
    return body["data"]["passwordReset"]


def change(gql, access_token, old_password=PASSWORD, new_password=NEW_PASSWORD) -> dict:
    return gql(CHANGE, {"oldPassword": old_password, "newPassword": new_password}, token=access_token)


def field_errors(payload: dict) -> list[tuple[str | None, str]]:
    for error in payload["errors"]:
        assert error["message"]
    return [(error["field"], error["code"]) for error in payload["errors"]]


def invalid_token(payload: dict) -> bool:
    return payload == {
        "success": False,
        "errors": [
            {"field": "token", "message": payload["errors"][0]["message"], "code": UserErrorCode.INVALID_TOKEN.name}
        ],
    }


def reset_rows(user) -> list[dict]:
    return list(AccountToken.objects.filter(user=user, purpose=AccountTokenPurpose.RESET_PASSWORD).values())


def state(user) -> tuple:
    """What a refused request must leave as it was: the account, its sessions and its tokens."""
    return (
        User.objects.filter(pk=user.pk).values().first(),
        list(Session.objects.filter(user=user).order_by("pk").values()),
        list(RefreshToken.objects.filter(session__user=user).order_by("pk").values()),
        list(AccountToken.objects.filter(user=user).order_by("pk").values()),
    )


def events(kind, **filters) -> list[AuthEvent]:
    return list(AuthEvent.objects.filter(kind=kind, **filters).order_by("pk"))


def statement_shapes(queries) -> Counter:
    """The captured SQL with its values blanked: what differs only by the email or id is equal."""
    shapes = Counter()
    for query in queries.captured_queries:
        sql = re.sub(r'"s\d+_x\d+"', "SP", query["sql"])  # savepoint names are numbered
        sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
        sql = re.sub(r"\b(?:NULL|\d+(?:\.\d+)?)\b", "?", sql)
        shapes[sql] += 1
    return shapes


@pytest.fixture
def dora(make_user):
    """An account whose username and email are distinct, long words: similarity is testable per field."""
    return make_user(username="marmaladefox", email="quartz.lighthouse@example.org")


@pytest.fixture
def counting_hasher():
    with override_settings(PASSWORD_HASHERS=["tests.hashers.CountingMD5PasswordHasher"]):
        yield CountingMD5PasswordHasher


WEAK_PASSWORDS = [
    ("Ab1!x", UserErrorCode.PASSWORD_TOO_SHORT),
    ("password123", UserErrorCode.PASSWORD_TOO_COMMON),
    ("73915028461", UserErrorCode.PASSWORD_ENTIRELY_NUMERIC),
    ("x" * 1025, UserErrorCode.PASSWORD_TOO_LONG),
    ("", UserErrorCode.REQUIRED),
]
WEAK_IDS = ["too-short", "common", "numeric", "over-1024", "empty"]


# --- 1. sendPasswordResetEmail: the same answer for everyone ---------------------------------


def test_reset_request_answers_byte_identically_whoever_is_asked_about(gql, user, make_user):
    # given: an active account, an inactive one, and addresses nobody has
    make_user(username="ivan", email="inactive@example.com", is_active=False)
    asked = [
        "alice@example.com",
        "ALICE@Example.COM",
        "  alice@example.com ",
        "nobody@example.com",
        "NoBody@EXAMPLE.com",
        "inactive@example.com",
        "Inactive@Example.Com",
    ]
    # when
    responses = [gql.post(SEND_RESET, {"email": email}) for email in asked]
    # then: status, headers and body are the same bytes for every one of them
    first = responses[0]
    assert first.status_code == 200
    assert json.loads(first.content) == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}}
    for email, response in zip(asked, responses, strict=True):
        assert response.status_code == first.status_code, email
        assert response.content == first.content, email
        assert sorted(response.headers.items()) == sorted(first.headers.items()), email


@pytest.mark.django_db(transaction=True)
def test_reset_mail_goes_only_to_the_active_account(gql, user, make_user):
    make_user(username="ivan", email="inactive@example.com", is_active=False)

    for email in ("nobody@example.com", "inactive@example.com", "ALICE@Example.COM"):
        assert request_reset(gql, email)["data"]["sendPasswordResetEmail"]["success"] is True

    # Only the active account got a mail, at its stored (lowercase) address.
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert message.subject == "Reset your password"
    assert "alice" in message.body
    token = link_token(message)
    # Only a digest is stored, for the active account only.
    rows = list(AccountToken.objects.all())
    assert len(rows) == 1
    assert rows[0].user_id == user.pk
    assert rows[0].purpose == AccountTokenPurpose.RESET_PASSWORD
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0].email == "alice@example.com"
    assert rows[0].used_at is None
    assert rows[0].expires_at - rows[0].created_at == timedelta(seconds=3600)


def test_reset_mail_states_the_links_lifetime(gql, user):
    # PASSWORD_RESET_TOKEN_LIFETIME is one hour: the mail should say so, not "59 minutes".
    ask_reset_token(gql)

    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    for text in (message.body, html):
        assert "expires in 1 hour" in text.replace("\xa0", " ")


def test_reset_request_runs_the_same_sql_but_for_the_token_row(gql, user, make_user):
    make_user(username="ivan", email="inactive@example.com", is_active=False)
    # A first request, so that the measured one for alice replaces an existing token like a repeat would.
    request_reset(gql, "alice@example.com")

    captured = {}
    for email in ("alice@example.com", "nobody@example.com", "inactive@example.com"):
        with CaptureQueriesContext(connection) as queries:
            request_reset(gql, email)
        captured[email] = statement_shapes(queries)

    # With EMAIL_ASYNC off the after-commit work runs inside the request, so everything is
    # captured (in production it runs after the response, and the request's own work is
    # the same for every address). The only difference allowed, and the only one there
    # is, is issuing the link for an address with an active account: the account row is
    # locked (so two requests never leave two live links), its older reset tokens are
    # deleted and the new one inserted. The user lookup and the audit-trail insert are
    # the same statements for everyone (values blanked).
    known, unknown, inactive = captured.values()
    assert inactive == unknown
    extra = known - unknown
    assert unknown - known == Counter()
    assert sum(extra.values()) == 3, extra
    assert sorted(sql.split()[0] for sql in extra) == ["DELETE", "INSERT", "SELECT"], extra
    token_table = AccountToken._meta.db_table
    assert [sql for sql in extra if token_table not in sql] == [
        sql for sql in extra if sql.startswith("SELECT") and '"accounts_user"' in sql
    ], extra
    assert sum(known.values()) == sum(unknown.values()) + 3


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("not-an-email", UserErrorCode.INVALID),
        ("alice@", UserErrorCode.INVALID),
        ("@example.com", UserErrorCode.INVALID),
        ("alice\x00@example.com", UserErrorCode.INVALID),
        ("", UserErrorCode.REQUIRED),
        ("   ", UserErrorCode.REQUIRED),
        ("a" * 250 + "@example.com", UserErrorCode.TOO_LONG),
    ],
    ids=["no-at", "no-domain", "no-local", "nul", "empty", "blank", "too-long"],
)
def test_a_malformed_address_is_a_field_error_and_writes_nothing(gql, user, email, code):
    body = request_reset(gql, email)

    assert "errors" not in body, body
    payload = body["data"]["sendPasswordResetEmail"]
    assert payload["success"] is False
    assert field_errors(payload) == [("email", code.name)]
    assert mail.outbox == []
    assert not AccountToken.objects.exists()
    assert not AuthEvent.objects.exists()


def test_the_per_recipient_limit_treats_unknown_addresses_exactly_like_accounts(gql, user, make_user, settings):
    # given: two reset mails per recipient per hour
    settings.GATEHOUSE = {**settings.GATEHOUSE, "ACCOUNT_EMAIL_RATE_PER_RECIPIENT": (2, 3600)}
    bodies = {}
    # when: three requests for an account and for an unknown address, in case variants
    for email in ("alice@example.com", "nobody@example.com"):
        local, domain = email.split("@")
        variants = (email, email.upper(), f"{local.title()}@{domain}")
        bodies[email] = [request_reset(gql, variant) for variant in variants]
    # then: both are allowed twice, then refused the same way
    for email, (first, second, third) in bodies.items():
        assert first == second == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}}, email
        assert error_codes(third) == [AuthErrorCode.RATE_LIMITED.value], email
        assert third["data"] == {"sendPasswordResetEmail": None}
        assert 0 < third["errors"][0]["extensions"]["retryAfter"] <= 3600

    # The same refusal, but for retryAfter (the window's remaining seconds may tick between the two).
    for body in (bodies["alice@example.com"][2], bodies["nobody@example.com"][2]):
        body["errors"][0]["extensions"].pop("retryAfter")
    assert bodies["alice@example.com"][2] == bodies["nobody@example.com"][2]
    # Only the two allowed requests for alice mailed; the limit is per recipient, not global.
    assert [m.to for m in mail.outbox] == [["alice@example.com"], ["alice@example.com"]]
    assert request_reset(gql, "carol@example.com")["data"]["sendPasswordResetEmail"]["success"] is True


def test_reset_requests_are_audited_with_the_identifier_and_never_say_more(gql, user, make_user):
    make_user(username="ivan", email="inactive@example.com", is_active=False)

    request_reset(gql, "Alice@Example.com", headers={"HTTP_USER_AGENT": "Probe/1"})
    request_reset(gql, "NoBody@example.com", headers={"HTTP_USER_AGENT": "Probe/1"})
    request_reset(gql, "inactive@example.com", headers={"HTTP_USER_AGENT": "Probe/1"})

    recorded = events(AuthEventKind.PASSWORD_RESET_REQUESTED)
    assert [(e.identifier, e.user_id, e.user_ref, e.detail) for e in recorded] == [
        ("alice@example.com", user.pk, user.pk, ""),
        ("nobody@example.com", None, None, "no such account"),
        ("inactive@example.com", None, None, "no such account"),
    ]
    assert {(e.ip_address, e.user_agent) for e in recorded} == {("127.0.0.1", "Probe/1")}


# --- 2. passwordReset ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_reset_sets_the_password_and_ends_every_session(gql, user):
    # given: two signed-in devices and a reset link
    phone, laptop = sign_in(gql, agent="Phone"), sign_in(gql, agent="Laptop")
    token = ask_reset_token(gql)
    # when
    payload = reset(gql, token)
    # then: done, and only the new password signs in
    assert payload == {"success": True, "errors": []}
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert sign_in_codes(gql, password=PASSWORD) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    # every earlier session is over: access and refresh tokens alike
    for tokens in (phone, laptop):
        assert me_codes(gql, tokens["token"]) == [AuthErrorCode.TOKEN_REVOKED.value]
        assert error_codes(refresh(gql, tokens["refreshToken"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    ended = Session.objects.filter(user=user)
    assert ended.count() == 2
    assert set(ended.values_list("revoked_reason", flat=True)) == {SessionEndReason.PASSWORD_RESET}
    assert not ended.filter(revoked_at__isnull=True).exists()
    fresh = sign_in(gql, password=NEW_PASSWORD)
    assert gql(ME, token=fresh["token"])["data"]["me"]["username"] == "alice"


def test_a_reset_link_works_only_once(gql, user):
    token = ask_reset_token(gql)
    assert reset(gql, token) == {"success": True, "errors": []}
    fresh = sign_in(gql, password=NEW_PASSWORD)
    before = state(user)

    again = reset(gql, token, OTHER_PASSWORD)

    assert invalid_token(again), again
    assert state(user) == before
    assert gql(ME, token=fresh["token"])["data"]["me"]["username"] == "alice"
    assert AccountToken.objects.get(user=user).used_at is not None


def test_a_reset_marks_the_email_verified(gql, user):
    assert user.is_email_verified is False
    token = ask_reset_token(gql)

    reset(gql, token)

    user.refresh_from_db()
    assert user.is_email_verified is True


def test_a_password_change_kills_an_earlier_reset_link(gql, user):
    token = ask_reset_token(gql)
    session = sign_in(gql)
    assert change(gql, session["token"])["data"]["passwordChange"]["success"] is True
    before = state(user)

    payload = reset(gql, token, OTHER_PASSWORD)

    assert invalid_token(payload), payload
    assert state(user) == before
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_password_changed_and_changed_back_still_kills_the_link(gql, user):
    # Bound to the password hash (salted), not the password: going back does not revive it.
    token = ask_reset_token(gql)
    session = sign_in(gql)
    changed = change(gql, session["token"])["data"]["passwordChange"]
    change(gql, changed["token"], NEW_PASSWORD, PASSWORD)

    assert invalid_token(reset(gql, token, OTHER_PASSWORD))
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_an_administrators_password_set_kills_an_earlier_reset_link(gql, user):
    token = ask_reset_token(gql)
    password_set(user=User.objects.get(pk=user.pk), password=OTHER_PASSWORD)

    assert invalid_token(reset(gql, token))
    user.refresh_from_db()
    assert user.check_password(OTHER_PASSWORD)
    assert not user.check_password(NEW_PASSWORD)


def test_a_newer_reset_request_kills_the_older_link(gql, user):
    older = ask_reset_token(gql)
    newer = ask_reset_token(gql)
    assert older != newer

    assert invalid_token(reset(gql, older))
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert reset(gql, newer) == {"success": True, "errors": []}


def test_an_expired_reset_link_is_dead(gql, user):
    token = ask_reset_token(gql)
    AccountToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = state(user)

    assert invalid_token(reset(gql, token))
    assert state(user) == before


def test_a_reset_link_works_until_it_expires(gql, user):
    token = ask_reset_token(gql)
    # given: a link issued 59 minutes ago
    AccountToken.objects.filter(user=user).update(
        created_at=timezone.now() - timedelta(minutes=59), expires_at=timezone.now() + timedelta(minutes=1)
    )

    assert reset(gql, token) == {"success": True, "errors": []}


@pytest.mark.parametrize(("password", "code"), WEAK_PASSWORDS, ids=WEAK_IDS)
def test_reset_runs_the_validators_writes_nothing_and_keeps_the_link(gql, user, password, code):
    session = sign_in(gql)
    token = ask_reset_token(gql)
    before = state(user)

    body = gql(RESET, {"token": token, "newPassword": password})

    assert "errors" not in body, body
    payload = body["data"]["passwordReset"]
    assert payload["success"] is False
    assert field_errors(payload) == [("newPassword", code.name)]
    assert token not in json.dumps(body)
    assert state(user) == before
    assert not events(AuthEventKind.PASSWORD_RESET)
    # nothing was used up: the session lives and the link still works with a good password
    assert gql(ME, token=session["token"])["data"]["me"]["username"] == "alice"
    assert reset(gql, token) == {"success": True, "errors": []}


@pytest.mark.parametrize(
    "password", ["Marmaladefox1", "quartz.lighthouse!"], ids=["similar-to-username", "similar-to-email"]
)
def test_reset_refuses_a_password_like_the_accounts_own_names(gql, dora, password):
    token = ask_reset_token(gql, "quartz.lighthouse@example.org")
    before = state(dora)

    payload = reset(gql, token, password)

    assert field_errors(payload) == [("newPassword", UserErrorCode.PASSWORD_TOO_SIMILAR.name)]
    assert state(dora) == before
    assert reset(gql, token) == {"success": True, "errors": []}


def test_a_verification_token_cannot_reset_a_password(gql, db):
    # given: a new account and the activation link it was mailed
    body = gql(REGISTER, {"username": "carol", "email": "carol@example.com", "password": PASSWORD})
    assert body["data"]["register"]["errors"] == [], body
    carol = User.objects.get(username="carol")
    activation = link_token(mail.outbox[-1], ACTIVATE_LINK)
    before = state(carol)
    # when
    payload = reset(gql, activation)
    # then
    assert invalid_token(payload), payload
    assert state(carol) == before
    carol.refresh_from_db()
    assert carol.check_password(PASSWORD)


def test_a_reset_token_cannot_verify_an_email(gql, user):
    token = ask_reset_token(gql)
    before = state(user)

    body = gql(VERIFY_ACCOUNT, {"token": token})

    assert body["data"]["verifyAccount"]["success"] is False
    assert field_errors(body["data"]["verifyAccount"]) == [("token", UserErrorCode.INVALID_TOKEN.name)]
    assert state(user) == before
    assert reset(gql, token) == {"success": True, "errors": []}


def test_an_inactive_accounts_reset_link_is_refused(gql, user):
    session = sign_in(gql)
    token = ask_reset_token(gql)
    User.objects.filter(pk=user.pk).update(is_active=False)
    before = state(user)

    assert invalid_token(reset(gql, token))
    assert state(user) == before
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert me_codes(gql, session["token"]) == [AuthErrorCode.TOKEN_REVOKED.value]


@pytest.mark.parametrize(
    "make_token",
    [
        lambda tokens: "",
        lambda tokens: "   ",
        lambda tokens: "abc",
        lambda tokens: "A" * 42,
        lambda tokens: "A" * 44,
        lambda tokens: "!" * 43,
        lambda tokens: secrets.token_urlsafe(32),
        lambda tokens: tokens["reset"] + "\n",
        lambda tokens: " " + tokens["reset"],
        lambda tokens: tokens["reset"][:-1] + ("A" if tokens["reset"][-1] != "A" else "B"),
        lambda tokens: tokens["refreshToken"],
        lambda tokens: tokens["token"],
        lambda tokens: hashlib.sha256(tokens["reset"].encode()).hexdigest(),
        lambda tokens: "A" * 20_000,
    ],
    ids=[
        "empty",
        "blank",
        "short",
        "42-chars",
        "44-chars",
        "not-base64url",
        "never-issued",
        "trailing-newline",
        "leading-space",
        "one-char-off",
        "a-refresh-token",
        "an-access-token",
        "the-stored-digest",
        "huge",
    ],
)
def test_a_malformed_or_foreign_token_is_invalid_and_changes_nothing(gql, user, make_token):
    session = sign_in(gql)
    reset_token = ask_reset_token(gql)
    presented = make_token({**session, "reset": reset_token})
    before = state(user)

    body = gql(RESET, {"token": presented, "newPassword": NEW_PASSWORD})

    assert "errors" not in body, body
    assert invalid_token(body["data"]["passwordReset"]), body
    assert state(user) == before
    if presented.strip():
        assert presented.strip() not in json.dumps(body)
    # the real link is unharmed
    assert reset(gql, reset_token) == {"success": True, "errors": []}


def test_guessing_reset_tokens_is_limited_per_client_address(gql, user, settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "ACCOUNT_TOKEN_RATE_PER_ADDRESS": (2, 3600)}
    token = ask_reset_token(gql)
    for _ in range(2):
        assert invalid_token(reset(gql, secrets.token_urlsafe(32)))
    before = state(user)

    body = gql(RESET, {"token": token, "newPassword": NEW_PASSWORD})

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert body["data"] == {"passwordReset": None}
    assert state(user) == before


def test_a_reset_is_audited(gql, user):
    sign_in(gql)
    sign_in(gql)
    token = ask_reset_token(gql)

    reset(gql, token)

    [done] = events(AuthEventKind.PASSWORD_RESET)
    assert (done.user_id, done.user_ref) == (user.pk, user.pk)
    [ended] = events(AuthEventKind.SESSIONS_ENDED)
    assert ended.user_id == user.pk
    assert ended.detail == f"{SessionEndReason.PASSWORD_RESET}: 2"


# --- 3. passwordChange -----------------------------------------------------------------------


def test_password_change_needs_a_signed_in_user(gql, user):
    before = state(user)

    body = change(gql, None)

    assert error_codes(body) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert body["data"] == {"passwordChange": None}
    assert state(user) == before


def test_password_change_with_a_revoked_token_is_refused(gql, user):
    ended, other = sign_in(gql), sign_in(gql)
    Session.objects.filter(pk=ended["payload"]["sid"]).update(
        revoked_at=timezone.now(), revoked_reason=SessionEndReason.LOGOUT
    )
    before = state(user)

    body = change(gql, ended["token"])

    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert body["data"] == {"passwordChange": None}
    assert state(user) == before
    assert gql(ME, token=other["token"])["data"]["me"]["username"] == "alice"


def test_a_wrong_old_password_is_a_field_error_and_writes_nothing(gql, user):
    current, other = sign_in(gql), sign_in(gql)
    before = state(user)

    body = change(gql, current["token"], old_password="not-" + PASSWORD)

    assert "errors" not in body, body
    payload = body["data"]["passwordChange"]
    assert payload["success"] is False
    assert field_errors(payload) == [("oldPassword", UserErrorCode.INVALID_PASSWORD.name)]
    assert (payload["token"], payload["refreshToken"], payload["payload"]) == (None, None, None)
    assert state(user) == before
    assert not events(AuthEventKind.PASSWORD_CHANGED)
    # both sessions carry on, refresh tokens included
    assert gql(ME, token=other["token"])["data"]["me"]["username"] == "alice"
    assert "errors" not in refresh(gql, current["refreshToken"])


@pytest.mark.parametrize(
    ("password", "code"),
    [*WEAK_PASSWORDS, ("alice@example.co", UserErrorCode.PASSWORD_TOO_SIMILAR)],
    ids=[*WEAK_IDS, "similar-to-email"],
)
def test_password_change_runs_the_validators_and_writes_nothing(gql, user, password, code):
    current = sign_in(gql)
    before = state(user)

    payload = change(gql, current["token"], new_password=password)["data"]["passwordChange"]

    assert payload["success"] is False
    assert field_errors(payload) == [("newPassword", code.name)]
    assert payload["token"] is None
    assert state(user) == before


def test_password_change_refuses_a_password_like_the_username(gql, dora):
    current = sign_in(gql, email="quartz.lighthouse@example.org")
    before = state(dora)

    payload = change(gql, current["token"], new_password="Marmaladefox1")["data"]["passwordChange"]

    assert field_errors(payload) == [("newPassword", UserErrorCode.PASSWORD_TOO_SIMILAR.name)]
    assert state(dora) == before


def test_both_passwords_wrong_reports_both(gql, user):
    current = sign_in(gql)
    before = state(user)

    payload = change(gql, current["token"], "wrong-password", "Ab1!x")["data"]["passwordChange"]

    assert payload["success"] is False
    assert sorted(field_errors(payload)) == [
        ("newPassword", UserErrorCode.PASSWORD_TOO_SHORT.name),
        ("oldPassword", UserErrorCode.INVALID_PASSWORD.name),
    ]
    assert state(user) == before


def test_password_change_ends_other_sessions_and_renews_this_one(gql, user, make_user):
    # given: this device, another device, and someone else's session
    current, other = sign_in(gql, agent="This"), sign_in(gql, agent="Other")
    make_user(username="bob", email="bob@example.com")
    bob = sign_in(gql, email="bob@example.com")
    # when
    body = change(gql, current["token"])
    # then: fresh tokens of the same session
    assert "errors" not in body, body
    payload = body["data"]["passwordChange"]
    assert (payload["success"], payload["errors"]) == (True, [])
    assert payload["payload"]["sid"] == current["payload"]["sid"]
    assert payload["payload"]["sub"] == str(user.pk)
    assert len(payload["refreshToken"]) == 43
    session = Session.objects.get(pk=current["payload"]["sid"])
    assert session.revoked_at is None
    assert payload["refreshExpiresIn"] == int(session.ends_at().timestamp())
    # the other device is signed out, access and refresh alike
    assert me_codes(gql, other["token"]) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert error_codes(refresh(gql, other["refreshToken"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert Session.objects.get(pk=other["payload"]["sid"]).revoked_reason == SessionEndReason.PASSWORD_CHANGE
    # this device: its access token still works, its old refresh token is gone, the new ones work
    assert gql(ME, token=current["token"])["data"]["me"]["username"] == "alice"
    assert error_codes(refresh(gql, current["refreshToken"])) == [AuthErrorCode.TOKEN_INVALID.value]
    assert gql(ME, token=payload["token"])["data"]["me"]["username"] == "alice"
    rotated = refresh(gql, payload["refreshToken"])
    assert "errors" not in rotated, rotated
    assert rotated["data"]["refreshToken"]["payload"]["sid"] == current["payload"]["sid"]
    # only the new password signs in; bob is untouched
    assert sign_in_codes(gql, password=PASSWORD) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert sign_in(gql, password=NEW_PASSWORD)["payload"]["sub"] == str(user.pk)
    assert gql(ME, token=bob["token"])["data"]["me"]["username"] == "bob"


def test_password_change_is_audited(gql, user):
    current, _ = sign_in(gql), sign_in(gql)

    change(gql, current["token"])

    [changed] = events(AuthEventKind.PASSWORD_CHANGED)
    assert (changed.user_id, changed.user_ref) == (user.pk, user.pk)
    assert changed.session_id.hex == current["payload"]["sid"]
    [ended] = events(AuthEventKind.SESSIONS_ENDED)
    assert ended.detail == f"{SessionEndReason.PASSWORD_CHANGE}: 1"


def test_password_checks_are_limited_per_session_even_with_the_right_password(gql, user, settings):
    # A stolen access token must not become a password oracle: its session's budget is spent.
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (2, 300)}
    first, second = sign_in(gql), sign_in(gql)
    for _ in range(2):
        payload = change(gql, first["token"], old_password="guess-" + secrets.token_hex(4))["data"]["passwordChange"]
        assert field_errors(payload) == [("oldPassword", UserErrorCode.INVALID_PASSWORD.name)]
    before = state(user)

    # The right password, through the session that guessed: refused.
    body = change(gql, first["token"])

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert 0 < body["errors"][0]["extensions"]["retryAfter"] <= 300
    assert body["data"] == {"passwordChange": None}
    assert state(user) == before

    # The owner's other session is not locked out by what a stolen token spent.
    payload = change(gql, second["token"])["data"]["passwordChange"]
    assert payload["success"] is True


def test_guesses_at_sign_in_never_lock_a_signed_in_owner_out_of_a_password_change(gql, user, settings):
    # given: the account's sign-in budget spent by someone guessing from elsewhere
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (2, 300)}
    current = sign_in(gql)
    for _ in range(3):
        sign_in_codes(gql, password="guess-" + secrets.token_hex(4))
    assert sign_in_codes(gql) == [AuthErrorCode.RATE_LIMITED.value]
    # when: the signed-in owner changes the password
    payload = change(gql, current["token"])["data"]["passwordChange"]
    # then
    assert payload["success"] is True
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_an_oversized_old_password_is_wrong_without_hashing(gql, user, counting_hasher, settings):
    current = sign_in(gql)
    before = state(user)
    # control: a wrong password of ordinary size costs one hash
    start = counting_hasher.computed
    change(gql, current["token"], old_password="wrong-password")
    assert counting_hasher.computed - start == 1
    start = counting_hasher.computed

    payload = change(gql, current["token"], old_password="x" * (settings.PASSWORD_MAX_LENGTH + 1))
    payload = payload["data"]["passwordChange"]

    assert field_errors(payload) == [("oldPassword", UserErrorCode.INVALID_PASSWORD.name)]
    assert counting_hasher.computed - start == 0
    assert state(user) == before


# --- 6. the audit trail holds no secrets -----------------------------------------------------


def test_no_audit_event_holds_a_password_or_a_token(gql, user):
    # given: every flow of this file, with the secrets it handled
    first = sign_in(gql)
    token = ask_reset_token(gql)
    reset(gql, token, NEW_PASSWORD)
    second = sign_in(gql, password=NEW_PASSWORD)
    changed = change(gql, second["token"], NEW_PASSWORD, OTHER_PASSWORD)["data"]["passwordChange"]
    change(gql, changed["token"], "wrong-" + OTHER_PASSWORD, "Ab1!x")
    gql(RESET, {"token": token, "newPassword": PASSWORD})
    secrets_seen = [
        PASSWORD,
        NEW_PASSWORD,
        OTHER_PASSWORD,
        "wrong-" + OTHER_PASSWORD,
        token,
        hashlib.sha256(token.encode()).hexdigest(),
        *(t[key] for t in (first, second, changed) for key in ("token", "refreshToken")),
    ]
    # then
    kinds = set(AuthEvent.objects.values_list("kind", flat=True))
    assert {
        AuthEventKind.PASSWORD_RESET_REQUESTED,
        AuthEventKind.PASSWORD_RESET,
        AuthEventKind.PASSWORD_CHANGED,
        AuthEventKind.SESSIONS_ENDED,
    } <= kinds
    dumped = json.dumps(list(AuthEvent.objects.values()), default=str)
    for secret in secrets_seen:
        assert secret not in dumped
