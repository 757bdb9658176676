"""Account emails over HTTP: verification on register, verifyAccount, resendActivationEmail, the
unverified-login setting, mail failures, background mail, updateAccount and its audit trail.

Everything is real except the SMTP server: requests go through Django's full stack, the
database really commits (transactional tests, because mail leaves on commit), and the
locmem outbox is read like a mailbox: the link is taken from the mail, as a user would.
`tests.failing_mail.FailingBackend` stands in for a dead SMTP server.
"""

import hashlib
import json
import logging
import re
import secrets
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from accounts import mail as accounts_mail
from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import (
    AccountToken,
    AccountTokenPurpose,
    AuthEvent,
    AuthEventKind,
    RefreshToken,
    Session,
    User,
)
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes
from tests.failing_mail import FailingBackend

# Mail is sent on commit: the test database must really commit.
pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "another-Quite-long-passphrase-42"
FAILING_BACKEND = "tests.failing_mail.FailingBackend"

# Anything up to a character that cannot be in a URL attribute: a wrong length must fail the
# length assertion, not silently fail to match.
ACTIVATE_LINK = re.compile(r"https://app\.example\.com/activate\?token=([^\s\"'<>&]*)")
RESET_LINK = re.compile(r"https://app\.example\.com/reset-password\?token=([^\s\"'<>&]*)")
OPAQUE_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

USER_ERRORS = "errors { field message code }"
REGISTER = f"""
mutation Register($username: String!, $email: String!, $password: String!) {{
  register(username: $username, email: $email, password: $password) {{
    user {{ id username email isEmailVerified }}
    token payload refreshToken refreshExpiresIn
    {USER_ERRORS}
  }}
}}
"""
VERIFY = f"mutation Verify($token: String!) {{ verifyAccount(token: $token) {{ success {USER_ERRORS} }} }}"
RESEND = f"mutation Resend($email: String!) {{ resendActivationEmail(email: $email) {{ success {USER_ERRORS} }} }}"
SEND_RESET = f"mutation Reset($email: String!) {{ sendPasswordResetEmail(email: $email) {{ success {USER_ERRORS} }} }}"
PASSWORD_RESET = f"""
mutation PasswordReset($token: String!, $newPassword: String!) {{
  passwordReset(token: $token, newPassword: $newPassword) {{ success {USER_ERRORS} }}
}}
"""
TOKEN_AUTH = """
mutation TokenAuth($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) { token refreshToken user { email } }
}
"""
REFRESH = "mutation Refresh($refreshToken: String) { refreshToken(refreshToken: $refreshToken) { token refreshToken } }"
UPDATE = f"""
mutation Update($username: String, $email: String, $password: String) {{
  updateAccount(username: $username, email: $email, password: $password) {{
    success pendingEmail
    user {{ id username email isEmailVerified }}
    {USER_ERRORS}
  }}
}}
"""
ME = "{ me { id username email isEmailVerified } }"


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _forget_failed_mail():
    FailingBackend.attempted.clear()
    yield
    FailingBackend.attempted.clear()


def mutation(gql, query, variables, name, **kwargs) -> dict:
    """Return the payload of mutation `name`, asserting no top-level error came back."""
    body = gql(query, variables, **kwargs)
    assert "errors" not in body, body
    return body["data"][name]


def register(gql, username="bob", email="bob@example.com", password=PASSWORD, **kwargs) -> dict:
    return mutation(gql, REGISTER, {"username": username, "email": email, "password": password}, "register", **kwargs)


def verify(gql, link_token_, **kwargs) -> dict:
    return mutation(gql, VERIFY, {"token": link_token_}, "verifyAccount", **kwargs)


def resend(gql, email, **kwargs) -> dict:
    return mutation(gql, RESEND, {"email": email}, "resendActivationEmail", **kwargs)


def update(gql, token, **variables) -> dict:
    """Post updateAccount; an email change carries the right current password unless told otherwise."""
    if "email" in variables:
        variables.setdefault("password", PASSWORD)
    return mutation(gql, UPDATE, variables, "updateAccount", token=token)


def sign_in(gql, password=PASSWORD, **login) -> dict:
    return gql(TOKEN_AUTH, {**login, "password": password})


def html_of(message) -> str:
    """Return the HTML alternative of a mail, asserting there is exactly one."""
    assert len(message.alternatives) == 1, message.alternatives
    content, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    return content


def link_token(message, pattern=ACTIVATE_LINK) -> str:
    """Return the token of the one link in a mail, the same in its text and HTML parts."""
    in_text = set(pattern.findall(message.body))
    in_html = set(pattern.findall(html_of(message)))
    assert len(in_text) == 1, message.body
    assert in_html == in_text, html_of(message)
    token = in_text.pop()
    assert OPAQUE_TOKEN.fullmatch(token), token
    return token


def mails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def registered_and_token(gql, username="bob", email="bob@example.com") -> tuple[dict, str]:
    """Register an account and return its payload and the token of its verification mail."""
    payload = register(gql, username, email)
    assert payload["errors"] == []
    (message,) = mails_to(User.objects.get(username=username).email)
    return payload, link_token(message)


def assert_invalid_token(payload: dict) -> None:
    assert payload["success"] is False
    assert len(payload["errors"]) == 1, payload
    error = payload["errors"][0]
    assert error["field"] == "token"
    assert error["code"] == UserErrorCode.INVALID_TOKEN.name
    assert error["message"]


def only_error(payload: dict) -> tuple[str, str]:
    """Return (field, code) of the one payload error."""
    assert payload["success"] is False
    assert len(payload["errors"]) == 1, payload
    error = payload["errors"][0]
    assert error["message"]
    return error["field"], error["code"]


def db_state() -> dict:
    """Everything these flows could write, to compare before and after a refused request."""
    return {
        "users": list(
            User.objects.order_by("pk").values_list(
                "pk", "username", "email", "is_email_verified", "is_active", "is_staff", "password", "last_login"
            )
        ),
        "sessions": list(Session.objects.order_by("pk").values_list("pk", "revoked_at")),
        "refresh_tokens": RefreshToken.objects.count(),
        "account_tokens": list(
            AccountToken.objects.order_by("pk").values_list("pk", "purpose", "email", "used_at", "expires_at")
        ),
        "events": AuthEvent.objects.count(),
    }


