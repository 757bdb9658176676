"""Sessions and refresh tokens over HTTP: sign-in opens a session, refresh tokens rotate with
reuse detection, and logout, logout everywhere, revokeSession, deactivation and deletion end
tokens on the very next request, in the one query that loads the user.

Every refusal is checked for its code, for what it did (or did not do) to the Session and
RefreshToken tables, and for never echoing the token it was given.
"""

import hashlib
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from graphql_jwt.settings import jwt_settings
from graphql_jwt.shortcuts import get_token
from graphql_relay import from_global_id, to_global_id

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import RefreshToken, Session, SessionEndReason, User
from accounts.tokens import jwt_encode, jwt_payload, key_id
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

pytestmark = pytest.mark.django_db

TOKEN_AUTH = """
mutation TokenAuth($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) { token refreshToken refreshExpiresIn payload }
}
"""
REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    token refreshToken refreshExpiresIn payload
    user { id username }
    errors { field code }
  }
}
"""
REFRESH = """
mutation Refresh($refreshToken: String) {
  refreshToken(refreshToken: $refreshToken) { token refreshToken refreshExpiresIn payload }
}
"""
REVOKE = "mutation Revoke($refreshToken: String) { revokeToken(refreshToken: $refreshToken) { revoked } }"
VERIFY = "mutation Verify($token: String!) { verifyToken(token: $token) { payload } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_SESSION = """
mutation RevokeSession($id: ID!) { revokeSession(id: $id) { success errors { field code message } } }
"""
ME = "{ me { username } }"
SESSIONS = "{ me { sessions { id createdAt lastUsedAt expiresAt userAgent ipAddress current } } }"
NODE = "query Node($id: ID!) { node(id: $id) { __typename id ... on Session { userAgent current } } }"

OTHER_KEY = "an-attackers-signing-key-0123456789-abcdefghijklmnop"
IDLE = timedelta(hours=24)  # JWT_REFRESH_TOKEN_IDLE_LIFETIME of the test settings


# --- helpers ---------------------------------------------------------------------------------


def sign_in(gql, email="alice@example.com", user_agent="Device-A/1.0") -> dict:
    """tokenAuth over HTTP; return its payload (token, refreshToken, refreshExpiresIn, payload)."""
    body = gql(TOKEN_AUTH, {"email": email, "password": PASSWORD}, headers={"HTTP_USER_AGENT": user_agent})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def register(gql, username="carol", email="carol@example.com", user_agent="Signup/2.0") -> dict:
    body = gql(
        REGISTER,
        {"username": username, "email": email, "password": PASSWORD},
        headers={"HTTP_USER_AGENT": user_agent},
    )
    assert "errors" not in body, body
    assert body["data"]["register"]["errors"] == [], body
    return body["data"]["register"]


def refresh(gql, refresh_token) -> dict:
    return gql(REFRESH, {"refreshToken": refresh_token})


def rotate(gql, refresh_token) -> dict:
    """Refresh and assert it worked; return the refreshToken payload."""
    body = refresh(gql, refresh_token)
    assert "errors" not in body, body
    return body["data"]["refreshToken"]


def session_of(tokens: dict) -> Session:
    return Session.objects.get(pk=tokens["payload"]["sid"])


def session_global_id(session: Session) -> str:
    return to_global_id("Session", str(session.id))


def digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def token_row(refresh_token: str) -> RefreshToken:
    return RefreshToken.objects.get(token_hash=digest(refresh_token))


def snapshot() -> tuple[list, list]:
    """Every session and refresh token row: what a refusal must leave exactly as it was."""
    return (
        list(Session.objects.order_by("pk").values()),
        list(RefreshToken.objects.order_by("pk").values()),
    )


def assert_refused(body: dict, code: AuthErrorCode, field: str, *secrets: str) -> None:
    """One top-level error with `code`, a null payload, and none of `secrets` echoed."""
    assert error_codes(body) == [code.value], body
    assert body["data"] == {field: None}, body
    text = json.dumps(body)
    for secret in secrets:
        assert secret not in text


def assert_me(gql, token: str, username: str = "alice") -> None:
    body = gql(ME, token=token)
    assert body == {"data": {"me": {"username": username}}}, body


def assert_me_refused(gql, token: str, code: AuthErrorCode) -> None:
    assert_refused(gql(ME, token=token), code, "me", token)


def age_used(refresh_token: str, seconds: float) -> None:
    RefreshToken.objects.filter(token_hash=digest(refresh_token)).update(
        used_at=timezone.now() - timedelta(seconds=seconds)
    )


def sign_token(payload: dict, key: str) -> str:
    """Sign claims with `key`, naming the real key's id (so only the signature can fail)."""
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": key_id(jwt_settings.JWT_SECRET_KEY)})


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


# --- 1. sign-in opens a session ----------------------------------------------------------------


