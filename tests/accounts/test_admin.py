"""The Django admin for users, driven over HTTP by a signed-in superuser."""

import re

import pytest
from django.urls import reverse

from accounts.error_codes import UserErrorCode
from accounts.models import User
from tests.conftest import PASSWORD

CHANGELIST = reverse("admin:accounts_user_changelist")
ADD = reverse("admin:accounts_user_add")


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def add_form(**overrides) -> dict:
    data = {
        "username": "carol",
        "email": "Carol@Example.COM",
        "usable_password": "true",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "_save": "Save",
    }
    return {**data, **overrides}


def test_changelist_lists_the_users(admin_client, user, make_user):
    # given
    make_user(username="bob", email="bob@example.com")
    # when
    response = admin_client.get(CHANGELIST)
    # then
    assert response.status_code == 200
    listed = {u.email for u in response.context["cl"].result_list}
    assert listed == {"root@example.com", "alice@example.com", "bob@example.com"}
    assert b"alice@example.com" in response.content


def test_changelist_search_by_email_finds_the_user(admin_client, user, make_user):
    # given
    make_user(username="bob", email="bob@example.com")
    # when
    response = admin_client.get(CHANGELIST, {"q": "ALICE@example"})
    # then
    assert response.status_code == 200
    assert [u.username for u in response.context["cl"].result_list] == ["alice"]


def test_changelist_search_by_username_finds_the_user(admin_client, user, make_user):
    make_user(username="bob", email="bob@example.com")
    response = admin_client.get(CHANGELIST, {"q": "bob"})
    assert response.status_code == 200
    assert [u.email for u in response.context["cl"].result_list] == ["bob@example.com"]


def test_add_form_creates_a_user_with_a_lowercased_email_and_a_hashed_password(admin_client):
    # when
    response = admin_client.post(ADD, add_form())
    # then
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    carol = User.objects.get(username="carol")
    assert carol.email == "carol@example.com"
    assert carol.password != PASSWORD
    assert PASSWORD not in carol.password
    assert carol.check_password(PASSWORD)
    assert not carol.is_staff
    assert not carol.is_superuser
    assert User.objects.count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "ALICE@example.com"}, "email"),  # taken, in another case
        ({"email": "not-an-address"}, "email"),
        ({"username": "ALICE"}, "username"),  # taken, in another case
        ({"username": "\u0430lice"}, "username"),  # Cyrillic lookalike
        ({"password1": "12345678", "password2": "12345678"}, "password2"),  # validators run
    ],
    ids=["email-taken", "email-invalid", "username-taken", "username-lookalike", "password-weak"],
)
def test_add_form_refuses_bad_input_and_writes_nothing(admin_client, user, overrides, field):
    # when
    response = admin_client.post(ADD, add_form(**overrides))
    # then
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "root"]


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"email": "ALICE@example.com"}, "email", UserErrorCode.UNIQUE.value),
        ({"email": "not-an-address"}, "email", UserErrorCode.INVALID.value),
        ({"username": "ALICE"}, "username", UserErrorCode.UNIQUE.value),
        ({"username": "\u0430lice"}, "username", UserErrorCode.INVALID.value),
    ],
    ids=["email-taken", "email-invalid", "username-taken", "username-lookalike"],
)
def test_add_form_reports_each_refusal_once(admin_client, user, overrides, field, code):
    # An admin should see one message per problem, not a duplicate or a misleading
    # "This field is required." next to "A user with that username already exists.".
    response = admin_client.post(ADD, add_form(**overrides))
    errors = response.context["adminform"].form.errors.get_json_data()
    assert [error["code"] for error in errors[field]] == [code]
    assert User.objects.count() == 2


def test_change_page_does_not_show_the_password_hash(admin_client, user):
    # when
    response = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert user.password not in html
    digest = user.password.rsplit("$", 1)[-1]
    assert digest not in html
    assert not re.search(r'<input[^>]*name="password"', html)


def test_change_form_lowercases_an_edited_email(admin_client, user):
    # given
    url = reverse("admin:accounts_user_change", args=[user.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update({"email": "Alice.New@Example.COM", "groups": [], "user_permissions": [], "_save": "Save"})
    data["is_active"] = "on"
    data.pop("is_staff", None)
    data.pop("is_superuser", None)
    data.pop("is_email_verified", None)
    # when
    response = admin_client.post(url, data)
    # then
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    user.refresh_from_db()
    assert user.email == "alice.new@example.com"
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize("url", [CHANGELIST, ADD])
def test_a_non_staff_user_is_sent_to_the_login_page(client, user, url):
    # given
    client.force_login(user)
    # when
    response = client.get(url)
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_non_staff_user_cannot_add_a_user(client, user):
    client.force_login(user)
    response = client.post(ADD, add_form())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert User.objects.count() == 1


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, db):
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_login_counts_against_the_login_limits(client, make_user, settings):
    # given: a staff account and a budget of three attempts
    staff = make_user(username="root", email="root@example.com", is_staff=True, is_superuser=True)
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (3, 3600)}
    for _ in range(3):
        refused = client.post("/admin/login/", {"username": "root@example.com", "password": "wrong"})
        assert refused.status_code == 200
    # when: the right password, after the budget is spent
    response = client.post("/admin/login/?next=/admin/", {"username": "ROOT@example.com", "password": PASSWORD})
    # then: refused like any failed login, and no session
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    staff.refresh_from_db()
    assert staff.last_login is None