def events(kind) -> list[AuthEvent]:
    return list(AuthEvent.objects.filter(kind=kind).order_by("pk"))


def rate(**limits):
    """override_settings for GATEHOUSE rate limits."""
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, **limits})


def assert_rate_limited(body: dict, name: str, window: int) -> None:
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value], body
    assert body["data"] == {name: None}
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(retry_after, int)
    assert 1 <= retry_after <= window


# --- 1. the verification email on register ------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ("bob@Bücher.example", "bob@xn--bcher-kva.example"),
    ],
)
def test_register_sends_one_verification_email_to_the_canonical_address(gql, typed, canonical):
    # when
    body = gql(REGISTER, {"username": "bob", "email": typed, "password": PASSWORD})

    # then: one mail, to the stored address only, with the link in both parts
    payload = body["data"]["register"]
    assert payload["errors"] == []
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [canonical]
    assert message.cc == []
    assert message.bcc == []
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "Confirm your email address"
    token = link_token(message)
    assert f'href="https://app.example.com/activate?token={token}"' in html_of(message)
    assert canonical in message.body
    # and only the mailbox gets the link: the response does not carry it
    assert token not in json.dumps(body)
    assert PASSWORD not in message.body
    assert PASSWORD not in html_of(message)
    # and the link's token is stored only as a digest, bound to that address
    row = AccountToken.objects.get()
    assert row.purpose == AccountTokenPurpose.VERIFY_EMAIL
    assert row.email == canonical
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.used_at is None
    assert row.expires_at - row.created_at == timedelta(seconds=settings.EMAIL_VERIFICATION_TOKEN_LIFETIME)


def test_the_verification_email_states_the_link_lifetime(gql):
    # EMAIL_VERIFICATION_TOKEN_LIFETIME is 3 days in tests: the mail must say so, not a
    # rounded-down "2 days, 23 hours" measured a few microseconds after issuing.
    register(gql)

    (message,) = mail.outbox
    # Django's timesince separates with no-break spaces; compare words.
    assert "expires in 3 days." in " ".join(message.body.split())
    assert "expires in 3 days." in " ".join(html_of(message).split())


def test_the_verification_email_leaves_only_when_the_registration_commits(gql):
    # given: the request runs inside a transaction that has not committed yet
    with transaction.atomic():
        payload = register(gql)
        assert payload["errors"] == []
        # then: nothing has left while the account could still vanish
        assert mail.outbox == []

    # and: it leaves once the transaction commits
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["bob@example.com"]


def test_a_rolled_back_registration_sends_nothing(gql):
    # A link to an account that does not exist must never go out.
    with transaction.atomic():
        assert register(gql)["errors"] == []
        transaction.set_rollback(True)

    assert mail.outbox == []
    assert not User.objects.filter(email="bob@example.com").exists()
    assert not AccountToken.objects.exists()


@pytest.mark.parametrize(
    ("username", "email", "password", "field"),
    [
        ("bob", "bob@example.com", "123", "password"),
        ("bob", "not-an-email", PASSWORD, "email"),
        ("bob", "ALICE@example.com", PASSWORD, "email"),
        ("ALICE", "bob@example.com", PASSWORD, "username"),
        ("bad name", "bob@example.com", PASSWORD, "username"),
    ],
    ids=["weak-password", "malformed-email", "taken-email", "taken-username", "invalid-username"],
)
def test_a_refused_registration_sends_nothing_and_writes_nothing(gql, user, username, email, password, field):
    # given
    before = db_state()

    # when
    payload = register(gql, username, email, password)

    # then
    assert payload["user"] is None
    assert payload["token"] is None
    assert field in {error["field"] for error in payload["errors"]}
    assert mail.outbox == []
    assert db_state() == before


# --- 2. verifyAccount ------------------------------------------------------------------------


def test_verify_account_marks_the_email_verified(gql):
    # given
    payload, link = registered_and_token(gql)
    assert payload["user"]["isEmailVerified"] is False

    # when
    result = verify(gql, link)

    # then
    assert result == {"success": True, "errors": []}
    assert User.objects.get(username="bob").is_email_verified is True
    me = gql(ME, token=payload["token"])["data"]["me"]
    assert me["isEmailVerified"] is True
    assert me["email"] == "bob@example.com"
    # and no live (unused) verification token is left behind
    assert not AccountToken.objects.filter(purpose=AccountTokenPurpose.VERIFY_EMAIL, used_at__isnull=True).exists()


def test_a_verification_link_works_once(gql):
    # given
    _, link = registered_and_token(gql)
    assert verify(gql, link)["success"] is True
    before = db_state()

    # when: the same link again (a second click, or whoever else read the mail)
    result = verify(gql, link)

    # then
    assert_invalid_token(result)
    assert db_state() == before


def test_an_expired_verification_link_is_refused(gql):
    # given: the link outlived EMAIL_VERIFICATION_TOKEN_LIFETIME
    _, link = registered_and_token(gql)
    AccountToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before = db_state()

    # when
    result = verify(gql, link)

    # then
    assert_invalid_token(result)
    assert db_state() == before
    assert User.objects.get(username="bob").is_email_verified is False


def test_a_verification_link_still_works_just_before_it_expires(gql):
    _, link = registered_and_token(gql)
    AccountToken.objects.update(expires_at=timezone.now() + timedelta(seconds=30))

    assert verify(gql, link) == {"success": True, "errors": []}
    assert User.objects.get(username="bob").is_email_verified is True


