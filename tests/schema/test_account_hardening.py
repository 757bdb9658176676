"""Ways back into an account after its owner acted: each one closed (from a security review).

A pending email change, a reset link in an old mailbox, a link of a deactivated account,
a reset of a password an administrator disabled, a password typed into the login field
kept in the audit trail.
"""

import pytest
from django.core import mail

from accounts.models import AccountToken, AuthEvent, AuthEventKind, User
from accounts.services import password_set, user_deactivate
from tests.conftest import PASSWORD
from tests.schema.test_passwords import (
    NEW_PASSWORD,
    ask_reset_token,
    invalid_token,
    request_reset,
    reset,
)

UPDATE = """
mutation($email: String, $password: String) {
  updateAccount(email: $email, password: $password) { success pendingEmail errors { field code } }
}
"""
VERIFY = "mutation($token: String!) { verifyAccount(token: $token) { success errors { field message code } } }"
TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"


@pytest.fixture
def gql(client, django_capture_on_commit_callbacks):
    from tests.schema.test_passwords import CommittingGraphQLClient

    return CommittingGraphQLClient(client, django_capture_on_commit_callbacks)


def request_email_change(gql, token, email) -> str:
    body = gql(UPDATE, {"email": email, "password": PASSWORD}, token=token)
    assert body["data"]["updateAccount"]["pendingEmail"] == email, body
    message = next(message for message in reversed(mail.outbox) if message.to == [email])
    return message.body.split("activate?token=")[1].split()[0]


def test_a_password_reset_cancels_a_pending_email_change(gql, user, token):
    # given: a change to a thief's mailbox is pending, and the owner resets the password
    change = request_email_change(gql, token, "thief@example.com")
    assert reset(gql, ask_reset_token(gql))["success"] is True
    # when: the thief opens the change link
    payload = gql(VERIFY, {"token": change})["data"]["verifyAccount"]
    # then: dead; the account keeps its address
    assert invalid_token(payload)
    assert User.objects.get(pk=user.pk).email == "alice@example.com"


def test_an_administrators_password_set_cancels_a_pending_email_change(gql, user, token):
    change = request_email_change(gql, token, "thief@example.com")
    password_set(user=user, password=NEW_PASSWORD)

    assert invalid_token(gql(VERIFY, {"token": change})["data"]["verifyAccount"])
    assert User.objects.get(pk=user.pk).email == "alice@example.com"


def test_a_reset_link_dies_when_the_address_changes_outside_the_user_flows(gql, user):
    # given: a reset link in the old mailbox, then the address is changed directly (shell, admin)
    link = ask_reset_token(gql)
    User.objects.filter(pk=user.pk).update(email="alice.new@example.com")
    # when / then: the link no longer resets anything
    assert invalid_token(reset(gql, link))
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_a_deactivated_accounts_links_stay_dead_after_reactivation(gql, user):
    # given: a reset link, then the account is deactivated and later reactivated
    link = ask_reset_token(gql)
    user_deactivate(user=user)
    User.objects.filter(pk=user.pk).update(is_active=True)
    # when / then
    assert invalid_token(reset(gql, link))
    assert not AccountToken.objects.filter(user=user, used_at__isnull=True).exists()


def test_no_reset_mail_for_an_account_whose_password_an_administrator_disabled(gql, user):
    # As Django's PasswordResetForm: whoever reads the mailbox must not undo the administrator.
    password_set(user=user, password=None)
    mail.outbox.clear()

    body = request_reset(gql, "alice@example.com")

    assert body == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}}
    assert mail.outbox == []
    assert not AccountToken.objects.filter(user=user).exists()
    event = AuthEvent.objects.filter(kind=AuthEventKind.PASSWORD_RESET_REQUESTED).get()
    assert (event.user_id, event.detail) == (None, "no such account")


@pytest.mark.parametrize("typed", ["tr0ub4dor&3 horse!", "my secret pass#1", "correct horse battery staple"])
def test_a_password_typed_into_the_login_field_is_not_kept_in_the_audit_trail(gql, user, typed):
    body = gql(TOKEN_AUTH, {"e": typed, "p": PASSWORD})

    assert body["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
    event = AuthEvent.objects.get(kind=AuthEventKind.LOGIN_FAILED)
    assert event.identifier == "(not an email or username)"
    for column in (event.identifier, event.detail, event.user_agent):
        assert typed.lower() not in column.lower()
