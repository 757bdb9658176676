"""Passwords set from outside the user's own flows: the admin's "change password" form and
`manage.py changepassword`. Both must sign out whoever holds the account's tokens (the API
answers TOKEN_REVOKED on the next request), kill pending reset links, run the validators,
and leave an audit trail.

The admin is driven over HTTP by a signed-in superuser; the API by a separate client, as a
user's device would be. The command's only stand-in is the terminal: `getpass.getpass`.
Reset links are mailed on commit: the API client runs each request's after-commit work when
the request ends (see tests/schema/test_passwords.py); the test marked `transaction=True`
commits for real.
"""

import re
from io import StringIO

import pytest
from django.contrib.auth.management.commands import changepassword as django_changepassword
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import AccountToken, AuthEvent, AuthEventKind, RefreshToken, Session, SessionEndReason, User
from tests.conftest import PASSWORD, error_codes
from tests.schema.test_passwords import CommittingGraphQLClient

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-Brand-new-passphrase-42"

TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken payload }
}
"""
REFRESH = "mutation Refresh($refreshToken: String) { refreshToken(refreshToken: $refreshToken) { token } }"
SEND_RESET = "mutation Send($email: String!) { sendPasswordResetEmail(email: $email) { success } }"
RESET = """
mutation Reset($token: String!, $newPassword: String!) {
  passwordReset(token: $token, newPassword: $newPassword) { success errors { field code } }
}
"""
ME = "{ me { username } }"
RESET_LINK = re.compile(r"https://app\.example\.com/reset-password\?token=([A-Za-z0-9_-]{43})\b")


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def api(db, django_capture_on_commit_callbacks):
    """A GraphQL client of its own, so the admin's browser session never rides along."""
    return CommittingGraphQLClient(Client(HTTP_HOST="localhost"), django_capture_on_commit_callbacks)


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def password_url(user) -> str:
    # Django's UserAdmin names this URL "auth_user_password_change" whatever the user model.
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    assert url == f"/admin/accounts/user/{user.pk}/password/"
    return url


def sign_in(api, email="alice@example.com", password=PASSWORD) -> dict:
    body = api(TOKEN_AUTH, {"email": email, "password": password})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def sign_in_codes(api, email="alice@example.com", password=PASSWORD) -> list[str]:
    return error_codes(api(TOKEN_AUTH, {"email": email, "password": password}))


def assert_signed_out(api, tokens: dict) -> None:
    assert error_codes(api(ME, token=tokens["token"])) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert error_codes(api(REFRESH, {"refreshToken": tokens["refreshToken"]})) == [AuthErrorCode.TOKEN_REVOKED.value]


def assert_signed_in(api, tokens: dict, username="alice") -> None:
    assert api(ME, token=tokens["token"]) == {"data": {"me": {"username": username}}}


def reset_link(api, email="alice@example.com") -> str:
    before = len(mail.outbox)
    assert api(SEND_RESET, {"email": email})["data"]["sendPasswordResetEmail"]["success"] is True
    assert len(mail.outbox) == before + 1
    [token] = RESET_LINK.findall(mail.outbox[-1].body)
    return token


def state(user) -> tuple:
    return (
        User.objects.filter(pk=user.pk).values().first(),
        list(Session.objects.filter(user=user).order_by("pk").values()),
        list(RefreshToken.objects.filter(session__user=user).order_by("pk").values()),
        list(AccountToken.objects.filter(user=user).order_by("pk").values()),
    )


def password_form(password1=NEW_PASSWORD, password2=None, **extra) -> dict:
    return {"password1": password1, "password2": password1 if password2 is None else password2, **extra}


@pytest.fixture
def terminal(monkeypatch):
    """Answers typed at the command's password prompts, in order; records the prompts."""

    class Terminal:
        answers: list[str] = []
        prompts: list[str] = []

        def getpass(self, prompt="Password: "):
            self.prompts.append(prompt)
            return self.answers.pop(0)

    typed = Terminal()
    typed.answers, typed.prompts = [], []
    monkeypatch.setattr(django_changepassword.getpass, "getpass", typed.getpass)
    return typed