BAD_TOKENS = {
    "empty": lambda link, reg: "",
    "blank": lambda link, reg: "   ",
    "short": lambda link, reg: "abc",
    "truncated": lambda link, reg: link[:-1],
    "one-char-longer": lambda link, reg: link + "A",
    "other-case": lambda link, reg: link.swapcase(),
    "unknown": lambda link, reg: secrets.token_urlsafe(32),
    "bad-alphabet": lambda link, reg: "!" * 43,
    "whole-link-pasted": lambda link, reg: f"https://app.example.com/activate?token={link}",
    "stored-digest": lambda link, reg: hashlib.sha256(link.encode()).hexdigest(),
    "access-jwt": lambda link, reg: reg["token"],
    "refresh-token": lambda link, reg: reg["refreshToken"],
    "nul": lambda link, reg: link[:20] + "\x00" + link[21:],
    "huge": lambda link, reg: "A" * 20_000,
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_token_that_was_not_issued_for_verification_is_refused(gql, kind):
    # given: an unverified account with a live link
    reg, link = registered_and_token(gql)
    before = db_state()

    # when
    result = verify(gql, BAD_TOKENS[kind](link, reg))

    # then: refused, nothing written, and the real link was not used up
    assert_invalid_token(result)
    assert db_state() == before
    assert verify(gql, link)["success"] is True


def test_the_refresh_token_tried_as_a_verification_link_still_refreshes(gql):
    # An account token and a refresh token have the same shape: trying one as the other
    # must not consume or damage it.
    reg, _ = registered_and_token(gql)
    assert_invalid_token(verify(gql, reg["refreshToken"]))

    body = gql(REFRESH, {"refreshToken": reg["refreshToken"]})
    assert "errors" not in body, body
    assert body["data"]["refreshToken"]["token"]


def test_a_password_reset_token_cannot_verify_an_account(gql):
    # given: an unverified account asks for a reset link
    registered_and_token(gql)
    assert mutation(gql, SEND_RESET, {"email": "bob@example.com"}, "sendPasswordResetEmail")["success"] is True
    reset_token = link_token(mail.outbox[-1], RESET_LINK)
    before = db_state()

    # when
    result = verify(gql, reset_token)

    # then: refused, and the reset link is untouched
    assert_invalid_token(result)
    assert db_state() == before
    assert User.objects.get(username="bob").is_email_verified is False
    reset = mutation(gql, PASSWORD_RESET, {"token": reset_token, "newPassword": NEW_PASSWORD}, "passwordReset")
    assert reset == {"success": True, "errors": []}


def test_a_verification_token_cannot_reset_a_password(gql):
    # given
    _, link = registered_and_token(gql)
    before = db_state()

    # when
    result = mutation(gql, PASSWORD_RESET, {"token": link, "newPassword": NEW_PASSWORD}, "passwordReset")

    # then
    assert_invalid_token(result)
    assert db_state() == before
    assert User.objects.get(username="bob").check_password(PASSWORD)


def test_a_deactivated_accounts_verification_link_is_refused(gql):
    # given
    _, link = registered_and_token(gql)
    User.objects.filter(username="bob").update(is_active=False)
    before = db_state()

    # when
    result = verify(gql, link)

    # then
    assert_invalid_token(result)
    assert db_state() == before
    assert User.objects.get(username="bob").is_email_verified is False


def test_a_link_verifies_its_own_account_whoever_is_signed_in(gql, user, token):
    # Alice, signed in, opens Bob's link: Bob's address is confirmed, never Alice's.
    _, link = registered_and_token(gql)

    assert verify(gql, link, token=token)["success"] is True

    assert User.objects.get(username="bob").is_email_verified is True
    user.refresh_from_db()
    assert user.is_email_verified is False
    assert user.email == "alice@example.com"


def test_verification_attempts_are_rate_limited_per_client_address(gql):
    # Guessing links is bounded: after the budget, even a real link waits.
    _, link = registered_and_token(gql)
    with rate(ACCOUNT_TOKEN_RATE_PER_ADDRESS=(2, 3600)):
        for _ in range(2):
            assert_invalid_token(verify(gql, secrets.token_urlsafe(32)))
        body = gql(VERIFY, {"token": link})

    assert_rate_limited(body, "verifyAccount", 3600)
    assert User.objects.get(username="bob").is_email_verified is False


# --- 3. resendActivationEmail ----------------------------------------------------------------


def test_resend_answers_the_same_whoever_the_address_belongs_to(gql, make_user):
    # given: an unverified, a verified and an inactive account, and an address with none
    make_user(username="unverified", email="unverified@example.com")
    make_user(username="verified", email="verified@example.com", is_email_verified=True)
    make_user(username="inactive", email="inactive@example.com", is_active=False)

    # when
    bodies = {}
    sent = {}
    for address in ("unverified", "verified", "nobody", "inactive"):
        before = len(mail.outbox)
        bodies[address] = gql(RESEND, {"email": f"{address}@example.com"})
        sent[address] = len(mail.outbox) - before

    # then: byte-for-byte the same answer, and a mail only for the unverified account
    assert bodies["unverified"] == {"data": {"resendActivationEmail": {"success": True, "errors": []}}}
    assert bodies["verified"] == bodies["unverified"]
    assert bodies["nobody"] == bodies["unverified"]
    assert bodies["inactive"] == bodies["unverified"]
    assert sent == {"unverified": 1, "verified": 0, "nobody": 0, "inactive": 0}
    assert mail.outbox[0].to == ["unverified@example.com"]
    link_token(mail.outbox[0])


def test_resend_finds_the_account_whatever_case_the_address_is_typed_in(gql):
    registered_and_token(gql)

    assert resend(gql, "  BOB@Example.COM ") == {"success": True, "errors": []}

    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == ["bob@example.com"]


def test_a_resent_link_works_and_the_previous_one_is_dead(gql):
    # given
    _, first = registered_and_token(gql)

    # when
    assert resend(gql, "bob@example.com")["success"] is True
    second = link_token(mail.outbox[-1])

    # then: the old link is superseded, the new one works
    assert second != first
    before = db_state()
    assert_invalid_token(verify(gql, first))
    assert db_state() == before
    assert verify(gql, second) == {"success": True, "errors": []}
    assert User.objects.get(username="bob").is_email_verified is True


@pytest.mark.parametrize(
    "email", ["not-an-email", "", "   ", "bob@", "@example.com", "x" * 250 + "@example.com", "bob\x00@example.com"]
)
def test_resend_refuses_a_malformed_address(gql, email):
    before = db_state()

    payload = resend(gql, email)

    field, code = only_error(payload)
    assert field == "email"
    assert code in {UserErrorCode.INVALID.name, UserErrorCode.REQUIRED.name, UserErrorCode.TOO_LONG.name}
    assert mail.outbox == []
    assert db_state() == before


@pytest.mark.parametrize("account", ["unverified", "verified", "none"])
def test_resend_is_rate_limited_per_recipient_whether_or_not_the_account_exists(gql, make_user, account):
    # given
    if account != "none":
        make_user(username="bob", email="bob@example.com", is_email_verified=account == "verified")

    with rate(ACCOUNT_EMAIL_RATE_PER_RECIPIENT=(2, 3600)):
        # when: two requests pass, the third for the same address (in another case) does not
        assert resend(gql, "bob@example.com")["success"] is True
        assert resend(gql, "bob@example.com")["success"] is True
        sent = len(mail.outbox)
        third = gql(RESEND, {"email": "BOB@example.com"})
        # and another recipient still has its own budget
        other = resend(gql, "carol@example.com")

    # then
    assert_rate_limited(third, "resendActivationEmail", 3600)
    assert len(mail.outbox) == sent
    assert sent == (2 if account == "unverified" else 0)
    assert other["success"] is True


def test_resend_and_password_reset_share_the_recipients_budget(gql, make_user):
    # Nobody can flood a mailbox by alternating the two kinds of account email.
    make_user(username="bob", email="bob@example.com")
    with rate(ACCOUNT_EMAIL_RATE_PER_RECIPIENT=(2, 3600)):
        assert resend(gql, "bob@example.com")["success"] is True
        assert resend(gql, "bob@example.com")["success"] is True
        body = gql(SEND_RESET, {"email": "bob@example.com"})

    assert_rate_limited(body, "sendPasswordResetEmail", 3600)
    assert len(mail.outbox) == 2
    assert not AccountToken.objects.filter(purpose=AccountTokenPurpose.RESET_PASSWORD).exists()


def test_resend_is_rate_limited_per_client_address(gql):
    # given
    with rate(ACCOUNT_EMAIL_RATE_PER_ADDRESS=(2, 3600)):
        # when: three different recipients from one client
        assert resend(gql, "one@example.com")["success"] is True
        assert resend(gql, "two@example.com")["success"] is True
        third = gql(RESEND, {"email": "three@example.com"})
        # and another client is not affected
        elsewhere = resend(gql, "three@example.com", headers={"REMOTE_ADDR": "203.0.113.9"})

    # then
    assert_rate_limited(third, "resendActivationEmail", 3600)
    assert elsewhere["success"] is True


# --- 4. ACCOUNT_ALLOW_UNVERIFIED_LOGIN -------------------------------------------------------


@override_settings(ACCOUNT_ALLOW_UNVERIFIED_LOGIN=False)
def test_without_unverified_login_register_returns_no_tokens_and_opens_no_session(gql):
    # when
    payload = register(gql)

    # then: the account exists and its verification mail left, but nobody is signed in
    assert payload["errors"] == []
    assert payload["user"]["email"] == "bob@example.com"
    assert payload["token"] is None
    assert payload["refreshToken"] is None
    assert payload["payload"] is None
    assert payload["refreshExpiresIn"] is None
    bob = User.objects.get(username="bob")
    assert bob.last_login is None
    assert not Session.objects.exists()
    assert not RefreshToken.objects.exists()
    assert len(mails_to("bob@example.com")) == 1
    (registered,) = events(AuthEventKind.REGISTERED)
    assert registered.user == bob
    assert registered.session_id is None


@pytest.mark.parametrize("login", [{"email": "bob@example.com"}, {"username": "bob"}])
@override_settings(ACCOUNT_ALLOW_UNVERIFIED_LOGIN=False)
def test_without_unverified_login_an_unverified_sign_in_looks_like_a_wrong_password(gql, login):
    # given
    register(gql)

    # when
    unverified = sign_in(gql, **login)
    wrong_password = sign_in(gql, password="wrong-Password-123", **login)

    # then: the same body, message and all, so the answer reveals nothing about the account
    assert error_codes(unverified) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert unverified == wrong_password
    assert not Session.objects.exists()
    assert User.objects.get(username="bob").last_login is None


@override_settings(ACCOUNT_ALLOW_UNVERIFIED_LOGIN=False)
def test_without_unverified_login_sign_in_works_once_verified(gql):
    # given
    _, link = registered_and_token(gql)
    assert verify(gql, link)["success"] is True

    # when
    body = sign_in(gql, email="bob@example.com")

    # then
    assert "errors" not in body, body
    token = body["data"]["tokenAuth"]["token"]
    assert gql(ME, token=token)["data"]["me"]["isEmailVerified"] is True
    assert Session.objects.filter(user__username="bob", revoked_at__isnull=True).count() == 1


def test_by_default_unverified_accounts_may_sign_in(gql):
    # given
    payload = register(gql)
    assert payload["token"]

    # when
    body = sign_in(gql, email="bob@example.com")

    # then
    assert "errors" not in body, body
    assert gql(ME, token=body["data"]["tokenAuth"]["token"])["data"]["me"]["isEmailVerified"] is False
    assert Session.objects.filter(user__username="bob").count() == 2


# --- 5. a dead mail server -------------------------------------------------------------------


def assert_logged_without(caplog, secrets_: list[str]) -> None:
    """Assert an ERROR from accounts.mail was logged, and no log line holds any of `secrets_`."""
    failures = [r for r in caplog.records if r.name == "accounts.mail" and r.levelno == logging.ERROR]
    assert len(failures) == 1, caplog.records
    for record in caplog.records:
        for secret in secrets_:
            assert secret not in record.getMessage()
    for secret in secrets_:
        assert secret not in caplog.text


def test_register_succeeds_when_the_mail_server_is_down(gql, caplog):
    # given
    caplog.set_level(logging.DEBUG)

    # when
    with override_settings(EMAIL_BACKEND=FAILING_BACKEND):
        payload = register(gql)

    # then: a normal answer, with tokens, and the account and its session are there
    assert payload["errors"] == []
    assert payload["user"]["email"] == "bob@example.com"
    assert gql(ME, token=payload["token"])["data"]["me"]["email"] == "bob@example.com"
    bob = User.objects.get(username="bob")
    assert Session.objects.filter(user=bob, revoked_at__isnull=True).count() == 1
    # and the mail was attempted, failed, and was logged without its link
    assert len(FailingBackend.attempted) == 1
    link = link_token(FailingBackend.attempted[0])
    assert_logged_without(caplog, [link, "activate?token"])
    # and once the server is back, the user can ask again and verify
    assert resend(gql, "bob@example.com")["success"] is True
    assert verify(gql, link_token(mails_to("bob@example.com")[-1]))["success"] is True


def test_a_password_reset_request_answers_success_when_the_mail_server_is_down(gql, user, caplog):
    # given
    caplog.set_level(logging.DEBUG)
    unknown = gql(SEND_RESET, {"email": "nobody@example.com"})

    # when
    with override_settings(EMAIL_BACKEND=FAILING_BACKEND):
        body = gql(SEND_RESET, {"email": "alice@example.com"})

    # then: the same answer as for an address without an account
    assert body == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}}
    assert body == unknown
    assert len(FailingBackend.attempted) == 1
    link = link_token(FailingBackend.attempted[0], RESET_LINK)
    assert_logged_without(caplog, [link, "reset-password?token"])