def test_token_auth_opens_a_session_with_client_details(gql, user):
    tokens = sign_in(gql, user_agent="Device-A/1.0 (Linux)")

    session = Session.objects.get(user=user)
    assert tokens["payload"]["sid"] == session.id.hex
    assert tokens["payload"]["sub"] == str(user.pk)
    assert session.user_agent == "Device-A/1.0 (Linux)"
    assert session.ip_address == "127.0.0.1"
    assert session.revoked_at is None
    assert session.revoked_reason == ""
    assert tokens["refreshExpiresIn"] == int(session.ends_at().timestamp())
    assert len(tokens["refreshToken"]) == 43
    assert RefreshToken.objects.filter(session=session, used_at__isnull=True).count() == 1
    assert_me(gql, tokens["token"])


def test_register_opens_a_session_of_the_new_account(gql, db):
    tokens = register(gql, user_agent="Signup/2.0")

    new = User.objects.get(username="carol")
    session = Session.objects.get(user=new)
    assert tokens["payload"]["sid"] == session.id.hex
    assert tokens["payload"]["sub"] == str(new.pk)
    assert from_global_id(tokens["user"]["id"]) == ("User", str(new.pk))
    assert (session.user_agent, session.ip_address) == ("Signup/2.0", "127.0.0.1")
    assert len(tokens["refreshToken"]) == 43
    assert tokens["refreshExpiresIn"] == int(session.ends_at().timestamp())
    assert_me(gql, tokens["token"], "carol")
    # and the refresh token of a registration rotates like any other
    assert rotate(gql, tokens["refreshToken"])["payload"]["sid"] == session.id.hex


def test_each_sign_in_opens_its_own_session(gql, user):
    first, second = sign_in(gql, user_agent="A"), sign_in(gql, user_agent="B")

    assert first["payload"]["sid"] != second["payload"]["sid"]
    assert first["refreshToken"] != second["refreshToken"]
    assert Session.objects.filter(user=user).count() == 2


def test_only_a_digest_of_the_refresh_token_is_stored(gql, user):
    # A database leak must not hand out usable refresh tokens.
    tokens = sign_in(gql)
    raw = tokens["refreshToken"]

    row = RefreshToken.objects.get(session_id=tokens["payload"]["sid"])
    assert row.token_hash == digest(raw)
    assert raw not in json.dumps(snapshot(), default=str)
    with connection.cursor() as cursor:
        for table in (RefreshToken._meta.db_table, Session._meta.db_table):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            assert raw not in repr(cursor.fetchall())


def test_failed_sign_in_opens_no_session(gql, user):
    body = gql(TOKEN_AUTH, {"email": "alice@example.com", "password": "wrong-" + PASSWORD})

    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert not Session.objects.exists()
    assert not RefreshToken.objects.exists()


def test_access_token_never_outlives_its_session(gql, user):
    # A session with a 60 s idle lifetime cannot hand out a 300 s access token.
    with override_settings(JWT_REFRESH_TOKEN_IDLE_LIFETIME=60):
        tokens = sign_in(gql)
        session = session_of(tokens)

        assert tokens["payload"]["exp"] <= int(session.ends_at().timestamp())
        assert tokens["payload"]["exp"] - tokens["payload"]["iat"] <= 60


# --- 2. rotation ---------------------------------------------------------------------------------


def test_refresh_rotates_within_the_same_session(gql, user):
    tokens = sign_in(gql)
    session = session_of(tokens)
    # given: a session last used an hour ago, so the refresh visibly moves last_used_at
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Session.objects.filter(pk=session.pk).update(last_used_at=an_hour_ago)

    new = rotate(gql, tokens["refreshToken"])

    session.refresh_from_db()
    assert new["payload"]["sid"] == session.id.hex
    assert new["payload"]["sub"] == str(user.pk)
    assert new["token"] != tokens["token"]
    assert new["refreshToken"] != tokens["refreshToken"]
    assert len(new["refreshToken"]) == 43
    assert token_row(tokens["refreshToken"]).used_at is not None
    assert token_row(new["refreshToken"]).used_at is None
    assert token_row(new["refreshToken"]).session_id == session.id
    assert session.last_used_at > an_hour_ago + timedelta(minutes=59)
    assert session.revoked_at is None
    assert new["refreshExpiresIn"] == int(session.ends_at().timestamp())
    assert Session.objects.count() == 1
    assert_me(gql, new["token"])


def test_a_chain_of_rotations_keeps_one_session_and_one_live_token(gql, user):
    tokens = sign_in(gql)
    sid = tokens["payload"]["sid"]
    seen = {tokens["refreshToken"]}

    for _ in range(5):
        tokens = rotate(gql, tokens["refreshToken"])
        assert tokens["payload"]["sid"] == sid
        assert tokens["refreshToken"] not in seen
        seen.add(tokens["refreshToken"])
        assert_me(gql, tokens["token"])

    assert Session.objects.count() == 1
    assert RefreshToken.objects.filter(session_id=sid).count() == 6
    assert list(RefreshToken.objects.filter(used_at__isnull=True).values_list("token_hash", flat=True)) == [
        digest(tokens["refreshToken"])
    ]


def test_rotation_keeps_earlier_access_tokens_of_the_live_session(gql, user):
    # Rotation is not revocation: the session is still live, so its access tokens are too.
    tokens = sign_in(gql)

    rotate(gql, tokens["refreshToken"])

    assert_me(gql, tokens["token"])


