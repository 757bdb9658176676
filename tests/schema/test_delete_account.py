"""`deleteAccount(password)` over HTTP: the password is confirmed, every session and token of
the account ends at once, and the address can register again without inheriting anything.

With ACCOUNT_DELETION="deactivate" the row stays, inactive and scrubbed. The audit trail
keeps the deletion (by the account's old id) and never a secret.

Reset links are issued and mailed after the request's transaction commits: `gql` runs
that work when each request ends (see tests/schema/test_passwords.py); the test marked
`transaction=True` commits for real.
"""

import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import (
    AccountToken,
    AuthEvent,
    AuthEventKind,
    RefreshToken,
    Session,
    SessionEndReason,
    User,
)
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes
from tests.hashers import CountingMD5PasswordHasher
from tests.schema.test_passwords import CommittingGraphQLClient

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-Brand-new-passphrase-42"

DELETE = """
mutation Delete($password: String!) { deleteAccount(password: $password) { success errors { field message code } } }
"""
TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken payload }
}
"""
USERNAME_AUTH = """
mutation TokenAuth($username: String!, $password: String!) {
  tokenAuth(username: $username, password: $password) { token }
}
"""
REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    token refreshToken payload user { id username email isEmailVerified } errors { field code }
  }
}
"""
REFRESH = "mutation Refresh($refreshToken: String) { refreshToken(refreshToken: $refreshToken) { token refreshToken } }"
REVOKE = "mutation Revoke($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
VERIFY_TOKEN = "mutation Verify($token: String!) { verifyToken(token: $token) { payload } }"
SEND_RESET = "mutation Send($email: String!) { sendPasswordResetEmail(email: $email) { success } }"
RESET = """
mutation Reset($token: String!, $newPassword: String!) {
  passwordReset(token: $token, newPassword: $newPassword) { success errors { field code } }
}
"""
CHANGE = """
mutation Change($oldPassword: String!, $newPassword: String!) {
  passwordChange(oldPassword: $oldPassword, newPassword: $newPassword) { success errors { field code } }
}
"""
ME = "{ me { username email isEmailVerified sessions { id } } }"

RESET_LINK = re.compile(r"https://app\.example\.com/reset-password\?token=([A-Za-z0-9_-]{43})\b")


# --- helpers ---------------------------------------------------------------------------------


def sign_in(gql, email="alice@example.com", password=PASSWORD, agent="Device/1.0") -> dict:
    body = gql(TOKEN_AUTH, {"email": email, "password": password}, headers={"HTTP_USER_AGENT": agent})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def delete(gql, token, password=PASSWORD, **kwargs) -> dict:
    return gql(DELETE, {"password": password}, token=token, **kwargs)


def deleted(gql, token, password=PASSWORD, **kwargs) -> None:
    body = delete(gql, token, password, **kwargs)
    assert body == {"data": {"deleteAccount": {"success": True, "errors": []}}}, body


def register(gql, username="alice", email="alice@example.com", password=NEW_PASSWORD) -> dict:
    body = gql(REGISTER, {"username": username, "email": email, "password": password})
    assert "errors" not in body, body
    payload = body["data"]["register"]
    assert payload["errors"] == [], payload
    return payload


def reset_link(gql, email="alice@example.com") -> str:
    before = len(mail.outbox)
    assert gql(SEND_RESET, {"email": email})["data"]["sendPasswordResetEmail"]["success"] is True
    assert len(mail.outbox) == before + 1
    [token] = RESET_LINK.findall(mail.outbox[-1].body)
    return token


def field_errors(payload: dict) -> list[tuple[str | None, str]]:
    for error in payload["errors"]:
        assert error["message"]
    return [(error["field"], error["code"]) for error in payload["errors"]]


def state(user_id) -> tuple:
    return (
        User.objects.filter(pk=user_id).values().first(),
        list(Session.objects.filter(user_id=user_id).order_by("pk").values()),
        list(RefreshToken.objects.filter(session__user_id=user_id).order_by("pk").values()),
        list(AccountToken.objects.filter(user_id=user_id).order_by("pk").values()),
    )


def codes_everywhere(gql, tokens: dict) -> dict:
    """What each token path answers for a session's access and refresh tokens."""
    return {
        "me": error_codes(gql(ME, token=tokens["token"])),
        "verifyToken": error_codes(gql(VERIFY_TOKEN, {"token": tokens["token"]})),
        "refreshToken": error_codes(gql(REFRESH, {"refreshToken": tokens["refreshToken"]})),
        "revokeToken": error_codes(gql(REVOKE, {"refreshToken": tokens["refreshToken"]})),
    }


@pytest.fixture
def gql(client, django_capture_on_commit_callbacks):
    return CommittingGraphQLClient(client, django_capture_on_commit_callbacks)


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