def change_password(*args) -> str:
    out = StringIO()
    call_command("changepassword", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- the admin's "change password" form ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_admin_password_form_sets_the_password_and_ends_every_session(admin_client, api, user):
    # given: alice is signed in on two devices
    phone, laptop = sign_in(api), sign_in(api)
    # when: an administrator sets a new password
    response = admin_client.post(password_url(user), password_form(usable_password="true"))
    # then
    assert response.status_code == 302, response.context["form"].errors if response.context else None
    assert response["Location"] == reverse("admin:accounts_user_change", args=[user.pk])
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    for tokens in (phone, laptop):
        assert_signed_out(api, tokens)
    sessions = Session.objects.filter(user=user)
    assert set(sessions.values_list("revoked_reason", flat=True)) == {SessionEndReason.PASSWORD_CHANGE}
    assert not sessions.filter(revoked_at__isnull=True).exists()
    assert sign_in_codes(api, password=PASSWORD) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert_signed_in(api, sign_in(api, password=NEW_PASSWORD))
    # and the administrator's own admin session carries on
    assert admin_client.get(reverse("admin:accounts_user_changelist")).status_code == 200


def test_admin_password_form_is_audited(admin_client, api, user):
    sign_in(api)
    sign_in(api)

    admin_client.post(password_url(user), password_form(usable_password="true"))

    [changed] = AuthEvent.objects.filter(kind=AuthEventKind.PASSWORD_CHANGED)
    assert (changed.user_id, changed.user_ref) == (user.pk, user.pk)
    assert changed.detail == "set by an administrator"
    [ended] = AuthEvent.objects.filter(kind=AuthEventKind.SESSIONS_ENDED)
    assert ended.user_id == user.pk
    assert ended.detail.startswith(f"{SessionEndReason.PASSWORD_CHANGE}: 2")
    dumped = str(list(AuthEvent.objects.values()))
    assert NEW_PASSWORD not in dumped
    assert PASSWORD not in dumped


def test_admin_password_form_kills_a_pending_reset_link(admin_client, api, user):
    link = reset_link(api)

    admin_client.post(password_url(user), password_form(usable_password="true"))

    payload = api(RESET, {"token": link, "newPassword": "Attackers-choice-pass-1"})["data"]["passwordReset"]
    assert payload == {"success": False, "errors": [{"field": "token", "code": UserErrorCode.INVALID_TOKEN.name}]}
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (password_form("12345678"), "password2"),
        (password_form("password123"), "password2"),
        (password_form("alice@example.co"), "password2"),
        (password_form("x" * 1025), "password2"),
        (password_form(NEW_PASSWORD, NEW_PASSWORD + "!"), "password2"),
        (password_form(""), "password1"),
    ],
    ids=["numeric", "common", "similar", "over-1024", "mismatch", "empty"],
)
def test_admin_password_form_refuses_bad_input_and_ends_nothing(admin_client, api, user, data, field):
    tokens = sign_in(api)
    before = state(user)

    response = admin_client.post(password_url(user), {**data, "usable_password": "true"})

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert state(user) == before
    assert_signed_in(api, tokens)
    assert not AuthEvent.objects.filter(kind=AuthEventKind.PASSWORD_CHANGED).exists()