def test_refresh_never_extends_past_the_absolute_expiry(gql, user):
    tokens = sign_in(gql)
    in_an_hour = timezone.now() + timedelta(hours=1)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(expires_at=in_an_hour)

    new = rotate(gql, tokens["refreshToken"])

    assert new["refreshExpiresIn"] == int(in_an_hour.timestamp())
    assert new["payload"]["exp"] <= int(in_an_hour.timestamp())


def test_refresh_without_a_token_is_unauthenticated_and_changes_nothing(gql, user):
    sign_in(gql)
    before = snapshot()

    body = gql(REFRESH)

    assert_refused(body, AuthErrorCode.UNAUTHENTICATED, "refreshToken")
    assert snapshot() == before


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "short",
        "A" * 43,  # the right shape, never issued
        "A" * 44,
        "A" * 42 + "!",
        "x" * 10_000,
    ],
)
def test_refresh_with_an_unknown_or_malformed_token_is_invalid(gql, user, presented):
    sign_in(gql)
    before = snapshot()

    body = refresh(gql, presented)

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "refreshToken", *([presented] if len(presented) > 3 else []))
    assert snapshot() == before


# --- 3. replay and reuse detection ---------------------------------------------------------------


def test_replay_within_the_grace_window_is_refused_and_harmless(gql, user):
    # Two tabs racing, or a retry after a lost response: no reason to end the session.
    first = sign_in(gql)
    second = rotate(gql, first["refreshToken"])
    before = snapshot()

    body = refresh(gql, first["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "refreshToken", first["refreshToken"])
    assert snapshot() == before
    third = rotate(gql, second["refreshToken"])
    assert third["payload"]["sid"] == first["payload"]["sid"]
    assert_me(gql, second["token"])


def test_replay_nine_seconds_later_is_still_inside_the_window(gql, user):
    first = sign_in(gql)
    second = rotate(gql, first["refreshToken"])
    age_used(first["refreshToken"], 9)

    body = refresh(gql, first["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "refreshToken", first["refreshToken"])
    assert session_of(first).revoked_at is None
    rotate(gql, second["refreshToken"])


def test_replay_after_the_grace_window_ends_the_whole_session(gql, user):
    # given: a thief used the stolen token first and holds its successor
    first = sign_in(gql)
    thiefs = rotate(gql, first["refreshToken"])
    age_used(first["refreshToken"], 11)

    # when: the victim presents the rotated token
    body = refresh(gql, first["refreshToken"])

    # then: the session is over for both of them, access tokens included
    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "refreshToken", first["refreshToken"])
    session = session_of(first)
    assert session.revoked_at is not None
    assert session.revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    assert (
        not RefreshToken.objects.filter(session=session, used_at__isnull=True)
        .exclude(token_hash=digest(thiefs["refreshToken"]))
        .exists()
    )
    assert_refused(refresh(gql, thiefs["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert_me_refused(gql, thiefs["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_me_refused(gql, first["token"], AuthErrorCode.TOKEN_REVOKED)
    assert RefreshToken.objects.filter(session=session).count() == 2  # nothing new was issued


def test_replay_with_no_grace_window_ends_the_session(gql, user):
    with override_settings(REFRESH_TOKEN_REUSE_GRACE=0):
        first = sign_in(gql)
        second = rotate(gql, first["refreshToken"])
        age_used(first["refreshToken"], 0.5)

        body = refresh(gql, first["refreshToken"])

        assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "refreshToken", first["refreshToken"])
        assert session_of(first).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
        assert_refused(refresh(gql, second["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
        assert_me_refused(gql, second["token"], AuthErrorCode.TOKEN_REVOKED)


def test_replay_of_an_older_token_in_the_chain_ends_the_session(gql, user):
    first = sign_in(gql)
    second = rotate(gql, first["refreshToken"])
    third = rotate(gql, second["refreshToken"])
    age_used(first["refreshToken"], 60)

    body = refresh(gql, first["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert session_of(first).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    assert_refused(refresh(gql, third["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert_me_refused(gql, third["token"], AuthErrorCode.TOKEN_REVOKED)


def test_replay_ends_only_the_session_it_belongs_to(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    rotate(gql, phone["refreshToken"])
    age_used(phone["refreshToken"], 11)

    assert_refused(refresh(gql, phone["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")

    assert session_of(laptop).revoked_at is None
    assert_me(gql, laptop["token"])
    rotate(gql, laptop["refreshToken"])


def test_replay_after_the_window_via_logout_is_also_reuse(gql, user):
    first = sign_in(gql)
    second = rotate(gql, first["refreshToken"])
    age_used(first["refreshToken"], 11)

    body = gql(REVOKE, {"refreshToken": first["refreshToken"]})

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "revokeToken", first["refreshToken"])
    assert session_of(first).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    assert_me_refused(gql, second["token"], AuthErrorCode.TOKEN_REVOKED)


def test_a_replay_of_a_revoked_sessions_token_keeps_the_first_reason(gql, user):
    # A session already signed out is not re-labelled as a theft by a late replay.
    tokens = sign_in(gql)
    successor = rotate(gql, tokens["refreshToken"])
    assert "errors" not in gql(REVOKE, {"refreshToken": successor["refreshToken"]})
    age_used(tokens["refreshToken"], 60)

    body = refresh(gql, tokens["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert session_of(tokens).revoked_reason == SessionEndReason.LOGOUT


# --- 4. revokeToken (logout) -------------------------------------------------------------------


def test_logout_ends_the_session_and_its_tokens_on_the_next_request(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    assert_me(gql, phone["token"])

    body = gql(REVOKE, {"refreshToken": phone["refreshToken"]})

    assert "errors" not in body, body
    session = session_of(phone)
    assert session.revoked_reason == SessionEndReason.LOGOUT
    assert body["data"]["revokeToken"]["revoked"] == int(session.revoked_at.timestamp())
    assert abs(body["data"]["revokeToken"]["revoked"] - time.time()) <= 5
    assert_me_refused(gql, phone["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(
        refresh(gql, phone["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken", phone["refreshToken"]
    )
    # the second device is untouched
    assert session_of(laptop).revoked_at is None
    assert_me(gql, laptop["token"])
    rotate(gql, laptop["refreshToken"])


def test_logout_twice_is_revoked_and_keeps_the_first_time(gql, user):
    tokens = sign_in(gql)
    gql(REVOKE, {"refreshToken": tokens["refreshToken"]})
    before = snapshot()

    body = gql(REVOKE, {"refreshToken": tokens["refreshToken"]})

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "revokeToken", tokens["refreshToken"])
    assert snapshot() == before


def test_logout_with_the_token_just_rotated_away_ends_the_session(gql, user):
    # Within the grace window the predecessor still signs its session out (a lost response).
    first = sign_in(gql)
    second = rotate(gql, first["refreshToken"])

    body = gql(REVOKE, {"refreshToken": first["refreshToken"]})

    assert "errors" not in body, body
    assert session_of(first).revoked_reason == SessionEndReason.LOGOUT
    assert_refused(refresh(gql, second["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert_me_refused(gql, second["token"], AuthErrorCode.TOKEN_REVOKED)


@pytest.mark.parametrize("presented", ["", "nonsense", "B" * 43, "B" * 43 + "=", "a.b.c"])
def test_logout_with_an_unknown_or_malformed_token_is_invalid(gql, user, presented):
    tokens = sign_in(gql)
    before = snapshot()

    body = gql(REVOKE, {"refreshToken": presented})

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "revokeToken", *([presented] if len(presented) > 5 else []))
    assert snapshot() == before
    assert_me(gql, tokens["token"])


def test_logout_with_an_access_token_is_invalid(gql, user):
    tokens = sign_in(gql)
    before = snapshot()

    body = gql(REVOKE, {"refreshToken": tokens["token"]})

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "revokeToken", tokens["token"])
    assert snapshot() == before


# --- 5. logoutAll --------------------------------------------------------------------------------


def test_logout_all_needs_a_signed_in_user(gql, user):
    sign_in(gql)
    before = snapshot()

    body = gql(LOGOUT_ALL)

    assert_refused(body, AuthErrorCode.UNAUTHENTICATED, "logoutAll")
    assert snapshot() == before


def test_logout_all_ends_every_device_of_the_viewer_only(gql, user, bob):
    devices = [sign_in(gql, user_agent=name) for name in ("phone", "laptop", "tablet")]
    bobs = sign_in(gql, email="bob@example.com")

    body = gql(LOGOUT_ALL, token=devices[1]["token"])

    assert body == {"data": {"logoutAll": {"success": True, "revokedSessions": 3}}}
    for device in devices:
        session = session_of(device)
        assert session.revoked_reason == SessionEndReason.LOGOUT_ALL
        assert session.revoked_at is not None
        assert_me_refused(gql, device["token"], AuthErrorCode.TOKEN_REVOKED)
        assert_refused(refresh(gql, device["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    # someone else's sessions are untouched
    assert session_of(bobs).revoked_at is None
    assert_me(gql, bobs["token"], "bob")
    rotate(gql, bobs["refreshToken"])


def test_logout_all_counts_only_the_live_sessions_it_ended(gql, user):
    # revokedSessions is documented as "How many live sessions were ended".
    live = [sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")]
    logged_out, expired = sign_in(gql, user_agent="old"), sign_in(gql, user_agent="stale")
    gql(REVOKE, {"refreshToken": logged_out["refreshToken"]})
    Session.objects.filter(pk=expired["payload"]["sid"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    body = gql(LOGOUT_ALL, token=live[0]["token"])

    assert "errors" not in body, body
    assert session_of(logged_out).revoked_reason == SessionEndReason.LOGOUT  # the first reason stays
    assert body["data"]["logoutAll"]["revokedSessions"] == 2


def test_logout_all_with_a_revoked_token_is_refused(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    gql(REVOKE, {"refreshToken": phone["refreshToken"]})
    before = snapshot()

    body = gql(LOGOUT_ALL, token=phone["token"])

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "logoutAll", phone["token"])
    assert snapshot() == before
    assert_me(gql, laptop["token"])


# --- 6. me { sessions } and node ---------------------------------------------------------------


def test_sessions_lists_the_viewers_live_sessions_and_marks_the_current_one(gql, user, bob):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    sign_in(gql, email="bob@example.com", user_agent="bobs")

    body = gql(SESSIONS, token=laptop["token"])

    assert "errors" not in body, body
    listed = body["data"]["me"]["sessions"]
    by_id = {uuid.UUID(from_global_id(item["id"])[1]): item for item in listed}
    assert set(by_id) == {session_of(phone).id, session_of(laptop).id}
    assert [by_id[session_of(s).id]["current"] for s in (phone, laptop)] == [False, True]
    laptop_row = session_of(laptop)
    item = by_id[laptop_row.id]
    assert from_global_id(item["id"])[0] == "Session"
    assert item["userAgent"] == "laptop"
    assert item["ipAddress"] == "127.0.0.1"
    assert item["createdAt"] == laptop_row.created_at.isoformat()
    assert item["lastUsedAt"] == laptop_row.last_used_at.isoformat()
    assert item["expiresAt"] == laptop_row.ends_at().isoformat()


def test_sessions_are_most_recently_used_first(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    Session.objects.update(last_used_at=timezone.now() - timedelta(hours=1))
    phone = rotate(gql, phone["refreshToken"])

    listed = gql(SESSIONS, token=laptop["token"])["data"]["me"]["sessions"]

    assert [item["userAgent"] for item in listed] == ["phone", "laptop"]


def test_sessions_leave_out_revoked_and_expired_ones(gql, user):
    current = sign_in(gql, user_agent="current")
    logged_out = sign_in(gql, user_agent="logged-out")
    idle = sign_in(gql, user_agent="idle")
    absolute = sign_in(gql, user_agent="absolute")
    gql(REVOKE, {"refreshToken": logged_out["refreshToken"]})
    now = timezone.now()
    Session.objects.filter(pk=idle["payload"]["sid"]).update(last_used_at=now - IDLE - timedelta(seconds=1))
    Session.objects.filter(pk=absolute["payload"]["sid"]).update(expires_at=now - timedelta(seconds=1))

    listed = gql(SESSIONS, token=current["token"])["data"]["me"]["sessions"]

    assert [(item["userAgent"], item["current"]) for item in listed] == [("current", True)]


def test_node_shows_an_own_live_session(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")
    global_id = session_global_id(session_of(phone))

    body = gql(NODE, {"id": global_id}, token=laptop["token"])

    expected = {"__typename": "Session", "id": global_id, "userAgent": "phone", "current": False}
    assert body == {"data": {"node": expected}}


def test_node_hides_other_users_and_ended_sessions(gql, user, bob):
    mine = sign_in(gql)
    bobs = sign_in(gql, email="bob@example.com")
    ended = sign_in(gql, user_agent="ended")
    gql(REVOKE, {"refreshToken": ended["refreshToken"]})

    for other in (bobs, ended):
        body = gql(NODE, {"id": session_global_id(session_of(other))}, token=mine["token"])
        assert body == {"data": {"node": None}}
    # and an anonymous request sees no session at all
    assert gql(NODE, {"id": session_global_id(session_of(mine))}) == {"data": {"node": None}}


def test_sessions_of_a_revoked_token_are_refused(gql, user):
    tokens = sign_in(gql)
    gql(REVOKE, {"refreshToken": tokens["refreshToken"]})

    assert_refused(gql(SESSIONS, token=tokens["token"]), AuthErrorCode.TOKEN_REVOKED, "me", tokens["token"])


# --- 7. revokeSession ----------------------------------------------------------------------------


def test_revoke_session_ends_another_device(gql, user):
    phone, laptop = sign_in(gql, user_agent="phone"), sign_in(gql, user_agent="laptop")

    body = gql(REVOKE_SESSION, {"id": session_global_id(session_of(phone))}, token=laptop["token"])

    assert body == {"data": {"revokeSession": {"success": True, "errors": []}}}
    assert session_of(phone).revoked_reason == SessionEndReason.REVOKED_BY_USER
    assert_me_refused(gql, phone["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(refresh(gql, phone["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")
    assert session_of(laptop).revoked_at is None
    assert_me(gql, laptop["token"])
    listed = gql(SESSIONS, token=laptop["token"])["data"]["me"]["sessions"]
    assert [item["userAgent"] for item in listed] == ["laptop"]


def test_revoke_session_of_someone_else_is_not_found(gql, user, bob):
    mine = sign_in(gql)
    bobs = sign_in(gql, email="bob@example.com")
    before = snapshot()

    body = gql(REVOKE_SESSION, {"id": session_global_id(session_of(bobs))}, token=mine["token"])

    payload = body["data"]["revokeSession"]
    assert payload["success"] is False
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("id", UserErrorCode.NOT_FOUND.name)]
    assert snapshot() == before
    assert_me(gql, bobs["token"], "bob")


def test_revoke_session_answers_others_like_nonexistent(gql, user, bob):
    # No oracle: someone else's session looks exactly like one that never existed.
    mine = sign_in(gql)
    bobs = sign_in(gql, email="bob@example.com")

    theirs = gql(REVOKE_SESSION, {"id": session_global_id(session_of(bobs))}, token=mine["token"])
    nobodys = gql(REVOKE_SESSION, {"id": to_global_id("Session", str(uuid.uuid4()))}, token=mine["token"])

    assert theirs == nobodys


@pytest.mark.parametrize(
    "make_id",
    [
        pytest.param(lambda user: "!!!not-base64", id="malformed"),
        pytest.param(lambda user: "", id="empty"),
        pytest.param(lambda user: to_global_id("Session", "not-a-uuid"), id="session-not-uuid"),
        pytest.param(lambda user: to_global_id("User", user.pk), id="user-global-id"),
        pytest.param(lambda user: to_global_id("Session", str(uuid.uuid4())), id="random-uuid"),
        pytest.param(lambda user: str(uuid.uuid4()), id="bare-uuid"),
    ],
)
def test_revoke_session_with_a_bad_id_changes_nothing(gql, user, make_id):
    mine = sign_in(gql)
    before = snapshot()

    body = gql(REVOKE_SESSION, {"id": make_id(user)}, token=mine["token"])

    assert "errors" not in body, body
    payload = body["data"]["revokeSession"]
    assert payload["success"] is False
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("id", UserErrorCode.NOT_FOUND.name)]
    assert snapshot() == before
    assert_me(gql, mine["token"])


def test_revoke_session_of_an_already_ended_or_expired_session_is_not_found(gql, user):
    current = sign_in(gql)
    ended, expired = sign_in(gql, user_agent="ended"), sign_in(gql, user_agent="expired")
    gql(REVOKE, {"refreshToken": ended["refreshToken"]})
    Session.objects.filter(pk=expired["payload"]["sid"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot()

    for other in (ended, expired):
        body = gql(REVOKE_SESSION, {"id": session_global_id(session_of(other))}, token=current["token"])
        assert body["data"]["revokeSession"]["errors"][0]["code"] == UserErrorCode.NOT_FOUND.name

    assert snapshot() == before


def test_revoke_session_needs_a_signed_in_user(gql, user):
    tokens = sign_in(gql)
    before = snapshot()

    body = gql(REVOKE_SESSION, {"id": session_global_id(session_of(tokens))})

    assert_refused(body, AuthErrorCode.UNAUTHENTICATED, "revokeSession")
    assert snapshot() == before


def test_revoke_session_of_the_current_session_signs_it_out(gql, user):
    tokens = sign_in(gql)

    body = gql(REVOKE_SESSION, {"id": session_global_id(session_of(tokens))}, token=tokens["token"])

    assert body["data"]["revokeSession"] == {"success": True, "errors": []}
    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_REVOKED)


# --- 8. verifyToken ------------------------------------------------------------------------------


def test_verify_returns_the_claims_of_a_live_token(gql, user):
    tokens = sign_in(gql)
    before = snapshot()

    body = gql(VERIFY, {"token": tokens["token"]})

    assert "errors" not in body, body
    payload = body["data"]["verifyToken"]["payload"]
    assert payload == tokens["payload"]
    assert payload["sub"] == str(user.pk)
    assert payload["sid"] == session_of(tokens).id.hex
    assert snapshot() == before  # verifying is not using


def test_verify_refuses_a_forged_signature(gql, user):
    tokens = sign_in(gql)
    forged = sign_token(tokens["payload"], OTHER_KEY)

    assert_refused(gql(VERIFY, {"token": forged}), AuthErrorCode.TOKEN_INVALID, "verifyToken", forged)
    assert_me_refused(gql, forged, AuthErrorCode.TOKEN_INVALID)


def test_verify_refuses_an_expired_token(gql, user):
    tokens = sign_in(gql)
    now = int(time.time())
    expired = jwt_encode({**tokens["payload"], "iat": now - 400, "exp": now - 100})

    assert_refused(gql(VERIFY, {"token": expired}), AuthErrorCode.TOKEN_EXPIRED, "verifyToken", expired)
    assert_me_refused(gql, expired, AuthErrorCode.TOKEN_EXPIRED)


def test_verify_refuses_a_token_of_an_ended_session(gql, user):
    tokens = sign_in(gql)
    gql(REVOKE, {"refreshToken": tokens["refreshToken"]})

    body = gql(VERIFY, {"token": tokens["token"]})

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "verifyToken", tokens["token"])


def test_verify_refuses_a_token_of_an_expired_session(gql, user):
    tokens = sign_in(gql)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    body = gql(VERIFY, {"token": tokens["token"]})

    assert_refused(body, AuthErrorCode.TOKEN_EXPIRED, "verifyToken", tokens["token"])


@pytest.mark.parametrize("presented", ["", "garbage", "a.b.c", "Bearer x.y.z"])
def test_verify_refuses_garbage(gql, db, presented):
    body = gql(VERIFY, {"token": presented})

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "verifyToken")


def test_a_session_token_of_another_user_never_resolves(gql, user, bob):
    # Even with the signing key, a token naming bob's session as alice reaches nobody.
    bobs = sign_in(gql, email="bob@example.com")
    crossed = jwt_encode({**jwt_payload(user), "sid": bobs["payload"]["sid"]})

    assert_refused(gql(VERIFY, {"token": crossed}), AuthErrorCode.TOKEN_REVOKED, "verifyToken", crossed)
    assert_me_refused(gql, crossed, AuthErrorCode.TOKEN_REVOKED)


def test_a_token_without_a_session_never_authenticates(gql, user):
    # The library's own helper mints tokens without `sid`: no session, no access.
    sessionless = get_token(user)

    assert_refused(gql(VERIFY, {"token": sessionless}), AuthErrorCode.TOKEN_INVALID, "verifyToken", sessionless)
    assert_me_refused(gql, sessionless, AuthErrorCode.TOKEN_INVALID)


# --- 9. deactivated and deleted users -----------------------------------------------------------


def test_deactivated_user_is_refused_on_every_token_path(gql, user):
    tokens = sign_in(gql)
    User.objects.filter(pk=user.pk).update(is_active=False)
    before = snapshot()

    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(gql(VERIFY, {"token": tokens["token"]}), AuthErrorCode.TOKEN_REVOKED, "verifyToken", tokens["token"])
    assert_refused(
        refresh(gql, tokens["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken", tokens["refreshToken"]
    )
    assert_refused(gql(LOGOUT_ALL, token=tokens["token"]), AuthErrorCode.TOKEN_REVOKED, "logoutAll")
    assert snapshot() == before  # nothing rotated, nothing issued


def test_deactivated_user_can_still_sign_out(gql, user):
    # Ending a session is always safe; the refresh token must never come back to life.
    tokens = sign_in(gql)
    User.objects.filter(pk=user.pk).update(is_active=False)

    body = gql(REVOKE, {"refreshToken": tokens["refreshToken"]})

    assert "errors" not in body, body
    assert session_of(tokens).revoked_reason == SessionEndReason.LOGOUT
    User.objects.filter(pk=user.pk).update(is_active=True)
    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(refresh(gql, tokens["refreshToken"]), AuthErrorCode.TOKEN_REVOKED, "refreshToken")


def test_deleted_user_is_refused_on_every_token_path_without_a_500(gql, user):
    tokens = sign_in(gql)
    user.delete()

    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(gql(VERIFY, {"token": tokens["token"]}), AuthErrorCode.TOKEN_REVOKED, "verifyToken", tokens["token"])
    for mutation, field in ((REFRESH, "refreshToken"), (REVOKE, "revokeToken")):
        body = gql(mutation, {"refreshToken": tokens["refreshToken"]})
        assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in error_codes(body)
        assert_refused(body, AuthErrorCode.TOKEN_INVALID, field, tokens["refreshToken"])
    assert not Session.objects.exists()
    assert not RefreshToken.objects.exists()


# --- 10. token-type confusion --------------------------------------------------------------------


def test_an_access_token_is_not_a_refresh_token(gql, user):
    tokens = sign_in(gql)
    before = snapshot()

    body = refresh(gql, tokens["token"])

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "refreshToken", tokens["token"])
    assert snapshot() == before


def test_a_refresh_token_is_not_a_bearer_token(gql, user):
    tokens = sign_in(gql)
    before = snapshot()

    assert_me_refused(gql, tokens["refreshToken"], AuthErrorCode.TOKEN_INVALID)
    assert_refused(
        gql(LOGOUT_ALL, token=tokens["refreshToken"]), AuthErrorCode.TOKEN_INVALID, "logoutAll", tokens["refreshToken"]
    )
    body = gql(VERIFY, {"token": tokens["refreshToken"]})
    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "verifyToken", tokens["refreshToken"])
    assert snapshot() == before
    # and the refresh token itself is unharmed
    rotate(gql, tokens["refreshToken"])


def test_a_signed_token_of_another_type_is_not_an_access_token(gql, user):
    tokens = sign_in(gql)
    typed = jwt_encode({**tokens["payload"], "token_type": "refresh"})

    assert_me_refused(gql, typed, AuthErrorCode.TOKEN_INVALID)
    assert_refused(gql(VERIFY, {"token": typed}), AuthErrorCode.TOKEN_INVALID, "verifyToken", typed)


# --- 11. re-registration of a deleted address ---------------------------------------------------


def test_reregistering_a_deleted_address_revives_no_old_token(gql, db):
    old = register(gql)
    User.objects.get(username="carol").delete()

    new = register(gql)

    new_user = User.objects.get(username="carol")
    assert str(new_user.pk) != old["payload"]["sub"]
    assert_me_refused(gql, old["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(gql(VERIFY, {"token": old["token"]}), AuthErrorCode.TOKEN_REVOKED, "verifyToken")
    assert_refused(refresh(gql, old["refreshToken"]), AuthErrorCode.TOKEN_INVALID, "refreshToken")
    assert_me(gql, new["token"], "carol")
    assert rotate(gql, new["refreshToken"])["payload"]["sub"] == str(new_user.pk)
    assert Session.objects.filter(user=new_user).count() == 1


def test_old_tokens_stay_dead_even_if_the_primary_key_is_reused(gql, db):
    # A database that hands out the old id again must still not revive the old session.
    old = register(gql)
    old_pk = int(old["payload"]["sub"])
    User.objects.get(pk=old_pk).delete()
    User.objects.create_user(pk=old_pk, username="carol", email="carol@example.com", password=PASSWORD)

    assert_me_refused(gql, old["token"], AuthErrorCode.TOKEN_REVOKED)
    assert_refused(refresh(gql, old["refreshToken"]), AuthErrorCode.TOKEN_INVALID, "refreshToken")
    assert not Session.objects.exists()


# --- 12. expired sessions ------------------------------------------------------------------------


def test_absolute_expiry_refuses_refresh_and_access(gql, user):
    tokens = sign_in(gql)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot()

    body = refresh(gql, tokens["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_EXPIRED, "refreshToken", tokens["refreshToken"])
    assert snapshot() == before
    # the access token still verifies cryptographically, but its session is over
    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_EXPIRED)


def test_idle_expiry_refuses_refresh_and_access(gql, user):
    tokens = sign_in(gql)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(
        last_used_at=timezone.now() - IDLE - timedelta(seconds=1)
    )
    before = snapshot()

    body = refresh(gql, tokens["refreshToken"])

    assert_refused(body, AuthErrorCode.TOKEN_EXPIRED, "refreshToken", tokens["refreshToken"])
    assert snapshot() == before
    assert_me_refused(gql, tokens["token"], AuthErrorCode.TOKEN_EXPIRED)


def test_a_session_just_inside_its_idle_lifetime_still_refreshes(gql, user):
    tokens = sign_in(gql)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(
        last_used_at=timezone.now() - IDLE + timedelta(minutes=1)
    )

    new = rotate(gql, tokens["refreshToken"])

    assert session_of(new).last_used_at > timezone.now() - timedelta(minutes=1)


def test_a_shorter_idle_lifetime_setting_applies_to_existing_sessions(gql, user):
    tokens = sign_in(gql)
    Session.objects.filter(pk=tokens["payload"]["sid"]).update(last_used_at=timezone.now() - timedelta(minutes=2))

    with override_settings(JWT_REFRESH_TOKEN_IDLE_LIFETIME=60):
        assert_refused(refresh(gql, tokens["refreshToken"]), AuthErrorCode.TOKEN_EXPIRED, "refreshToken")


# --- 13. query count -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", [ME, "{ a: me { username } b: me { username } c: me { username } }"], ids=["one", "three-aliases"]
)
def test_an_authenticated_request_costs_exactly_one_query(gql, user, query):
    tokens = sign_in(gql)

    with CaptureQueriesContext(connection) as queries:
        body = gql(query, token=tokens["token"])

    assert "errors" not in body, body
    assert all(value == {"username": "alice"} for value in body["data"].values())
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]


def test_a_logged_out_token_costs_one_query_and_is_revoked(gql, user):
    tokens = sign_in(gql)
    gql(REVOKE, {"refreshToken": tokens["refreshToken"]})

    with CaptureQueriesContext(connection) as queries:
        body = gql(ME, token=tokens["token"])

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED, "me", tokens["token"])
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]


def test_a_forged_token_costs_no_query(gql, user):
    tokens = sign_in(gql)
    forged = sign_token(tokens["payload"], OTHER_KEY)

    with CaptureQueriesContext(connection) as queries:
        body = gql(ME, token=forged)

    assert_refused(body, AuthErrorCode.TOKEN_INVALID, "me", forged)
    assert queries.captured_queries == []


# --- 14. nothing sensitive is echoed -------------------------------------------------------------


def test_no_refusal_echoes_the_presented_token(gql, user):
    # Error bodies end up in logs and bug reports: the presented secret must not.
    tokens = sign_in(gql)
    rotated = rotate(gql, tokens["refreshToken"])
    probes = [
        (REFRESH, {"refreshToken": tokens["refreshToken"]}, None, tokens["refreshToken"]),  # within grace
        (REFRESH, {"refreshToken": rotated["token"]}, None, rotated["token"]),  # wrong type
        (REVOKE, {"refreshToken": "C" * 43}, None, "C" * 43),  # unknown
        (VERIFY, {"token": rotated["refreshToken"]}, None, rotated["refreshToken"]),  # wrong type
        (ME, None, rotated["refreshToken"], rotated["refreshToken"]),  # refresh as Bearer
        (ME, None, rotated["token"] + "x", rotated["token"]),  # broken signature
    ]
    for query, variables, bearer, secret in probes:
        body = gql(query, variables, token=bearer)
        assert body.get("errors"), body
        text = json.dumps(body)
        assert secret not in text
        assert secret[:20] not in text
