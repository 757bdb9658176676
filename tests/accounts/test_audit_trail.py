"""The audit trail: which flows record which AuthEvent, with what facts, and never a secret.

Flows are driven over HTTP (GraphQL and the admin) so that the recorded client address and
user agent are the ones a real request carries. Also: the read-only AuthEvent admin, and
`manage.py housekeeping` pruning old events and dead emailed tokens.
"""

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from graphql_relay import to_global_id

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
from accounts.services import auth_event_record, session_open
from accounts.tokens import access_token_verify, opaque_token_digest
from accounts.validators import USER_AGENT_MAX_LENGTH
from tests.conftest import PASSWORD, error_codes

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (X11; Linux x86_64) GatehouseTest/1.0"
BROWSER = {"HTTP_USER_AGENT": UA}
LOCAL = "127.0.0.1"

REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    token refreshToken payload user { id } errors { field code }
  }
}
"""
TOKEN_AUTH = """
mutation TokenAuth($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) { token refreshToken payload }
}
"""
REFRESH = "mutation($refreshToken: String) { refreshToken(refreshToken: $refreshToken) { token refreshToken } }"
REVOKE = "mutation($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_SESSION = "mutation($id: ID!) { revokeSession(id: $id) { success errors { field code } } }"
MY_SESSIONS = "{ me { sessions { id current } } }"
VERIFY_ACCOUNT = "mutation($token: String!) { verifyAccount(token: $token) { success errors { field code } } }"
SEND_RESET = "mutation($email: String!) { sendPasswordResetEmail(email: $email) { success errors { field code } } }"
PASSWORD_RESET = """
mutation($token: String!, $newPassword: String!) {
  passwordReset(token: $token, newPassword: $newPassword) { success errors { field code } }
}
"""
PASSWORD_CHANGE = """
mutation($oldPassword: String!, $newPassword: String!) {
  passwordChange(oldPassword: $oldPassword, newPassword: $newPassword) {
    success token refreshToken errors { field code }
  }
}
"""
DELETE_ACCOUNT = "mutation($password: String!) { deleteAccount(password: $password) { success errors { field code } } }"

EVENT_COLUMNS = [field.attname for field in AuthEvent._meta.concrete_fields]


def sign_in(gql, email="alice@example.com", password=PASSWORD, headers=BROWSER) -> dict:
    body = gql(TOKEN_AUTH, {"email": email, "password": password}, headers=headers)
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def failed_sign_in(gql, headers=BROWSER, **variables) -> dict:
    body = gql(TOKEN_AUTH, {"password": "Wrong-password-123", **variables}, headers=headers)
    assert error_codes(body), body
    return body


def only_event() -> AuthEvent:
    """Return the one AuthEvent there is; fail if there are none or several."""
    events = list(AuthEvent.objects.all())
    assert len(events) == 1, [(e.kind, e.detail) for e in events]
    return events[0]


def new_events_since(pk: int) -> list[AuthEvent]:
    return list(AuthEvent.objects.filter(pk__gt=pk).order_by("pk"))


def last_pk() -> int:
    return AuthEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def sid(access_token: str) -> uuid.UUID:
    return uuid.UUID(access_token_verify(access_token).session_id)


def assert_request_facts(event: AuthEvent, *, ip=LOCAL, user_agent=UA) -> None:
    assert event.ip_address == ip
    assert event.user_agent == user_agent


# --- each flow records exactly one event ------------------------------------------------------------------------


def test_register_records_one_registered_event(gql):
    body = gql(REGISTER, {"username": "carol", "email": "Carol@Example.com", "password": PASSWORD}, headers=BROWSER)

    data = body["data"]["register"]
    assert data["errors"] == []
    carol = User.objects.get(username="carol")
    event = only_event()
    assert event.kind == AuthEventKind.REGISTERED
    assert (event.user_id, event.user_ref) == (carol.pk, carol.pk)
    assert event.session_id == sid(data["token"])
    assert_request_facts(event)


def test_register_without_sign_in_records_no_session(gql):
    with override_settings(ACCOUNT_ALLOW_UNVERIFIED_LOGIN=False):
        body = gql(REGISTER, {"username": "carol", "email": "carol@example.com", "password": PASSWORD}, headers=BROWSER)

    assert body["data"]["register"]["token"] is None
    event = only_event()
    assert event.kind == AuthEventKind.REGISTERED
    assert event.user_id == User.objects.get(username="carol").pk
    assert event.session_id is None


def test_refused_registration_records_nothing(gql, user):
    body = gql(REGISTER, {"username": "alice", "email": "alice@example.com", "password": PASSWORD}, headers=BROWSER)

    assert {e["code"] for e in body["data"]["register"]["errors"]} == {UserErrorCode.UNIQUE.name}
    assert AuthEvent.objects.count() == 0


def test_sign_in_records_one_success_with_its_session(gql, user):
    tokens = sign_in(gql)

    event = only_event()
    assert event.kind == AuthEventKind.LOGIN_SUCCEEDED
    assert (event.user_id, event.user_ref) == (user.pk, user.pk)
    assert event.session_id == sid(tokens["token"])
    assert Session.objects.filter(pk=event.session_id, user=user).exists()
    assert_request_facts(event)


def test_wrong_password_records_a_failure_naming_the_account(gql, user):
    body = failed_sign_in(gql, email="  ALICE@Example.COM ")

    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    event = only_event()
    assert event.kind == AuthEventKind.LOGIN_FAILED
    assert (event.user_id, event.user_ref) == (user.pk, user.pk)
    assert event.identifier == "email:alice@example.com"  # canonical, whatever was typed
    assert event.session_id is None
    assert event.detail == ""
    assert_request_facts(event)
    assert Session.objects.count() == 0


def test_wrong_password_by_username_records_the_username(gql, user):
    failed_sign_in(gql, username="ALICE")

    event = only_event()
    assert event.kind == AuthEventKind.LOGIN_FAILED
    assert event.user_id == user.pk
    assert event.identifier == "username:alice"


def test_unknown_account_records_a_failure_without_a_user(gql, user):
    body = failed_sign_in(gql, email="Nobody@EXAMPLE.com")

    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    event = only_event()
    assert event.kind == AuthEventKind.LOGIN_FAILED
    assert (event.user_id, event.user_ref) == (None, None)
    assert event.identifier == "email:nobody@example.com"
    assert_request_facts(event)


def test_inactive_account_records_a_failure_naming_the_account(gql, make_user):
    gone = make_user(username="gone", email="gone@example.com", is_active=False)

    body = gql(TOKEN_AUTH, {"email": "gone@example.com", "password": PASSWORD}, headers=BROWSER)

    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    event = only_event()
    assert (event.kind, event.user_id, event.identifier) == (
        AuthEventKind.LOGIN_FAILED,
        gone.pk,
        "email:gone@example.com",
    )


def test_rate_limited_sign_in_records_a_failure_saying_so(gql, user):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (1, 3600)}):
        failed_sign_in(gql, email="alice@example.com")
        # the second attempt is refused before the password is even looked at, even a correct one
        body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD}, headers=BROWSER)

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    first, second = AuthEvent.objects.order_by("pk")
    assert (first.kind, first.detail) == (AuthEventKind.LOGIN_FAILED, "")
    assert (second.kind, second.detail) == (AuthEventKind.LOGIN_FAILED, "rate limited")
    assert second.identifier == "email:alice@example.com"
    assert_request_facts(second)
    assert Session.objects.count() == 0


def test_a_flood_of_refused_sign_ins_records_one_entry_per_window(gql, user):
    # Refused attempts cost an attacker nothing; each must not cost us a write.
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (1, 3600)}):
        failed_sign_in(gql, email="alice@example.com")
        bodies = [gql(TOKEN_AUTH, {"email": "alice@example.com", "password": "x"}) for _ in range(20)]

    assert all(error_codes(body) == [AuthErrorCode.RATE_LIMITED.value] for body in bodies)
    assert list(AuthEvent.objects.order_by("pk").values_list("kind", "detail")) == [
        (AuthEventKind.LOGIN_FAILED, ""),
        (AuthEventKind.LOGIN_FAILED, "rate limited"),
    ]


@pytest.mark.parametrize(
    "identifier",
    [
        "ali\x00ce@example.com",
        "\x00" * 50,
        "evil\r\n[ERROR] forged log line@example.com",
        "\u202eevil@example.com",  # right-to-left override
        "a" * 50_000,
        "x\x00" * 5_000 + "@example.com",
    ],
    ids=["nul-in-email", "only-nul", "newlines", "rtl-override", "huge", "huge-with-nul"],
)
@pytest.mark.parametrize("field", ["email", "username"])
def test_hostile_identifiers_are_stored_printable_and_bounded(gql, user, identifier, field):
    # Postgres refuses NUL in text; control characters forge log lines and break admin pages.
    response = gql.post(TOKEN_AUTH, {field: identifier, "password": "Wrong-password-123"}, headers=BROWSER)

    assert response.status_code == 200
    assert error_codes(response.json()) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    event = only_event()
    assert event.kind == AuthEventKind.LOGIN_FAILED
    assert event.user_id is None
    assert event.identifier
    assert event.identifier.isprintable()
    assert len(event.identifier) <= AuthEvent._meta.get_field("identifier").max_length


def test_user_agent_is_stored_without_control_characters(gql, user):
    sign_in(gql, headers={"HTTP_USER_AGENT": "Evil\x00Agent/1.0\r\n\x1b[31mred\u200b"})

    event = only_event()
    assert event.user_agent == "EvilAgent/1.0[31mred"


def test_user_agent_is_bounded(gql, user):
    sign_in(gql, headers={"HTTP_USER_AGENT": "A" * 20_000})

    assert only_event().user_agent == "A" * USER_AGENT_MAX_LENGTH


def test_missing_user_agent_is_stored_empty(gql, user):
    sign_in(gql, headers={})

    assert only_event().user_agent == ""


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client's own entry is not believed
        ("2001:db8::1", "2001:db8::1"),
        ("not-an-address", LOCAL),  # garbage from the proxy: the socket's address
    ],
)
def test_behind_one_trusted_proxy_the_forwarded_address_is_recorded(gql, user, forwarded, expected):
    headers = {**BROWSER, "HTTP_X_FORWARDED_FOR": forwarded}
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "TRUSTED_PROXY_COUNT": 1}):
        failed_sign_in(gql, email="alice@example.com", headers=headers)
        sign_in(gql, headers=headers)

    assert [event.ip_address for event in AuthEvent.objects.order_by("pk")] == [expected, expected]


def test_without_a_trusted_proxy_a_forwarded_address_is_ignored(gql, user):
    sign_in(gql, headers={**BROWSER, "HTTP_X_FORWARDED_FOR": "198.51.100.7"})

    assert only_event().ip_address == LOCAL


def test_logout_records_one_logout_event(gql, user):
    tokens = sign_in(gql)
    before = last_pk()

    body = gql(REVOKE, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)

    assert "errors" not in body, body
    [event] = new_events_since(before)
    assert event.kind == AuthEventKind.LOGOUT
    assert event.user_id == user.pk
    assert event.session_id == sid(tokens["token"])
    assert_request_facts(event)


def test_logout_all_records_one_event_with_the_reason_and_count(gql, user):
    # given: three live sessions and one already ended (not counted again)
    session_open(user=user)
    ended = session_open(user=user)
    gql(REVOKE, {"refreshToken": ended.refresh_token})
    session_open(user=user)
    tokens = sign_in(gql)
    before = last_pk()

    body = gql(LOGOUT_ALL, token=tokens["token"], headers=BROWSER)

    assert body["data"]["logoutAll"] == {"success": True, "revokedSessions": 3}
    [event] = new_events_since(before)
    assert event.kind == AuthEventKind.SESSIONS_ENDED
    assert event.user_id == user.pk
    assert event.detail == f"{SessionEndReason.LOGOUT_ALL.value}: 3"
    assert_request_facts(event)


def test_revoke_session_records_one_event(gql, user):
    other = session_open(user=user)
    tokens = sign_in(gql)
    sessions = gql(MY_SESSIONS, token=tokens["token"])["data"]["me"]["sessions"]
    [target] = [s["id"] for s in sessions if not s["current"]]
    before = last_pk()

    body = gql(REVOKE_SESSION, {"id": target}, token=tokens["token"], headers=BROWSER)

    assert body["data"]["revokeSession"] == {"success": True, "errors": []}
    [event] = new_events_since(before)
    assert event.kind == AuthEventKind.SESSIONS_ENDED
    assert event.user_id == user.pk
    assert event.detail == f"{SessionEndReason.REVOKED_BY_USER.value}: 1"
    assert_request_facts(event)
    assert Session.objects.get(pk=sid(other.token)).revoked_reason == SessionEndReason.REVOKED_BY_USER


def test_revoking_an_unknown_session_records_nothing(gql, user):
    tokens = sign_in(gql)
    before = last_pk()

    body = gql(
        REVOKE_SESSION, {"id": to_global_id("Session", uuid.uuid4().hex)}, token=tokens["token"], headers=BROWSER
    )

    assert body["data"]["revokeSession"]["success"] is False
    assert new_events_since(before) == []


def test_refresh_token_replay_after_grace_records_one_reuse_event(gql, user):
    tokens = sign_in(gql)
    gql(REFRESH, {"refreshToken": tokens["refreshToken"]})
    RefreshToken.objects.filter(used_at__isnull=False).update(
        used_at=timezone.now() - timedelta(seconds=settings.REFRESH_TOKEN_REUSE_GRACE + 1)
    )
    before = last_pk()

    body = gql(REFRESH, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)

    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value]
    [event] = new_events_since(before)
    assert event.kind == AuthEventKind.REFRESH_TOKEN_REUSED
    assert event.user_id == user.pk
    assert event.session_id == sid(tokens["token"])
    assert event.detail.startswith("used ")
    assert_request_facts(event)
    assert Session.objects.get(pk=event.session_id).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE


def test_refresh_token_replay_within_grace_records_nothing(gql, user):
    tokens = sign_in(gql)
    gql(REFRESH, {"refreshToken": tokens["refreshToken"]})
    before = last_pk()

    body = gql(REFRESH, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)

    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    assert new_events_since(before) == []


def test_logout_with_a_replayed_token_records_reuse_not_logout(gql, user):
    tokens = sign_in(gql)
    gql(REFRESH, {"refreshToken": tokens["refreshToken"]})
    RefreshToken.objects.filter(used_at__isnull=False).update(used_at=timezone.now() - timedelta(minutes=5))
    before = last_pk()

    body = gql(REVOKE, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)

    assert error_codes(body) == [AuthErrorCode.TOKEN_REVOKED.value]
    assert [e.kind for e in new_events_since(before)] == [AuthEventKind.REFRESH_TOKEN_REUSED]


def test_failed_sign_in_is_kept_although_its_transaction_rolled_back(gql, user):
    # given: a correct password stored under an outdated hash (a 2-character salt), so checking it
    # rewrites the hash inside the sign-in transaction, and a sign-in that is then refused
    # (unverified address while unverified accounts may not sign in)
    outdated = "md5$ab$" + hashlib.md5(("ab" + PASSWORD).encode()).hexdigest()  # noqa: S324
    User.objects.filter(pk=user.pk).update(password=outdated, is_email_verified=False)

    with override_settings(ACCOUNT_ALLOW_UNVERIFIED_LOGIN=False):
        body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD}, headers=BROWSER)

    # then: the sign-in's writes are undone...
    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    user.refresh_from_db()
    assert user.password == outdated
    assert user.last_login is None
    assert Session.objects.count() == 0
    # ...but the failure is on record
    event = only_event()
    assert (event.kind, event.user_id, event.identifier) == (
        AuthEventKind.LOGIN_FAILED,
        user.pk,
        "email:alice@example.com",
    )


# --- the admin's session actions ---------------------------------------------------------------------------------


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)


@pytest.fixture
def admin_client(admin_user):
    # Its own client, so the admin's cookie never rides along on GraphQL requests.
    client = Client(HTTP_HOST="localhost", HTTP_USER_AGENT=UA)
    client.force_login(admin_user)
    return client


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


def test_admin_end_sessions_action_records_one_event_per_account(admin_client, admin_user, user, bob):
    alice_sessions = [sid(session_open(user=user).token) for _ in range(2)]
    bob_session = sid(session_open(user=bob).token)

    response = admin_client.post(
        reverse("admin:accounts_session_changelist"),
        {"action": "end_sessions", "_selected_action": [str(pk) for pk in [*alice_sessions, bob_session]]},
    )

    assert response.status_code == 302
    events = {event.user_id: event for event in AuthEvent.objects.all()}
    assert set(events) == {user.pk, bob.pk}
    assert {e.kind for e in events.values()} == {AuthEventKind.SESSIONS_ENDED}
    # the reason, the count, and which administrator acted
    assert events[user.pk].detail == f"{SessionEndReason.ADMIN.value}: 2 by user {admin_user.pk}"
    assert events[bob.pk].detail == f"{SessionEndReason.ADMIN.value}: 1 by user {admin_user.pk}"
    # The administrator's request is what ended them: its address belongs on the record.
    for event in events.values():
        assert_request_facts(event)


def test_admin_end_all_sessions_action_records_one_event_per_account(admin_client, admin_user, user, bob):
    for _ in range(3):
        session_open(user=user)

    response = admin_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "end_all_sessions", "_selected_action": [str(user.pk), str(bob.pk)]},
    )

    assert response.status_code == 302
    # bob had no live session: nothing ended, nothing recorded for him
    event = only_event()
    assert (event.kind, event.user_id) == (AuthEventKind.SESSIONS_ENDED, user.pk)
    # the reason, the count, and which administrator acted
    assert event.detail == f"{SessionEndReason.ADMIN.value}: 3 by user {admin_user.pk}"
    assert_request_facts(event)


# --- never a secret -----------------------------------------------------------------------------------------------


def mailed_token(kind: str) -> str:
    bodies = [message.body for message in mail.outbox]
    found = [m.group(1) for body in bodies for m in re.finditer(rf"/{kind}\?token=([A-Za-z0-9_-]{{43}})", body)]
    assert found, bodies
    return found[-1]


def test_no_event_column_ever_holds_a_password_or_a_token(gql, django_capture_on_commit_callbacks):
    """Run every flow that records an event, then scan every column of every row for every secret."""
    p1, p2, p3, wrong = PASSWORD, "Another-secure-pass-42", "Third-secure-pass-77", "Wrong-secret-guess-19"
    secrets_seen: list[str] = [p1, p2, p3, wrong]

    def keep(*values):
        secrets_seen.extend(v for v in values if v)

    # register, verify the address
    # (mail leaves on commit; the test's transaction never commits, so run the callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        registered = gql(REGISTER, {"username": "carol", "email": "carol@example.com", "password": p1}, headers=BROWSER)
    data = registered["data"]["register"]
    keep(data["token"], data["refreshToken"])
    verify = mailed_token("activate")
    keep(verify)
    assert gql(VERIFY_ACCOUNT, {"token": verify}, headers=BROWSER)["data"]["verifyAccount"]["success"] is True
    # a wrong password, then a sign-in, a refresh, and a replay after the grace window
    failed_sign_in(gql, email="carol@example.com", password=wrong)
    tokens = sign_in(gql, email="carol@example.com", password=p1)
    keep(tokens["token"], tokens["refreshToken"])
    refreshed = gql(REFRESH, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)["data"]["refreshToken"]
    keep(refreshed["token"], refreshed["refreshToken"])
    RefreshToken.objects.filter(used_at__isnull=False).update(used_at=timezone.now() - timedelta(minutes=1))
    gql(REFRESH, {"refreshToken": tokens["refreshToken"]}, headers=BROWSER)
    # a password change from the first session
    changed = gql(PASSWORD_CHANGE, {"oldPassword": p1, "newPassword": p2}, token=data["token"], headers=BROWSER)
    changed = changed["data"]["passwordChange"]
    assert changed["errors"] == [], changed
    keep(changed["token"], changed["refreshToken"])
    # a reset by email
    with django_capture_on_commit_callbacks(execute=True):
        sent = gql(SEND_RESET, {"email": "carol@example.com"}, headers=BROWSER)
    assert sent["data"]["sendPasswordResetEmail"] == {"success": True, "errors": []}
    reset = mailed_token("reset-password")
    keep(reset)
    result = gql(PASSWORD_RESET, {"token": reset, "newPassword": p3}, headers=BROWSER)["data"]["passwordReset"]
    assert result == {"success": True, "errors": []}
    # logout, logout everywhere, deletion
    again = sign_in(gql, email="carol@example.com", password=p3)
    keep(again["token"], again["refreshToken"])
    gql(REVOKE, {"refreshToken": again["refreshToken"]}, headers=BROWSER)
    again = sign_in(gql, email="carol@example.com", password=p3)
    keep(again["token"], again["refreshToken"])
    assert gql(LOGOUT_ALL, token=again["token"], headers=BROWSER)["data"]["logoutAll"]["success"] is True
    last = sign_in(gql, email="carol@example.com", password=p3)
    keep(last["token"], last["refreshToken"])
    carol = User.objects.get(username="carol")
    # stored forms are secrets too: the password hash and every token digest
    keep(carol.password, *RefreshToken.objects.values_list("token_hash", flat=True))
    keep(*AccountToken.objects.values_list("token_hash", flat=True))
    keep(*(opaque_token_digest(t) for t in (verify, reset)))
    deleted = gql(DELETE_ACCOUNT, {"password": p3}, token=last["token"], headers=BROWSER)
    assert deleted["data"]["deleteAccount"] == {"success": True, "errors": []}

    # every flow left its mark...
    kinds = set(AuthEvent.objects.values_list("kind", flat=True))
    assert kinds >= {
        AuthEventKind.REGISTERED,
        AuthEventKind.EMAIL_VERIFIED,
        AuthEventKind.LOGIN_FAILED,
        AuthEventKind.LOGIN_SUCCEEDED,
        AuthEventKind.REFRESH_TOKEN_REUSED,
        AuthEventKind.PASSWORD_CHANGED,
        AuthEventKind.SESSIONS_ENDED,
        AuthEventKind.PASSWORD_RESET_REQUESTED,
        AuthEventKind.PASSWORD_RESET,
        AuthEventKind.LOGOUT,
        AuthEventKind.ACCOUNT_DELETED,
    }
    # ...and the events outlive the account, by its id
    assert set(AuthEvent.objects.values_list("user_ref", "user_id")) == {(carol.pk, None)}
    # JWT segments too: a signature or a claims segment alone is already too much
    for jwt in [s for s in secrets_seen if s.count(".") == 2]:
        secrets_seen.extend(part for part in jwt.split(".")[1:] if len(part) > 16)
    for row in AuthEvent.objects.values_list(*EVENT_COLUMNS):
        for column, value in zip(EVENT_COLUMNS, row, strict=True):
            text = str(value)
            for secret in secrets_seen:
                assert secret not in text, f"{column} holds a secret: {text!r}"


# --- the admin of the audit trail -----------------------------------------------------------------------------

EVENTS = reverse("admin:accounts_authevent_changelist")


@pytest.fixture
def events(user, bob):
    """A few events of different kinds, accounts and addresses."""
    return {
        "alice_in": AuthEvent.objects.create(
            kind=AuthEventKind.LOGIN_SUCCEEDED, user=user, user_ref=user.pk, ip_address="192.0.2.10"
        ),
        "bob_failed": AuthEvent.objects.create(
            kind=AuthEventKind.LOGIN_FAILED,
            user=bob,
            user_ref=bob.pk,
            identifier="username:bob",
            ip_address="192.0.2.10",
        ),
        "stranger": AuthEvent.objects.create(
            kind=AuthEventKind.LOGIN_FAILED, identifier="email:mallory@evil.example", ip_address="203.0.113.99"
        ),
        "bob_out": AuthEvent.objects.create(
            kind=AuthEventKind.LOGOUT, user=bob, user_ref=bob.pk, ip_address="198.51.100.3", user_agent="BobAgent"
        ),
    }


def listed(response) -> set:
    assert response.status_code == 200
    return {event.pk for event in response.context["cl"].result_list}


def test_event_changelist_lists_every_event(admin_client, events):
    response = admin_client.get(EVENTS)

    assert listed(response) == {event.pk for event in events.values()}
    assert b"mallory@evil.example" in response.content


def test_event_changelist_filters_by_kind(admin_client, events):
    response = admin_client.get(EVENTS, {"kind": AuthEventKind.LOGIN_FAILED.value})

    assert listed(response) == {events["bob_failed"].pk, events["stranger"].pk}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("mallory@evil", {"stranger"}),  # identifier of an unknown account
        ("bob@example.com", {"bob_failed", "bob_out"}),  # the account's email
        ("ALICE@EXAMPLE", {"alice_in"}),
        ("203.0.113.99", {"stranger"}),  # client address
        ("192.0.2.10", {"alice_in", "bob_failed"}),
    ],
    ids=["identifier", "user-email", "user-email-case", "ip", "ip-shared"],
)
def test_event_changelist_search(admin_client, events, term, expected):
    response = admin_client.get(EVENTS, {"q": term})

    assert listed(response) == {events[name].pk for name in expected}


def test_event_changelist_search_by_account_id(admin_client, events, bob):
    # kept after the account is deleted, so an id is how an old account's events are found
    response = admin_client.get(EVENTS, {"q": str(bob.pk)})

    assert {events["bob_failed"].pk, events["bob_out"].pk} <= listed(response)


def test_events_cannot_be_added(admin_client, events):
    assert admin_client.get(reverse("admin:accounts_authevent_add")).status_code == 403
    response = admin_client.post(reverse("admin:accounts_authevent_add"), {"kind": "logout", "created_at": "x"})
    assert response.status_code == 403
    assert AuthEvent.objects.count() == len(events)


def test_events_cannot_be_changed(admin_client, events):
    event = events["stranger"]
    url = reverse("admin:accounts_authevent_change", args=[event.pk])

    response = admin_client.post(url, {"kind": AuthEventKind.LOGIN_SUCCEEDED.value, "identifier": "forged"})

    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.kind, event.identifier) == (AuthEventKind.LOGIN_FAILED, "email:mallory@evil.example")


def test_events_cannot_be_deleted(admin_client, events):
    event = events["stranger"]
    url = reverse("admin:accounts_authevent_delete", args=[event.pk])

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert AuthEvent.objects.filter(pk=event.pk).exists()


def test_there_is_no_bulk_delete_action(admin_client, events):
    page = admin_client.get(EVENTS)
    assert "delete_selected" not in page.content.decode()

    admin_client.post(EVENTS, {"action": "delete_selected", "_selected_action": [str(e.pk) for e in events.values()]})

    assert AuthEvent.objects.count() == len(events)


def test_event_detail_page_is_read_only(admin_client, events):
    event = events["bob_out"]

    response = admin_client.get(reverse("admin:accounts_authevent_change", args=[event.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert "BobAgent" in content
    assert "198.51.100.3" in content
    # no editable input for any field, no save button
    for name in ("kind", "identifier", "ip_address", "user_agent", "detail", "created_at"):
        assert f'name="{name}"' not in content
    assert 'name="_save"' not in content
    assert not response.context["has_change_permission"]


def test_event_admin_is_for_superusers_and_not_for_plain_staff(make_user, events):
    staff = make_user(username="ops", email="ops@example.com", is_staff=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)

    assert client.get(EVENTS).status_code == 403


# --- housekeeping -------------------------------------------------------------------------------------------------


def housekeeping(*args) -> str:
    out = StringIO()
    call_command("housekeeping", *args, stdout=out)
    return out.getvalue()


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def event_at(created_at, kind=AuthEventKind.LOGIN_SUCCEEDED) -> AuthEvent:
    return auth_event_record(kind=kind) if created_at is None else _aged(auth_event_record(kind=kind), created_at)


def _aged(event: AuthEvent, created_at) -> AuthEvent:
    AuthEvent.objects.filter(pk=event.pk).update(created_at=created_at)
    return event


def account_token(user, *, used_at=None, expires_at=None, purpose=AccountTokenPurpose.VERIFY_EMAIL) -> AccountToken:
    return AccountToken.objects.create(
        user=user,
        purpose=purpose,
        token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        email=user.email,
        expires_at=expires_at or timezone.now() + timedelta(hours=1),
        used_at=used_at,
    )


@pytest.fixture
def aged_events():
    retention = timedelta(seconds=settings.AUTH_EVENT_RETENTION)
    return {
        "old": event_at(timezone.now() - retention - timedelta(seconds=1)).pk,
        "ancient": event_at(ago(days=3650), kind=AuthEventKind.LOGIN_FAILED).pk,
        "recent": event_at(timezone.now() - retention + timedelta(minutes=5)).pk,
        "now": event_at(None).pk,
    }


@pytest.fixture
def tokens(user):
    return {
        "used": account_token(user, used_at=ago(minutes=1)).pk,
        "expired": account_token(user, expires_at=ago(seconds=1), purpose=AccountTokenPurpose.RESET_PASSWORD).pk,
        "used_and_expired": account_token(user, used_at=ago(days=2), expires_at=ago(days=1)).pk,
        "live": account_token(user, purpose=AccountTokenPurpose.RESET_PASSWORD).pk,
    }


def test_housekeeping_deletes_events_past_retention_and_keeps_newer_ones(aged_events):
    out = housekeeping()

    assert set(AuthEvent.objects.values_list("pk", flat=True)) == {aged_events["recent"], aged_events["now"]}
    assert "2 old audit-trail event(s)" in out
    assert out.splitlines()[1].startswith("Deleted ")


def test_housekeeping_honours_the_retention_setting(aged_events):
    with override_settings(AUTH_EVENT_RETENTION=3600):
        event_at(ago(hours=2))
        kept = event_at(ago(minutes=30)).pk
        out = housekeeping()

    assert set(AuthEvent.objects.values_list("pk", flat=True)) == {aged_events["now"], kept}
    assert "4 old audit-trail event(s)" in out


def test_housekeeping_deletes_used_and_expired_emailed_tokens_and_keeps_live_ones(tokens):
    out = housekeeping()

    assert list(AccountToken.objects.values_list("pk", flat=True)) == [tokens["live"]]
    assert "Deleted 3 used or expired emailed token(s) and 0 old audit-trail event(s)." in out.splitlines()


def test_housekeeping_keeps_a_live_link_working(gql, user, tokens, django_capture_on_commit_callbacks):
    # given: a reset link issued through the real flow, then housekeeping
    with django_capture_on_commit_callbacks(execute=True):
        gql(SEND_RESET, {"email": "alice@example.com"})
    link = mailed_token("reset-password")
    housekeeping()

    # then: it still works
    body = gql(PASSWORD_RESET, {"token": link, "newPassword": "Brand-new-pass-31"})
    assert body["data"]["passwordReset"] == {"success": True, "errors": []}


def test_housekeeping_dry_run_deletes_nothing_and_says_what_it_would_delete(aged_events, tokens):
    events_before = AuthEvent.objects.count()

    out = housekeeping("--dry-run")

    assert AuthEvent.objects.count() == events_before == 4
    assert AccountToken.objects.count() == 4
    assert "Would delete 3 used or expired emailed token(s) and 2 old audit-trail event(s)." in out.splitlines()
    assert "Deleted" not in out


def test_housekeeping_with_nothing_to_do_says_zero(user):
    out = housekeeping()

    assert "Deleted 0 used or expired emailed token(s) and 0 old audit-trail event(s)." in out.splitlines()