def test_admin_disabling_password_sign_in_ends_every_session(admin_client, api, user):
    tokens = sign_in(api)

    response = admin_client.post(password_url(user), {"usable_password": "false", "unset-password": "1"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.has_usable_password() is False
    assert_signed_out(api, tokens)
    assert sign_in_codes(api, password=PASSWORD) == [AuthErrorCode.INVALID_CREDENTIALS.value]


def test_an_administrator_changing_their_own_password_ends_their_api_sessions(admin_client, api, admin_user):
    tokens = sign_in(api, email="root@example.com")

    response = admin_client.post(password_url(admin_user), password_form(usable_password="true"))

    assert response.status_code == 302
    assert_signed_out(api, tokens)
    # Django keeps the admin's browser session (update_session_auth_hash): only API tokens end.
    assert admin_client.get(reverse("admin:accounts_user_changelist")).status_code == 200


def test_staff_without_the_change_permission_cannot_set_a_password(client, api, user, make_user):
    viewer = make_user(username="viewer", email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user", content_type__app_label="accounts"))
    client.force_login(viewer)
    tokens = sign_in(api)
    before = state(user)

    response = client.post(password_url(user), password_form(usable_password="true"))

    assert response.status_code == 403
    assert state(user) == before
    assert_signed_in(api, tokens)


def test_a_non_staff_user_cannot_reach_the_password_form(client, api, user, make_user):
    other = make_user(username="mallory", email="mallory@example.com")
    client.force_login(other)
    tokens = sign_in(api)
    before = state(user)

    response = client.post(password_url(user), password_form(usable_password="true"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert state(user) == before
    assert_signed_in(api, tokens)


# --- manage.py changepassword ----------------------------------------------------------------


def test_changepassword_sets_the_password_and_ends_every_session(api, user, terminal):
    phone, laptop = sign_in(api), sign_in(api)
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]

    output = change_password("alice@example.com")

    assert terminal.prompts == ["Password: ", "Password (again): "]
    assert "Password changed successfully for user 'alice'" in output
    assert "Ended 2 session(s)." in output
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    for tokens in (phone, laptop):
        assert_signed_out(api, tokens)
    assert set(Session.objects.filter(user=user).values_list("revoked_reason", flat=True)) == {
        SessionEndReason.PASSWORD_CHANGE
    }
    assert sign_in_codes(api, password=PASSWORD) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert_signed_in(api, sign_in(api, password=NEW_PASSWORD))


def test_changepassword_kills_a_pending_reset_link(api, user, terminal):
    link = reset_link(api)
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]

    change_password("alice@example.com")

    payload = api(RESET, {"token": link, "newPassword": "Attackers-choice-pass-1"})["data"]["passwordReset"]
    assert payload["errors"] == [{"field": "token", "code": UserErrorCode.INVALID_TOKEN.name}]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_changepassword_ends_only_that_accounts_sessions(api, user, make_user, terminal):
    make_user(username="bob", email="bob@example.com")
    bobs = sign_in(api, email="bob@example.com")
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]

    change_password("alice@example.com")

    assert_signed_in(api, bobs, "bob")


def test_changepassword_is_audited_as_a_password_change(api, user, terminal):
    # Every password change is in the audit trail (issue 4, item 9), whichever path made it:
    # the admin form records PASSWORD_CHANGED, so the command must too.
    sign_in(api)
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]

    change_password("alice@example.com")

    [ended] = AuthEvent.objects.filter(kind=AuthEventKind.SESSIONS_ENDED)
    assert ended.user_id == user.pk
    assert ended.detail.startswith(f"{SessionEndReason.PASSWORD_CHANGE}: 1")
    changed = AuthEvent.objects.filter(kind=AuthEventKind.PASSWORD_CHANGED, user=user)
    assert changed.count() == 1


def test_changepassword_retries_after_a_mismatch(api, user, terminal):
    tokens = sign_in(api)
    terminal.answers = [NEW_PASSWORD, "something-else-entirely", NEW_PASSWORD, NEW_PASSWORD]

    change_password("alice@example.com")

    assert len(terminal.prompts) == 4
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert_signed_out(api, tokens)


def test_changepassword_refusing_weak_passwords_changes_nothing(api, user, terminal):
    tokens = sign_in(api)
    terminal.answers = ["12345678", "12345678", "password123", "password123", "alice@example.co", "alice@example.co"]
    before = state(user)

    with pytest.raises(CommandError, match="Aborting password change"):
        change_password("alice@example.com")

    assert state(user) == before
    assert_signed_in(api, tokens)


def test_changepassword_of_an_unknown_account_changes_nothing(api, user, terminal):
    tokens = sign_in(api)
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]
    before = state(user)

    with pytest.raises(CommandError, match="does not exist"):
        change_password("nobody@example.com")

    assert terminal.prompts == []
    assert state(user) == before
    assert_signed_in(api, tokens)


def test_changepassword_finds_the_account_whatever_the_emails_case(api, user, terminal):
    # Emails are stored lowercased and every login path finds an account whatever case the
    # address is typed in (UserManager.get_by_natural_key); the operator's command should too.
    tokens = sign_in(api)
    terminal.answers = [NEW_PASSWORD, NEW_PASSWORD]

    change_password("Alice@Example.COM")

    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert_signed_out(api, tokens)