def test_resend_answers_success_when_the_mail_server_is_down(gql, make_user, caplog):
    caplog.set_level(logging.DEBUG)
    make_user(username="bob", email="bob@example.com")

    with override_settings(EMAIL_BACKEND=FAILING_BACKEND):
        body = resend(gql, "bob@example.com")

    assert body == {"success": True, "errors": []}
    (message,) = FailingBackend.attempted
    assert_logged_without(caplog, [link_token(message), "activate?token"])


def test_an_email_change_is_pending_even_when_the_mail_server_is_down(gql, user, token, caplog):
    caplog.set_level(logging.DEBUG)

    with override_settings(EMAIL_BACKEND=FAILING_BACKEND):
        payload = update(gql, token, email="alice.new@example.com")

    assert payload["success"] is True
    assert payload["pendingEmail"] == "alice.new@example.com"
    assert sorted(message.to[0] for message in FailingBackend.attempted) == [
        "alice.new@example.com",
        "alice@example.com",
    ]
    (confirmation,) = [message for message in FailingBackend.attempted if message.to == ["alice.new@example.com"]]
    link = link_token(confirmation)
    failures = [r for r in caplog.records if r.name == "accounts.mail" and r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert link not in caplog.text
    assert "token=" not in caplog.text


# --- 6. background mail ----------------------------------------------------------------------


def test_with_email_async_the_mail_leaves_after_the_response(gql):
    # given: the mail threads are busy, so a request that waited for its mail would hang
    release = threading.Event()
    for _ in range(16):
        accounts_mail._background().submit(release.wait, 30)
    try:
        with rate(EMAIL_ASYNC=True):
            # when
            payload = register(gql)
            # then: the answer came before the mail
            assert payload["errors"] == []
            assert mail.outbox == []
            release.set()
            accounts_mail.mail_wait()
    finally:
        release.set()
        accounts_mail.mail_wait()

    # and the mail arrived, with a working link
    (message,) = mail.outbox
    assert message.to == ["bob@example.com"]
    assert verify(gql, link_token(message))["success"] is True


def test_with_email_async_a_resend_looks_the_account_up_after_the_response(gql):
    # given: an unverified account, and busy mail threads
    _, first = registered_and_token(gql)
    release = threading.Event()
    for _ in range(16):
        accounts_mail._background().submit(release.wait, 30)
    try:
        with rate(EMAIL_ASYNC=True):
            # when
            body = resend(gql, "bob@example.com")
            # then: answered before the lookup, the new token and the mail
            assert body == {"success": True, "errors": []}
            assert len(mail.outbox) == 1
            assert events(AuthEventKind.EMAIL_VERIFICATION_SENT) == []
            release.set()
            accounts_mail.mail_wait()
    finally:
        release.set()
        accounts_mail.mail_wait()

    # and then the new link arrived, superseding the first, and the event names the client
    assert len(mail.outbox) == 2
    second = link_token(mail.outbox[1])
    assert_invalid_token(verify(gql, first))
    assert verify(gql, second)["success"] is True
    (sent,) = events(AuthEventKind.EMAIL_VERIFICATION_SENT)
    assert sent.ip_address == "127.0.0.1"
    assert sent.user.username == "bob"


def test_with_email_async_mail_wait_delivers_the_mail(gql):
    with rate(EMAIL_ASYNC=True):
        assert register(gql)["errors"] == []
        accounts_mail.mail_wait()

    (message,) = mail.outbox
    assert message.to == ["bob@example.com"]
    link_token(message)


def test_with_email_async_a_mail_failure_is_logged_not_raised(gql, caplog):
    caplog.set_level(logging.DEBUG)
    with rate(EMAIL_ASYNC=True), override_settings(EMAIL_BACKEND=FAILING_BACKEND):
        assert register(gql)["errors"] == []
        accounts_mail.mail_wait()

    (message,) = FailingBackend.attempted
    assert_logged_without(caplog, [link_token(message), "activate?token"])


# --- 7. updateAccount: username ----------------------------------------------------------


@pytest.mark.parametrize("variables", [{"username": "mallory"}, {"email": "mallory@example.com"}])
def test_update_account_needs_a_signed_in_user(gql, user, variables):
    before = db_state()

    body = gql(UPDATE, variables)

    assert error_codes(body) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert body["data"] == {"updateAccount": None}
    assert db_state() == before
    assert mail.outbox == []


def test_a_username_change_takes_effect_at_once(gql, user, token):
    # when
    payload = update(gql, token, username="alice.2")

    # then
    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["pendingEmail"] is None
    assert payload["user"]["username"] == "alice.2"
    assert User.objects.get(pk=user.pk).username == "alice.2"
    assert gql(ME, token=token)["data"]["me"]["username"] == "alice.2"
    assert mail.outbox == []
    # and sign-in by username follows the change
    assert "errors" not in sign_in(gql, username="ALICE.2")
    assert error_codes(sign_in(gql, username="alice")) == [AuthErrorCode.INVALID_CREDENTIALS.value]


def test_renaming_to_the_same_username_changes_nothing(gql, user, token):
    before = db_state()

    payload = update(gql, token, username="alice")

    assert payload["success"] is True
    assert db_state() == before
    assert events(AuthEventKind.USERNAME_CHANGED) == []


@pytest.mark.parametrize(
    ("username", "code"),
    [
        ("bad name", UserErrorCode.INVALID),
        ("ali/ce", UserErrorCode.INVALID),
        ("émile", UserErrorCode.INVALID),
        ("\u0430lice", UserErrorCode.INVALID),  # Cyrillic a: a lookalike of alice
        ("a\x00b", UserErrorCode.INVALID),
        ("", UserErrorCode.REQUIRED),
        ("   ", UserErrorCode.REQUIRED),
        ("x" * 151, UserErrorCode.TOO_LONG),
    ],
)
def test_an_invalid_username_is_refused_and_nothing_changes(gql, user, token, username, code):
    before = db_state()

    payload = update(gql, token, username=username)

    assert only_error(payload) == ("username", code.name)
    assert payload["user"]["username"] == "alice"
    assert db_state() == before


# The last is fullwidth "bob": NFKC makes it bob.
@pytest.mark.parametrize("taken", ["bob", "BOB", "Bob", "\uff42\uff4f\uff42"])
def test_a_username_taken_by_another_account_in_any_case_is_refused(gql, user, token, make_user, taken):
    # given
    make_user(username="bob", email="bob@example.com")
    before = db_state()

    # when
    payload = update(gql, token, username=taken)

    # then
    assert only_error(payload) == ("username", UserErrorCode.UNIQUE.name)
    assert db_state() == before


def test_your_own_username_in_another_case_is_allowed(gql, user, token):
    payload = update(gql, token, username="ALICE")

    assert payload["success"] is True
    assert User.objects.get(pk=user.pk).username == "ALICE"


def test_a_new_username_is_stored_nfkc_normalised(gql, user, token):
    # Fullwidth letters are a compatibility form of ASCII ones.
    payload = update(gql, token, username="\uff41\uff4c\uff49\uff43\uff45\uff12")  # fullwidth alice2

    assert payload["success"] is True
    assert payload["user"]["username"] == "alice2"
    assert User.objects.get(pk=user.pk).username == "alice2"


def test_a_refused_field_means_no_field_changes(gql, user, token, make_user):
    # A valid email beside a taken username: neither is applied, no mail leaves.
    make_user(username="bob", email="bob@example.com")
    before = db_state()

    payload = update(gql, token, username="bob", email="alice.new@example.com")

    assert only_error(payload) == ("username", UserErrorCode.UNIQUE.name)
    assert payload["pendingEmail"] is None
    assert db_state() == before
    assert mail.outbox == []


@pytest.mark.parametrize(
    "argument",
    ["isStaff: true", "isSuperuser: true", "isActive: false", "isEmailVerified: true", 'newPassword: "x"', "id: 1"],
)
def test_update_account_cannot_set_other_fields(gql, user, token, argument):
    before = db_state()

    body = gql(f'mutation {{ updateAccount(username: "alice2", {argument}) {{ success }} }}', token=token)

    assert error_codes(body) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]
    assert "data" not in body or body["data"] is None
    assert db_state() == before


