"""The Django admin for sessions, and the session side of the user admin, driven over HTTP."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.error_codes import AuthErrorCode
from accounts.models import Session, SessionEndReason, User
from accounts.services import session_open
from accounts.tokens import access_token_verify
from tests.conftest import PASSWORD, error_codes

SESSIONS = reverse("admin:accounts_session_changelist")
USERS = reverse("admin:accounts_user_changelist")
ME = "{ me { id } }"


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(admin_user):
    # Its own client: the admin's cookie must not ride along on the GraphQL requests of `gql`.
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin_user)
    return client


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


def open_session(user):
    """Open a session of `user`; return (session, its access token)."""
    tokens = session_open(user=user)
    return Session.objects.get(pk=access_token_verify(tokens.token).session_id), tokens.token


def listed(response) -> set:
    assert response.status_code == 200
    return {session.pk for session in response.context["cl"].result_list}


@pytest.fixture
def sessions(user, bob):
    """One session of each state: alice live, alice revoked, bob expired (absolute), bob idle."""
    now = timezone.now()
    live, _ = open_session(user)
    revoked, _ = open_session(user)
    expired, _ = open_session(bob)
    idle, _ = open_session(bob)
    Session.objects.filter(pk=revoked.pk).update(revoked_at=now, revoked_reason=SessionEndReason.LOGOUT)
    Session.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(seconds=1))
    Session.objects.filter(pk=idle.pk).update(last_used_at=now - timedelta(days=2))
    return {"live": live.pk, "revoked": revoked.pk, "expired": expired.pk, "idle": idle.pk}


def end_action(client, url, action, pks):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks]})


# --- the session changelist -------------------------------------------------------------------------------


def test_changelist_lists_every_session_with_its_state(admin_client, sessions):
    response = admin_client.get(SESSIONS)
    assert listed(response) == set(sessions.values())
    html = response.content.decode()
    assert "alice" in html
    assert "bob" in html
    assert "revoked (Signed out)" in html
    assert ">live<" in html
    assert ">expired<" in html


@pytest.mark.parametrize(
    ("state", "expected"),
    [("live", {"live"}), ("revoked", {"revoked"}), ("expired", {"expired", "idle"})],
)
def test_state_filter_gives_the_right_sessions(admin_client, sessions, state, expected):
    assert listed(admin_client.get(SESSIONS, {"state": state})) == {sessions[name] for name in expected}


def test_a_revoked_session_that_also_expired_counts_as_revoked(admin_client, user):
    # given: ended, and past its expiry as well
    session, _ = open_session(user)
    Session.objects.filter(pk=session.pk).update(
        revoked_at=timezone.now(), revoked_reason=SessionEndReason.ADMIN, expires_at=timezone.now()
    )
    assert listed(admin_client.get(SESSIONS, {"state": "revoked"})) == {session.pk}
    assert listed(admin_client.get(SESSIONS, {"state": "expired"})) == set()


def test_revoked_reason_filter(admin_client, sessions, user):
    # given: a second revoked session, for another reason
    other, _ = open_session(user)
    Session.objects.filter(pk=other.pk).update(
        revoked_at=timezone.now(), revoked_reason=SessionEndReason.REFRESH_TOKEN_REUSE
    )
    # then
    assert listed(admin_client.get(SESSIONS, {"revoked_reason": SessionEndReason.LOGOUT})) == {sessions["revoked"]}
    reuse = admin_client.get(SESSIONS, {"revoked_reason": SessionEndReason.REFRESH_TOKEN_REUSE})
    assert listed(reuse) == {other.pk}


def test_user_filter(admin_client, sessions, bob):
    assert listed(admin_client.get(SESSIONS, {"user__id__exact": bob.pk})) == {sessions["expired"], sessions["idle"]}


def test_search_by_email(admin_client, sessions):
    assert listed(admin_client.get(SESSIONS, {"q": "BOB@example"})) == {sessions["expired"], sessions["idle"]}
    assert listed(admin_client.get(SESSIONS, {"q": "nobody@example.com"})) == set()


def test_detail_page_shows_the_session_read_only(admin_client, sessions):
    response = admin_client.get(reverse("admin:accounts_session_change", args=[sessions["revoked"]]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert 'name="user_agent"' not in html
    assert 'name="revoked_reason"' not in html


# --- ending sessions ----------------------------------------------------------------------------------------


def test_end_sessions_action_ends_the_selected_sessions(admin_client, gql, user, bob):
    # given: two sessions of alice and one of bob
    ended_a, token_a = open_session(user)
    kept, kept_token = open_session(user)
    ended_b, token_b = open_session(bob)
    # when
    response = end_action(admin_client, SESSIONS, "end_sessions", [ended_a.pk, ended_b.pk])
    # then: the selected ones are ended by an administrator, the other is untouched
    assert response.status_code == 302
    reasons = dict(Session.objects.values_list("pk", "revoked_reason"))
    assert reasons == {ended_a.pk: SessionEndReason.ADMIN, ended_b.pk: SessionEndReason.ADMIN, kept.pk: ""}
    assert Session.objects.get(pk=kept.pk).revoked_at is None
    # and their access tokens fail on the very next request
    for token in (token_a, token_b):
        assert error_codes(gql(ME, token=token)) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert gql(ME, token=kept_token)["data"]["me"] is not None


def test_end_sessions_reports_how_many_ended(admin_client, user):
    live, _ = open_session(user)
    response = admin_client.post(SESSIONS, {"action": "end_sessions", "_selected_action": [str(live.pk)]}, follow=True)
    assert "Ended 1 session(s)." in [str(m) for m in response.context["messages"]]


def test_end_sessions_keeps_the_reason_of_an_already_ended_session(admin_client, user):
    # The record of why a session ended (e.g. a replayed token) must not be overwritten.
    session, _ = open_session(user)
    Session.objects.filter(pk=session.pk).update(
        revoked_at=timezone.now() - timedelta(hours=1), revoked_reason=SessionEndReason.REFRESH_TOKEN_REUSE
    )
    end_action(admin_client, SESSIONS, "end_sessions", [session.pk])
    session.refresh_from_db()
    assert session.revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    assert session.revoked_at < timezone.now() - timedelta(minutes=59)


def test_sessions_cannot_be_added(admin_client, user):
    response = admin_client.get(reverse("admin:accounts_session_add"))
    assert response.status_code == 403
    response = admin_client.post(reverse("admin:accounts_session_add"), {"user": user.pk})
    assert response.status_code == 403
    assert not Session.objects.exists()
    assert reverse("admin:accounts_session_add") not in admin_client.get(SESSIONS).content.decode()


def test_sessions_cannot_be_changed(admin_client, user):
    session, _ = open_session(user)
    url = reverse("admin:accounts_session_change", args=[session.pk])
    response = admin_client.post(
        url, {"user": user.pk, "revoked_reason": SessionEndReason.ADMIN, "user_agent": "x", "_save": "Save"}
    )
    assert response.status_code == 403
    session.refresh_from_db()
    assert session.revoked_reason == ""
    assert session.user_agent == ""


def test_sessions_cannot_be_deleted(admin_client, user):
    session, _ = open_session(user)
    url = reverse("admin:accounts_session_delete", args=[session.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    # nor in bulk: the action does not exist
    response = admin_client.get(SESSIONS)
    assert "delete_selected" not in response.content.decode()
    end_action(admin_client, SESSIONS, "delete_selected", [session.pk])
    assert Session.objects.filter(pk=session.pk).exists()


@pytest.fixture
def viewer_client(make_user):
    """A staff user who may view sessions and users, but change neither."""
    staff = make_user(username="viewer", email="viewer@example.com", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="accounts", codename__in=["view_session", "view_user"])
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    return client


def test_staff_without_change_session_does_not_get_the_end_action(viewer_client, user):
    # given
    session, _ = open_session(user)
    # when
    page = viewer_client.get(SESSIONS)
    # then: listed, but without the action
    assert listed(page) == {session.pk}
    assert "end_sessions" not in page.content.decode()
    # and posting it anyway ends nothing
    end_action(viewer_client, SESSIONS, "end_sessions", [session.pk])
    session.refresh_from_db()
    assert session.revoked_at is None


def test_staff_with_change_session_gets_the_end_action(make_user, user):
    staff = make_user(username="ops", email="ops@example.com", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="accounts", codename__in=["view_session", "change_session"])
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    session, _ = open_session(user)
    assert "end_sessions" in client.get(SESSIONS).content.decode()
    end_action(client, SESSIONS, "end_sessions", [session.pk])
    session.refresh_from_db()
    assert session.revoked_reason == SessionEndReason.ADMIN


# --- the user admin ------------------------------------------------------------------------------------------


def test_end_all_sessions_action_ends_every_session_of_the_selected_users(admin_client, gql, user, bob, make_user):
    # given: two sessions of alice, one of bob, one of carol (not selected)
    alice_sessions = [open_session(user) for _ in range(2)]
    bob_session, bob_token = open_session(bob)
    carol_session, carol_token = open_session(make_user(username="carol", email="carol@example.com"))
    # when
    response = admin_client.post(
        USERS, {"action": "end_all_sessions", "_selected_action": [str(user.pk), str(bob.pk)]}, follow=True
    )
    # then
    assert "Ended 3 session(s)." in [str(m) for m in response.context["messages"]]
    ended = [session.pk for session, _ in alice_sessions] + [bob_session.pk]
    assert set(Session.objects.filter(pk__in=ended).values_list("revoked_reason", flat=True)) == {
        SessionEndReason.ADMIN
    }
    assert Session.objects.get(pk=carol_session.pk).revoked_at is None
    assert error_codes(gql(ME, token=bob_token)) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert gql(ME, token=carol_token)["data"]["me"] is not None
    # the accounts themselves are untouched
    assert User.objects.filter(is_active=True).count() == 4


def test_staff_who_may_only_view_users_does_not_get_end_all_sessions(viewer_client, user):
    # Ending every session of any account (a superuser's included) is a write; view permission must not allow it.
    session, _ = open_session(user)
    # when: the action is posted by someone who may only view users
    end_action(viewer_client, USERS, "end_all_sessions", [user.pk])
    # then: nothing ended, and the action is not even offered
    session.refresh_from_db()
    assert (session.revoked_at, session.revoked_reason) == (None, "")
    page = viewer_client.get(USERS)
    assert page.status_code == 200
    assert "end_all_sessions" not in page.content.decode()


def change_form_data(client, user) -> dict:
    """Return the user change form as the browser would post it, unchanged."""
    form = client.get(reverse("admin:accounts_user_change", args=[user.pk])).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update({"groups": [], "user_permissions": [], "_save": "Save"})
    for flag in ("is_active", "is_staff", "is_superuser", "is_email_verified"):
        data.pop(flag, None)
        if form.initial.get(flag):
            data[flag] = "on"
    for field in ("date_joined", "last_login"):
        data.pop(field, None)
    return data


def test_deactivating_a_user_ends_their_sessions(admin_client, gql, user, bob):
    # given
    (alice_a, token_a), (alice_b, _) = open_session(user), open_session(user)
    bob_session, _ = open_session(bob)
    data = change_form_data(admin_client, user)
    del data["is_active"]  # unticked
    # when
    response = admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    # then
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    user.refresh_from_db()
    assert user.is_active is False
    reasons = dict(Session.objects.filter(user=user).values_list("pk", "revoked_reason"))
    assert reasons == {alice_a.pk: SessionEndReason.DEACTIVATED, alice_b.pk: SessionEndReason.DEACTIVATED}
    assert Session.objects.get(pk=bob_session.pk).revoked_at is None
    assert error_codes(gql(ME, token=token_a)) == [AuthErrorCode.TOKEN_REVOKED.value]
    # and reactivating revives none of them
    data["is_active"] = "on"
    admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    user.refresh_from_db()
    assert user.is_active is True
    assert error_codes(gql(ME, token=token_a)) == [AuthErrorCode.TOKEN_REVOKED.value]


def test_saving_an_active_user_unchanged_ends_no_session(admin_client, user):
    session, _ = open_session(user)
    data = change_form_data(admin_client, user)
    assert data["is_active"] == "on"
    response = admin_client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    session.refresh_from_db()
    assert session.revoked_at is None
