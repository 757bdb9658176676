"""Sign-ins through the Django admin's login form are in the audit trail, as GraphQL sign-ins are."""

import pytest
from django.test import Client

from accounts.models import AuthEvent, AuthEventKind, User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def staff(make_user):
    return make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)


def admin_login(browser, email, password):
    return browser.post(LOGIN, {"username": email, "password": password}, HTTP_USER_AGENT="Browser/1.0")


def test_admin_sign_ins_are_recorded_with_the_fields_of_a_graphql_sign_in(staff):
    # given: a browser at the admin's login page
    browser = Client(HTTP_HOST="localhost", REMOTE_ADDR="198.51.100.20")
    # when: two failed attempts (a wrong password, an unknown address), then a success
    assert admin_login(browser, "root@example.com", "wrong-password").status_code == 200
    assert admin_login(browser, "nobody@example.com", PASSWORD).status_code == 200
    assert admin_login(browser, "ROOT@example.com", PASSWORD).status_code == 302
    # then: three entries, in order, with the account, identifier, address and agent
    events = list(AuthEvent.objects.order_by("pk"))
    assert [(e.kind, e.user_id, e.identifier, e.detail) for e in events] == [
        (AuthEventKind.LOGIN_FAILED, staff.pk, "email:root@example.com", "admin"),
        (AuthEventKind.LOGIN_FAILED, None, "email:nobody@example.com", "admin"),
        (AuthEventKind.LOGIN_SUCCEEDED, staff.pk, "email:root@example.com", "admin"),
    ]
    assert {(e.ip_address, e.user_agent, e.user_ref) for e in events[::2]} == {
        ("198.51.100.20", "Browser/1.0", staff.pk)
    }


def test_a_valid_account_that_is_not_staff_is_a_failed_admin_sign_in(make_user):
    member = make_user(username="member", email="member@example.com")
    browser = Client(HTTP_HOST="localhost")
    response = admin_login(browser, "member@example.com", PASSWORD)
    assert response.status_code == 200
    assert "_auth_user_id" not in browser.session
    event = AuthEvent.objects.get()
    assert (event.kind, event.user_id, event.detail) == (AuthEventKind.LOGIN_FAILED, member.pk, "admin")


def test_what_is_typed_in_the_admins_login_field_is_never_kept_readable(staff):
    browser = Client(HTTP_HOST="localhost")
    admin_login(browser, "my-Secret-passphrase", "whatever")
    event = AuthEvent.objects.get()
    assert event.identifier.startswith("unknown:")
    assert "Secret" not in event.identifier
    assert User.objects.count() == 1