# --- refusals --------------------------------------------------------------------------------


def test_delete_account_needs_a_signed_in_user(gql, user):
    before = state(user.pk)

    body = delete(gql, None)

    assert error_codes(body) == [AuthErrorCode.UNAUTHENTICATED.value]
    assert body["data"] == {"deleteAccount": None}
    assert state(user.pk) == before


def test_delete_with_an_ended_session_is_refused(gql, user):
    ended = sign_in(gql)
    gql(REVOKE, {"refreshToken": ended["refreshToken"]})
    before = state(user.pk)

    body = delete(gql, ended["token"])

    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert body["data"] == {"deleteAccount": None}
    assert state(user.pk) == before


@pytest.mark.parametrize(
    "password",
    ["not-" + PASSWORD, PASSWORD.upper(), PASSWORD + " ", "", "x" * 1025],
    ids=["wrong", "wrong-case", "trailing-space", "empty", "oversized"],
)
def test_a_wrong_password_keeps_the_account(gql, user, password):
    current, other = sign_in(gql), sign_in(gql)
    before = state(user.pk)

    body = delete(gql, current["token"], password)

    assert "errors" not in body, body
    payload = body["data"]["deleteAccount"]
    assert payload["success"] is False
    assert field_errors(payload) == [("password", UserErrorCode.INVALID_PASSWORD.name)]
    assert state(user.pk) == before
    assert not AuthEvent.objects.filter(kind=AuthEventKind.ACCOUNT_DELETED).exists()
    for tokens in (current, other):
        assert gql(ME, token=tokens["token"])["data"]["me"]["username"] == "alice"


def test_an_oversized_password_is_wrong_without_hashing(gql, user, settings):
    current = sign_in(gql)
    with override_settings(PASSWORD_HASHERS=["tests.hashers.CountingMD5PasswordHasher"]):
        start = CountingMD5PasswordHasher.computed
        delete(gql, current["token"], "wrong-password")
        assert CountingMD5PasswordHasher.computed - start == 1  # control: an ordinary wrong password is hashed
        start = CountingMD5PasswordHasher.computed

        body = delete(gql, current["token"], "x" * (settings.PASSWORD_MAX_LENGTH + 1))

        assert CountingMD5PasswordHasher.computed - start == 0
    assert field_errors(body["data"]["deleteAccount"]) == [("password", UserErrorCode.INVALID_PASSWORD.name)]
    assert User.objects.filter(pk=user.pk).exists()


def test_password_checks_of_delete_and_change_share_one_budget(gql, user, settings):
    # Guessing through deleteAccount must not add to the guesses allowed through passwordChange.
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (2, 300)}
    current = sign_in(gql)
    delete(gql, current["token"], "guess-one")
    gql(CHANGE, {"oldPassword": "guess-two", "newPassword": NEW_PASSWORD}, token=current["token"])
    before = state(user.pk)

    body = delete(gql, current["token"], PASSWORD)

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert body["data"] == {"deleteAccount": None}
    assert state(user.pk) == before


# --- deletion --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deletion_removes_the_account_and_every_row_that_was_its(gql, user, bob):
    # given: two devices (one refreshed, so it has a used token too), a pending reset link,
    # and another account that must stay untouched
    phone, laptop = sign_in(gql, agent="Phone"), sign_in(gql, agent="Laptop")
    gql(REFRESH, {"refreshToken": laptop["refreshToken"]})
    reset_link(gql)
    bobs = sign_in(gql, email="bob@example.com")
    bob_before = state(bob.pk)
    assert Session.objects.filter(user=user).count() == 2
    assert RefreshToken.objects.filter(session__user=user).count() == 3
    assert AccountToken.objects.filter(user=user).count() == 1
    old_id = user.pk
    # when
    deleted(gql, phone["token"])
    # then
    assert not User.objects.filter(pk=old_id).exists()
    assert not User.objects.filter(email="alice@example.com").exists()
    assert not Session.objects.filter(user_id=old_id).exists()
    assert not Session.objects.filter(pk__in=[phone["payload"]["sid"], laptop["payload"]["sid"]]).exists()
    assert not RefreshToken.objects.filter(session__user_id=old_id).exists()
    assert not AccountToken.objects.filter(user_id=old_id).exists()
    assert state(bob.pk) == bob_before
    assert gql(ME, token=bobs["token"])["data"]["me"]["username"] == "bob"