# --- 7. updateAccount: email ---------------------------------------------------------------


def request_email_change(gql, token, email="alice.new@example.com") -> str:
    """Ask to change the signed-in user's email; return the token of the confirmation link."""
    payload = update(gql, token, email=email)
    assert payload["errors"] == []
    (message,) = mails_to(payload["pendingEmail"])
    return link_token(message)


def test_an_email_change_waits_for_the_new_address_to_be_confirmed(gql, user, token):
    # when
    payload = update(gql, token, email="Alice.New@EXAMPLE.com")

    # then: the new address is pending, the account keeps the old one
    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["pendingEmail"] == "alice.new@example.com"
    assert payload["user"]["email"] == "alice@example.com"
    user.refresh_from_db()
    assert user.email == "alice@example.com"
    assert gql(ME, token=token)["data"]["me"]["email"] == "alice@example.com"
    # and the new address got a confirmation link
    assert len(mail.outbox) == 2
    (confirmation,) = mails_to("alice.new@example.com")
    assert confirmation.subject == "Confirm your new email address"
    link_token(confirmation)
    # and the old one a notice that neither reveals the new address nor carries a link
    (notice,) = mails_to("alice@example.com")
    assert notice.subject
    for part in (notice.subject, notice.body, html_of(notice)):
        assert "alice.new" not in part.lower()
        assert "token=" not in part


