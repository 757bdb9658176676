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


def test_refusals_by_a_budget_are_recorded_once_per_lockout(staff, settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (2, 360)}
    browser = Client(HTTP_HOST="localhost")
    for _ in range(12):
        admin_login(browser, "root@example.com", "wrong-password")
    details = list(AuthEvent.objects.order_by("pk").values_list("detail", flat=True))
    assert details == ["admin", "admin", "admin, rate limited"]


def test_the_admins_own_password_page_counts_its_checks(staff, settings):
    # given: a signed-in administrator guessing at the "change my password" page
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (3, 360)}
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(staff)
    form = {"new_password1": "a-Brand-new-passphrase-42", "new_password2": "a-Brand-new-passphrase-42"}
    for attempt in range(3):
        response = browser.post("/admin/password_change/", {**form, "old_password": f"guess-{attempt}"})
        assert response.status_code == 200
        assert "old_password" in response.context["form"].errors
    # when: the right old password, once the budget is spent
    response = browser.post("/admin/password_change/", {**form, "old_password": PASSWORD})
    # then: refused, and the password is unchanged
    assert response.status_code == 200
    assert response.context["form"].errors["old_password"][0].startswith("Too many attempts")
    staff.refresh_from_db()
    assert staff.check_password(PASSWORD)


def test_the_admin_deletes_an_account_with_sessions_and_the_trail_names_who(staff, make_user):
    # given: an account with a session (the admin used to refuse: no delete permission on sessions)
    from accounts.models import Session
    from accounts.services import session_open

    member = make_user(username="member", email="member@example.com")
    session_open(user=member)
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(staff)
    # when
    response = browser.post(f"/admin/accounts/user/{member.pk}/delete/", {"post": "yes"})
    # then
    assert response.status_code == 302
    assert not User.objects.filter(pk=member.pk).exists()
    assert not Session.objects.filter(user_id=member.pk).exists()
    event = AuthEvent.objects.get(kind=AuthEventKind.ACCOUNT_DELETED)
    assert (event.user_ref, event.detail) == (member.pk, f"by user {staff.pk}")