def test_after_deletion_every_old_token_is_refused_never_with_a_500(gql, user):
    phone, laptop = sign_in(gql, agent="Phone"), sign_in(gql, agent="Laptop")
    link = reset_link(gql)

    deleted(gql, phone["token"])

    for tokens in (phone, laptop):
        codes = codes_everywhere(gql, tokens)
        assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in str(codes)
        assert codes == {
            "me": [AuthErrorCode.TOKEN_REVOKED.value],
            "verifyToken": [AuthErrorCode.TOKEN_REVOKED.value],
            # the session and its refresh tokens are gone with the account: never issued, as far as we know
            "refreshToken": [AuthErrorCode.TOKEN_INVALID.value],
            "revokeToken": [AuthErrorCode.TOKEN_INVALID.value],
        }
    assert error_codes(delete(gql, phone["token"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    reset = gql(RESET, {"token": link, "newPassword": NEW_PASSWORD})["data"]["passwordReset"]
    assert reset["errors"] == [{"field": "token", "code": UserErrorCode.INVALID_TOKEN.name}]
    signing_in = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD})
    assert error_codes(signing_in) == [AuthErrorCode.INVALID_CREDENTIALS.value]


def test_the_address_and_username_register_again_and_inherit_nothing(gql, user):
    # given: a verified, signed-in account with a pending reset link, deleted
    User.objects.filter(pk=user.pk).update(is_email_verified=True)
    old = sign_in(gql)
    link = reset_link(gql)
    deleted(gql, old["token"])
    # when: the same email and username, spelled differently, register again
    new = register(gql, username="ALICE", email="Alice@Example.COM")
    # then: a different account that owns nothing of the old one
    account = User.objects.get(email="alice@example.com")
    assert account.pk != user.pk
    assert new["payload"]["sub"] == str(account.pk)
    assert account.is_email_verified is False
    assert new["user"]["isEmailVerified"] is False
    assert list(Session.objects.filter(user=account).values_list("pk", flat=True)) == [
        Session.objects.get(pk=new["payload"]["sid"]).pk
    ]
    me = gql(ME, token=new["token"])["data"]["me"]
    assert len(me["sessions"]) == 1
    # the old tokens and the old link stay dead, and cannot touch the new account
    assert error_codes(gql(ME, token=old["token"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert error_codes(gql(REFRESH, {"refreshToken": old["refreshToken"]})) == [AuthErrorCode.TOKEN_INVALID.value]
    assert error_codes(delete(gql, old["token"], NEW_PASSWORD)) == [AuthErrorCode.TOKEN_REVOKED.value]
    reset = gql(RESET, {"token": link, "newPassword": "Quite-different-pass-99"})["data"]["passwordReset"]
    assert reset["success"] is False
    account.refresh_from_db()
    assert account.check_password(NEW_PASSWORD)
    # the audit trail of the old account does not become the new one's
    assert set(AuthEvent.objects.filter(user=account).values_list("user_ref", flat=True)) == {account.pk}
    assert not AuthEvent.objects.filter(user_ref=user.pk, user__isnull=False).exists()


def test_deletion_is_audited_under_the_old_id(gql, user):
    first, _ = sign_in(gql), sign_in(gql)
    old_id = user.pk

    deleted(gql, first["token"], headers={"HTTP_USER_AGENT": "Closer/1.0"})

    [gone] = AuthEvent.objects.filter(kind=AuthEventKind.ACCOUNT_DELETED)
    assert (gone.user_id, gone.user_ref) == (None, old_id)
    assert (gone.ip_address, gone.user_agent) == ("127.0.0.1", "Closer/1.0")
    [ended] = AuthEvent.objects.filter(kind=AuthEventKind.SESSIONS_ENDED)
    assert (ended.user_id, ended.user_ref) == (None, old_id)
    assert ended.detail == f"{SessionEndReason.ACCOUNT_DELETED}: 2"
    # the account's earlier events are kept too, under its old id
    assert AuthEvent.objects.filter(kind=AuthEventKind.LOGIN_SUCCEEDED, user_ref=old_id).count() == 2
    dumped = json.dumps(list(AuthEvent.objects.values()), default=str)
    for secret in (PASSWORD, first["token"], first["refreshToken"]):
        assert secret not in dumped


# --- ACCOUNT_DELETION = "deactivate" ---------------------------------------------------------


@pytest.fixture
def deactivate(settings):
    settings.ACCOUNT_DELETION = "deactivate"


def test_deactivate_mode_keeps_an_inactive_scrubbed_row(gql, user, deactivate):
    phone, laptop = sign_in(gql, agent="Phone"), sign_in(gql, agent="Laptop")
    reset_link(gql)
    User.objects.filter(pk=user.pk).update(is_email_verified=True)

    deleted(gql, phone["token"])

    row = User.objects.get(pk=user.pk)
    assert row.is_active is False
    assert row.has_usable_password() is False
    assert row.is_email_verified is False
    assert "alice" not in row.username.lower()
    assert "alice" not in row.email
    assert not AccountToken.objects.filter(user=row).exists()
    sessions = Session.objects.filter(user=row)
    assert sessions.count() == 2
    assert set(sessions.values_list("revoked_reason", flat=True)) == {SessionEndReason.ACCOUNT_DELETED}
    assert not sessions.filter(revoked_at__isnull=True).exists()
    for tokens in (phone, laptop):
        codes = codes_everywhere(gql, tokens)
        assert codes["me"] == codes["verifyToken"] == [AuthErrorCode.TOKEN_REVOKED.value]
        assert codes["refreshToken"] == codes["revokeToken"] == [AuthErrorCode.TOKEN_REVOKED.value]
    for body in (
        gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD}),
        gql(USERNAME_AUTH, {"username": "alice", "password": PASSWORD}),
        gql(TOKEN_AUTH, {"email": row.email, "password": PASSWORD}),
    ):
        assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    [gone] = AuthEvent.objects.filter(kind=AuthEventKind.ACCOUNT_DELETED)
    assert (gone.user_id, gone.user_ref) == (user.pk, user.pk)


def test_deactivate_mode_frees_the_address_and_username(gql, user, deactivate):
    old = sign_in(gql)
    deleted(gql, old["token"])

    new = register(gql)

    account = User.objects.get(email="alice@example.com")
    assert account.pk != user.pk
    assert account.is_active is True
    assert account.is_email_verified is False
    assert new["payload"]["sub"] == str(account.pk)
    assert Session.objects.filter(user=account).count() == 1
    assert error_codes(gql(ME, token=old["token"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert error_codes(gql(REFRESH, {"refreshToken": old["refreshToken"]})) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert gql(ME, token=new["token"])["data"]["me"]["username"] == "alice"


def test_deactivate_mode_deletes_twice_without_collisions(gql, user, deactivate):
    # Two deleted accounts must not collide on their scrubbed username or email.
    deleted(gql, sign_in(gql)["token"])
    register(gql)
    deleted(gql, sign_in(gql, password=NEW_PASSWORD)["token"], NEW_PASSWORD)

    assert User.objects.filter(is_active=False).count() == 2
    assert not User.objects.filter(email="alice@example.com").exists()


@pytest.mark.parametrize("field", ["username", "email"])
def test_deactivate_mode_cannot_be_blocked_by_a_squatted_placeholder(gql, user, deactivate, field):
    # given: someone registered the username or address an earlier version scrubbed rows to
    # ("deleted-<id>", "deleted-<id>@deleted.invalid": both valid registrations, so the
    # deletion failed on a unique constraint with INTERNAL_SERVER_ERROR)
    squatter = {"username": "squatter", "email": "squatter@example.com"}
    squatter[field] = f"deleted-{user.pk}" if field == "username" else f"deleted-{user.pk}@deleted.invalid"
    register(gql, **squatter)
    current = sign_in(gql)
    # when
    body = delete(gql, current["token"])
    # then: alice can still delete her account, and never gets an internal error
    assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in error_codes(body), body
    assert body == {"data": {"deleteAccount": {"success": True, "errors": []}}}, body
    row = User.objects.get(pk=user.pk)
    assert row.is_active is False
    assert not Session.objects.filter(user=row, revoked_at__isnull=True).exists()


def test_deactivate_mode_placeholders_can_never_be_registered(gql, user, deactivate, make_user):
    # The scrubbed username and email must be values no registration (or rename) accepts,
    # so nobody can take them first and make someone's deletion fail.
    deleted(gql, sign_in(gql)["token"])
    row = User.objects.get(pk=user.pk)

    body = gql(REGISTER, {"username": row.username, "email": row.email, "password": NEW_PASSWORD})

    errors = body["data"]["register"]["errors"]
    assert sorted(errors, key=lambda e: e["field"]) == [
        {"field": "email", "code": UserErrorCode.INVALID.name},
        {"field": "username", "code": UserErrorCode.INVALID.name},
    ]
    assert User.objects.count() == 1


def test_deactivate_mode_with_a_wrong_password_changes_nothing(gql, user, deactivate):
    current = sign_in(gql)
    before = state(user.pk)

    payload = delete(gql, current["token"], "not-" + PASSWORD)["data"]["deleteAccount"]

    assert field_errors(payload) == [("password", UserErrorCode.INVALID_PASSWORD.name)]
    assert state(user.pk) == before


def test_an_expired_session_cannot_delete(gql, user):
    current = sign_in(gql)
    Session.objects.filter(pk=current["payload"]["sid"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = state(user.pk)

    body = delete(gql, current["token"])

    assert error_codes(body) == [AuthErrorCode.TOKEN_EXPIRED.value]
    assert state(user.pk) == before