def test_confirming_an_email_change_switches_the_address(gql, user, token):
    # given
    link = request_email_change(gql, token)

    # when
    result = verify(gql, link)

    # then
    assert result == {"success": True, "errors": []}
    user.refresh_from_db()
    assert user.email == "alice.new@example.com"
    assert user.is_email_verified is True
    # the existing session still belongs to the same account
    me = gql(ME, token=token)["data"]["me"]
    assert me["email"] == "alice.new@example.com"
    assert me["isEmailVerified"] is True
    # and sign-in follows the address
    new = sign_in(gql, email="alice.new@example.com")
    assert "errors" not in new, new
    assert new["data"]["tokenAuth"]["user"]["email"] == "alice.new@example.com"
    old = sign_in(gql, email="alice@example.com")
    assert error_codes(old) == [AuthErrorCode.INVALID_CREDENTIALS.value]


def test_an_email_change_link_works_once(gql, user, token):
    link = request_email_change(gql, token)
    assert verify(gql, link)["success"] is True
    before = db_state()

    assert_invalid_token(verify(gql, link))
    assert db_state() == before


def test_a_newer_email_change_supersedes_the_pending_one(gql, user, token):
    # given
    first = request_email_change(gql, token, "first@example.com")
    second = request_email_change(gql, token, "second@example.com")

    # when / then
    assert_invalid_token(verify(gql, first))
    assert User.objects.get(pk=user.pk).email == "alice@example.com"
    assert verify(gql, second)["success"] is True
    assert User.objects.get(pk=user.pk).email == "second@example.com"


