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


TOKEN_AUTH_BY_USERNAME = "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { token } }"


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("email", "tr0ub4dor&3 horse!"),
        ("email", "my secret pass#1"),
        ("email", "correct horse battery staple"),
        ("username", "Tr0ub4dor3"),  # shaped like a username, but no account has it
        ("username", "my secret pass#1"),
    ],
)
def test_a_password_typed_into_the_login_field_is_not_kept_in_the_audit_trail(gql, user, field, typed):
    query = TOKEN_AUTH if field == "email" else TOKEN_AUTH_BY_USERNAME
    body = gql(query, {"e" if field == "email" else "u": typed, "p": PASSWORD})

    assert body["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS"
    event = AuthEvent.objects.get(kind=AuthEventKind.LOGIN_FAILED)
    # kept as a keyed digest: the same unknown name twice shows as one, and is unreadable
    assert event.identifier.startswith("unknown:")
    for column in (event.identifier, event.detail, event.user_agent):
        assert typed.lower() not in column.lower()
    gql(query, {"e" if field == "email" else "u": typed, "p": PASSWORD})
    assert AuthEvent.objects.filter(kind=AuthEventKind.LOGIN_FAILED).values("identifier").distinct().count() == 1


def test_an_existing_accounts_username_is_kept_readable_in_the_audit_trail(gql, user):
    gql(TOKEN_AUTH_BY_USERNAME, {"u": "ALICE", "p": "not-" + PASSWORD})

    assert AuthEvent.objects.get(kind=AuthEventKind.LOGIN_FAILED).identifier == "username:alice"


# --- password changes and address changes outside the user's own flows -------------------------


def test_a_reset_link_is_bound_to_the_password_it_was_issued_for(gql, user):
    # The link dies with any password change, even one that bypasses every service (a shell).
    link = ask_reset_token(gql)
    user.set_password("changed-In-a-shell-1")
    user.save()

    assert invalid_token(reset(gql, link))
    user.refresh_from_db()
    assert user.check_password("changed-In-a-shell-1")


@pytest.fixture
def admin_client(make_user):
    from django.test import Client

    root = User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    client = Client(HTTP_HOST="localhost")
    client.force_login(root)
    client.root = root
    return client


def test_an_administrators_email_edit_kills_the_links_of_the_old_address(gql, user, token, admin_client):
    from django.urls import reverse

    from tests.accounts.test_session_admin import change_form_data

    # given: a pending change to a thief's mailbox, and a reset link in alice's old mailbox
    change = request_email_change(gql, token, "thief@example.com")
    link = ask_reset_token(gql)
    # when: an administrator sets alice's address in the admin
    data = {**change_form_data(admin_client, user), "email": "alice.fixed@example.com"}
    response = admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    assert response.status_code == 302
    # then: neither link moves or resets the account
    assert invalid_token(gql(VERIFY, {"token": change})["data"]["verifyAccount"])
    assert invalid_token(reset(gql, link))
    user.refresh_from_db()
    assert user.email == "alice.fixed@example.com"
    assert user.check_password(PASSWORD)


def test_the_admins_own_password_page_ends_their_sessions_and_links(gql, admin_client):
    from django.urls import reverse

    from accounts.services import session_open

    # given: the administrator has an API session and a pending email change
    root = admin_client.root
    api_token = session_open(user=root).token
    change = request_email_change(gql, api_token, "thief@example.com")
    # when: they open the admin's own password page, first typing a wrong old password
    assert admin_client.get(reverse("admin:password_change")).status_code == 200
    wrong = admin_client.post(
        reverse("admin:password_change"),
        {"old_password": "not-" + PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200  # the form again, with its error
    assert gql("{ me { id } }", token=api_token)["data"]["me"] is not None
    response = admin_client.post(
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    # then: the admin session carries on, every API session ended, the link died, it is audited
    assert response.status_code == 302
    assert admin_client.get(reverse("admin:index")).status_code == 200
    body = gql("{ me { id } }", token=api_token)
    assert body["errors"][0]["extensions"]["code"] == "TOKEN_REVOKED"
    assert invalid_token(gql(VERIFY, {"token": change})["data"]["verifyAccount"])
    root.refresh_from_db()
    assert root.check_password(NEW_PASSWORD)
    assert AuthEvent.objects.filter(kind=AuthEventKind.PASSWORD_CHANGED, user=root).count() == 1


def test_update_account_counts_against_the_registration_budget(gql, user, token, settings):
    # Both answer whether a name is taken, so they share one budget per client address.
    from django.test import override_settings

    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REGISTER_RATE_PER_ADDRESS": (1, 3600)}):
        first = gql(UPDATE_USERNAME, {"u": "alice2"}, token=token)
        second = gql(UPDATE_USERNAME, {"u": "alice3"}, token=token)

    assert first["data"]["updateAccount"]["success"] is True
    assert second["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert User.objects.get(pk=user.pk).username == "alice2"


UPDATE_USERNAME = "mutation($u: String) { updateAccount(username: $u) { success errors { field code } } }"