def test_resending_the_accounts_verification_keeps_a_pending_email_change(gql, user, token):
    # given: an unverified account with an email change pending
    change = request_email_change(gql, token, "new@example.com")
    # when: it asks again to verify its current address
    assert resend(gql, "alice@example.com")["success"] is True
    current = link_token(mails_to("alice@example.com")[-1])
    # then: both links work, each for its own address
    assert verify(gql, current)["success"] is True
    assert User.objects.get(pk=user.pk).email == "alice@example.com"
    assert verify(gql, change)["success"] is True
    assert User.objects.get(pk=user.pk).email == "new@example.com"


def test_a_verification_link_of_the_old_address_dies_with_an_email_change(gql, user, token):
    # given: a verification link for alice's current address, then a completed change
    assert resend(gql, "alice@example.com")["success"] is True
    old_address_link = link_token(mails_to("alice@example.com")[-1])
    assert verify(gql, request_email_change(gql, token, "new@example.com"))["success"] is True
    # when / then: the old address's link can no longer verify anything
    assert_invalid_token(verify(gql, old_address_link))
    assert User.objects.get(pk=user.pk).email == "new@example.com"


def test_changing_to_your_own_address_in_another_case_changes_nothing(gql, user, token):
    before = db_state()

    payload = update(gql, token, email="ALICE@Example.com")

    assert payload["success"] is True
    assert payload["pendingEmail"] is None
    assert mail.outbox == []
    assert db_state() == before


@pytest.mark.parametrize("taken", ["bob@example.com", "BOB@Example.com"])
def test_an_email_taken_by_another_account_is_refused(gql, user, token, make_user, taken):
    make_user(username="bob", email="bob@example.com")
    before = db_state()

    payload = update(gql, token, email=taken)

    assert only_error(payload) == ("email", UserErrorCode.UNIQUE.name)
    assert payload["pendingEmail"] is None
    assert mail.outbox == []
    assert db_state() == before


@pytest.mark.parametrize("email", ["not-an-email", "", "alice@", "x" * 250 + "@example.com"])
def test_a_malformed_new_email_is_refused(gql, user, token, email):
    before = db_state()

    payload = update(gql, token, email=email)

    field, _ = only_error(payload)
    assert field == "email"
    assert mail.outbox == []
    assert db_state() == before


def test_an_address_taken_before_the_change_is_confirmed_is_not_stolen(gql, user, token):
    # given: Alice asks for carol@example.com, then Carol registers it first
    link = request_email_change(gql, token, "carol@example.com")
    carol = register(gql, "carol", "carol@example.com")
    assert carol["errors"] == []
    before = db_state()

    # when: Alice confirms
    result = verify(gql, link)

    # then: refused as UNIQUE, and neither account changed
    field, code = only_error(result)
    assert code == UserErrorCode.UNIQUE.name
    assert field == "token"
    assert db_state() == before
    assert User.objects.get(pk=user.pk).email == "alice@example.com"
    assert User.objects.get(username="carol").email == "carol@example.com"
    assert gql(ME, token=carol["token"])["data"]["me"]["username"] == "carol"


def test_a_reset_link_sent_to_the_old_address_dies_with_the_change(gql, user, token):
    # given: a reset link went to the old address
    assert mutation(gql, SEND_RESET, {"email": "alice@example.com"}, "sendPasswordResetEmail")["success"] is True
    reset_token = link_token(mails_to("alice@example.com")[-1], RESET_LINK)
    # and the address then changes
    assert verify(gql, request_email_change(gql, token))["success"] is True

    # when
    result = mutation(gql, PASSWORD_RESET, {"token": reset_token, "newPassword": NEW_PASSWORD}, "passwordReset")

    # then
    assert_invalid_token(result)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert Session.objects.filter(user=user, revoked_at__isnull=True).count() == 1


def test_the_old_address_can_register_again_without_taking_over_tokens(gql, user, token):
    # An email change must never move a token to another account.
    assert verify(gql, request_email_change(gql, token))["success"] is True

    newcomer = register(gql, "newcomer", "alice@example.com")

    assert newcomer["errors"] == []
    assert gql(ME, token=token)["data"]["me"]["username"] == "alice"
    assert gql(ME, token=newcomer["token"])["data"]["me"]["username"] == "newcomer"


def test_a_rate_limited_email_change_rolls_back_the_username_change(gql, user, token):
    # given: the new address has had its account email for this window
    with rate(ACCOUNT_EMAIL_RATE_PER_RECIPIENT=(1, 3600)):
        assert resend(gql, "alice.new@example.com")["success"] is True
        before = db_state()

        # when: a rename and an email change in one request
        body = gql(UPDATE, {"username": "alice2", "email": "alice.new@example.com", "password": PASSWORD}, token=token)

    # then: refused as a whole
    assert_rate_limited(body, "updateAccount", 3600)
    assert db_state() == before
    assert User.objects.get(pk=user.pk).username == "alice"
    assert mail.outbox == []


# --- 8. the audit trail ---------------------------------------------------------------------


def test_registration_and_verification_are_audited(gql):
    # when
    payload = register(gql, headers={"HTTP_USER_AGENT": "AuditTest/1.0"})
    link = link_token(mail.outbox[0])
    assert verify(gql, link)["success"] is True

    # then
    bob = User.objects.get(username="bob")
    (registered,) = events(AuthEventKind.REGISTERED)
    assert registered.user == bob
    assert registered.user_ref == bob.pk
    assert registered.ip_address == "127.0.0.1"
    assert registered.user_agent == "AuditTest/1.0"
    assert registered.session_id == uuid.UUID(payload["payload"]["sid"])
    (verified,) = events(AuthEventKind.EMAIL_VERIFIED)
    assert verified.user == bob
    assert verified.ip_address == "127.0.0.1"


def test_a_resent_verification_is_audited_only_when_sent(gql, make_user):
    make_user(username="bob", email="bob@example.com")
    make_user(username="carol", email="carol@example.com", is_email_verified=True)

    for address in ("bob@example.com", "carol@example.com", "nobody@example.com"):
        assert resend(gql, address)["success"] is True

    (sent,) = events(AuthEventKind.EMAIL_VERIFICATION_SENT)
    assert sent.user.username == "bob"
    assert sent.ip_address == "127.0.0.1"


def test_profile_changes_are_audited(gql, user, token):
    # when
    assert update(gql, token, username="alice2")["success"] is True
    link = request_email_change(gql, token)
    assert verify(gql, link)["success"] is True

    # then
    for kind in (AuthEventKind.USERNAME_CHANGED, AuthEventKind.EMAIL_CHANGE_REQUESTED, AuthEventKind.EMAIL_CHANGED):
        (event,) = events(kind)
        assert event.user_id == user.pk
        assert event.ip_address == "127.0.0.1"
    # confirming a change is not also recorded as a plain verification
    assert events(AuthEventKind.EMAIL_VERIFIED) == []


def test_a_refused_request_is_not_audited_as_done(gql, user, token, make_user):
    make_user(username="bob", email="bob@example.com")

    update(gql, token, username="bob")
    update(gql, token, email="bob@example.com")
    verify(gql, secrets.token_urlsafe(32))

    for kind in (
        AuthEventKind.USERNAME_CHANGED,
        AuthEventKind.EMAIL_CHANGE_REQUESTED,
        AuthEventKind.EMAIL_CHANGED,
        AuthEventKind.EMAIL_VERIFIED,
    ):
        assert events(kind) == []


def test_no_audit_event_holds_a_token(gql, user, token):
    # given: every flow of this module, collecting each secret it handed out
    seen = [token, PASSWORD, NEW_PASSWORD]
    reg = register(gql)
    seen += [reg["token"], reg["refreshToken"], link_token(mails_to("bob@example.com")[-1])]
    assert resend(gql, "bob@example.com")["success"] is True
    bob_link = link_token(mails_to("bob@example.com")[-1])
    seen.append(bob_link)
    assert_invalid_token(verify(gql, seen[-2]))
    assert verify(gql, bob_link)["success"] is True
    assert update(gql, token, username="alice2")["success"] is True
    change = request_email_change(gql, token)
    seen.append(change)
    assert verify(gql, change)["success"] is True
    assert mutation(gql, SEND_RESET, {"email": "alice.new@example.com"}, "sendPasswordResetEmail")["success"]
    reset = link_token(mails_to("alice.new@example.com")[-1], RESET_LINK)
    seen.append(reset)
    reset_result = mutation(gql, PASSWORD_RESET, {"token": reset, "newPassword": NEW_PASSWORD}, "passwordReset")
    assert reset_result["success"] is True
    login = sign_in(gql, password=NEW_PASSWORD, email="alice.new@example.com")["data"]["tokenAuth"]
    seen += [login["token"], login["refreshToken"]]
    sign_in(gql, password="wrong-Password-123", email="alice.new@example.com")
    opaque = [secret for secret in seen if OPAQUE_TOKEN.fullmatch(secret)]
    seen += [hashlib.sha256(secret.encode()).hexdigest() for secret in opaque]

    # then: the trail has the events, and not one column of any row holds a secret
    rows = list(AuthEvent.objects.values())
    kinds = {row["kind"] for row in rows}
    assert {
        AuthEventKind.REGISTERED,
        AuthEventKind.EMAIL_VERIFICATION_SENT,
        AuthEventKind.EMAIL_VERIFIED,
        AuthEventKind.USERNAME_CHANGED,
        AuthEventKind.EMAIL_CHANGE_REQUESTED,
        AuthEventKind.EMAIL_CHANGED,
        AuthEventKind.PASSWORD_RESET,
        AuthEventKind.LOGIN_SUCCEEDED,
        AuthEventKind.LOGIN_FAILED,
    } <= kinds
    for row in rows:
        for column, value in row.items():
            text = str(value)
            for secret in seen:
                assert secret not in text, (row["kind"], column)
    # and emailed tokens are stored as digests only
    for stored in AccountToken.objects.values_list("token_hash", flat=True):
        assert stored not in opaque


# --- an email change needs the current password ---------------------------------------------------


def test_an_email_change_without_the_password_is_refused(gql, user, token):
    before = db_state()

    payload = update(gql, token, email="alice.new@example.com", password=None)

    assert only_error(payload) == ("password", UserErrorCode.REQUIRED.name)
    assert payload["pendingEmail"] is None
    assert db_state() == before
    assert mail.outbox == []


def test_an_email_change_with_a_wrong_password_is_refused(gql, user, token):
    # A stolen access token alone must not move the account to another mailbox.
    before = db_state()

    payload = update(gql, token, email="thief@example.com", password="not-" + PASSWORD)

    assert only_error(payload) == ("password", UserErrorCode.INVALID_PASSWORD.name)
    assert db_state() == before
    assert mail.outbox == []


def test_a_username_change_needs_no_password(gql, user, token):
    payload = update(gql, token, username="alice2")

    assert payload["errors"] == []
    assert User.objects.get(pk=user.pk).username == "alice2"


PASSWORD_CHANGE = """
mutation($old: String!, $new: String!) {
  passwordChange(oldPassword: $old, newPassword: $new) { success errors { field code } }
}
"""


def test_a_password_change_cancels_a_pending_email_change(gql, user, token):
    # given: a change to another mailbox is pending (say, requested by whoever stole a token)
    change = request_email_change(gql, token, "thief@example.com")
    # when: the owner follows the notice's advice and changes the password
    body = gql(PASSWORD_CHANGE, {"old": PASSWORD, "new": "a-brand-New-passphrase-2"}, token=token)
    assert body["data"]["passwordChange"]["success"] is True
    # then: the pending link no longer moves the account
    assert_invalid_token(verify(gql, change))
    assert User.objects.get(pk=user.pk).email == "alice@example.com"
