"""Sessions and refresh tokens at the service and selector level (accounts.services, selectors, tokens).

Requests are built with RequestFactory; time is moved by updating rows, never by sleeping.
"""

import base64
import dataclasses
import hashlib
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import RequestFactory, override_settings
from django.utils import timezone

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.exceptions import TokenExpired, TokenInvalid, TokenRevoked
from accounts.models import RefreshToken, Session, SessionEndReason, User
from accounts.selectors import access_token_check, session_list_live, sessions_live, user_get_for_access
from accounts.services import (
    refresh_token_revoke,
    refresh_token_rotate,
    session_open,
    session_revoke,
    session_revoke_all,
)
from accounts.tokens import access_token_verify, refresh_token_digest, refresh_token_generate
from accounts.validators import USER_AGENT_MAX_LENGTH
from tests.accounts.test_tokens import token_for

BASE64URL_43 = re.compile(r"[A-Za-z0-9_-]{43}")


def gatehouse(**changes):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, **changes})


def request_with(**meta):
    """Return a POST /graphql request carrying `meta` (REMOTE_ADDR, HTTP_USER_AGENT, ...)."""
    return RequestFactory().post("/graphql", **meta)


def session_of(tokens) -> Session:
    return Session.objects.get(pk=access_token_verify(tokens.token).session_id)


def age_use(refresh_token: str, seconds: int) -> None:
    """Pretend `refresh_token` was used `seconds` ago."""
    RefreshToken.objects.filter(token_hash=refresh_token_digest(refresh_token)).update(
        used_at=timezone.now() - timedelta(seconds=seconds)
    )


def past_grace() -> int:
    return settings.REFRESH_TOKEN_REUSE_GRACE + 1


def idle_ago() -> timedelta:
    return timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME + 1)


# --- session_open: what a session records ---------------------------------------------------------


def test_session_open_records_user_times_agent_and_address(user):
    # when
    before = timezone.now()
    tokens = session_open(user=user, request=request_with(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="Firefox/140"))
    # then
    session = session_of(tokens)
    assert session.user_id == user.pk
    assert session.user_agent == "Firefox/140"
    assert session.ip_address == "192.0.2.10"
    assert session.revoked_at is None
    assert session.revoked_reason == ""
    assert before <= session.created_at == session.last_used_at
    assert session.expires_at == session.created_at + timedelta(seconds=settings.JWT_REFRESH_TOKEN_LIFETIME)
    assert session.refresh_tokens.count() == 1
    assert tokens.refresh_expires_in == int(session.ends_at().timestamp())


def test_session_open_strips_control_characters_from_the_user_agent(user):
    # A client-chosen header must not break log lines or admin pages.
    agent = "Mozilla/5.0\x00 (X11)\r\nX-Injected: 1\x1b[31m\u200b\x7f"
    tokens = session_open(user=user, request=request_with(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT=agent))
    stored = session_of(tokens).user_agent
    assert stored == "Mozilla/5.0 (X11)X-Injected: 1[31m"
    assert not any(ord(char) < 32 or ord(char) == 127 for char in stored)


def test_session_open_cuts_the_user_agent_at_512_characters(user):
    tokens = session_open(user=user, request=request_with(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="A" * 5000))
    assert USER_AGENT_MAX_LENGTH == 512
    assert session_of(tokens).user_agent == "A" * 512


def test_session_open_without_a_request_records_no_agent_or_address(user):
    session = session_of(session_open(user=user))
    assert session.user_agent == ""
    assert session.ip_address is None


def test_session_open_without_a_user_agent_header_records_an_empty_one(user):
    session = session_of(session_open(user=user, request=request_with(REMOTE_ADDR="192.0.2.10")))
    assert session.user_agent == ""


def test_session_open_ignores_x_forwarded_for_without_a_trusted_proxy(user):
    # By default the header is the client's own word: never believed.
    request = request_with(REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert session_of(session_open(user=user, request=request)).ip_address == "192.0.2.10"


@gatehouse(TRUSTED_PROXY_COUNT=1)
def test_session_open_takes_the_rightmost_forwarded_entry_behind_one_proxy(user):
    # given: the client forged the leftmost entry; our proxy appended the real peer
    request = request_with(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.66, 198.51.100.7")
    # then
    assert session_of(session_open(user=user, request=request)).ip_address == "198.51.100.7"


@gatehouse(TRUSTED_PROXY_COUNT=1)
def test_session_open_normalises_an_ipv6_address(user):
    request = request_with(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:DB8:0:0::1")
    assert session_of(session_open(user=user, request=request)).ip_address == "2001:db8::1"


@pytest.mark.parametrize("remote", ["not-an-address", "", "999.1.1.1", "192.0.2.10; DROP TABLE"])
def test_session_open_records_no_address_for_a_garbage_remote_addr(user, remote):
    session = session_of(session_open(user=user, request=request_with(REMOTE_ADDR=remote)))
    assert session.ip_address is None


# --- refresh tokens: shape and storage ---------------------------------------------------------------


def test_refresh_tokens_are_43_base64url_chars_of_256_random_bits():
    tokens = [refresh_token_generate()[0] for _ in range(200)]
    assert len(set(tokens)) == 200
    for token in tokens:
        assert BASE64URL_43.fullmatch(token)
        assert len(base64.urlsafe_b64decode(token + "=")) * 8 >= 256


def test_only_the_sha256_digest_of_a_refresh_token_is_stored(user):
    # when
    tokens = session_open(user=user)
    # then
    row = RefreshToken.objects.get()
    assert row.token_hash == hashlib.sha256(tokens.refresh_token.encode()).hexdigest()
    assert row.token_hash != tokens.refresh_token
    stored = [str(value) for value in RefreshToken.objects.values_list("token_hash", "session_id", "pk").get()]
    stored += [str(value) for value in Session.objects.values_list(*[f.attname for f in Session._meta.fields]).get()]
    assert not any(tokens.refresh_token in value for value in stored)


def test_refresh_token_digest_accepts_our_shape():
    token, digest = refresh_token_generate()
    assert refresh_token_digest(token) == digest == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(
    "value",
    [
        "a" * 42,
        "a" * 44,
        "a" * 42 + "=",  # padded
        "a" * 21 + "." + "a" * 21,  # a dot: JWT-shaped
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "a" * 42 + "+",  # standard base64, not base64url
        "a" * 42 + "\n",
        "",
        None,
        b"a" * 43,
        43,
        ["a" * 43],
    ],
    ids=["42", "44", "padded", "dotted", "jwt", "plus", "newline", "empty", "none", "bytes", "int", "list"],
)
def test_refresh_token_digest_refuses_anything_we_could_not_have_issued(value):
    with pytest.raises(TokenInvalid):
        refresh_token_digest(value)


def test_an_access_token_is_never_accepted_as_a_refresh_token(user):
    tokens = session_open(user=user)
    with pytest.raises(TokenInvalid):
        refresh_token_rotate(refresh_token=tokens.token)
    with pytest.raises(TokenInvalid):
        refresh_token_revoke(refresh_token=tokens.token)
    assert session_of(tokens).revoked_at is None


def test_a_refresh_token_is_never_accepted_as_an_access_token(user):
    tokens = session_open(user=user)
    with pytest.raises(TokenInvalid):
        access_token_check(tokens.refresh_token)


# --- refresh_token_rotate -----------------------------------------------------------------------------


def test_rotation_chain_issues_successors_in_the_same_session(user):
    # given
    first = session_open(user=user)
    session = session_of(first)
    # when
    rotated_user, second = refresh_token_rotate(refresh_token=first.refresh_token)
    _, third = refresh_token_rotate(refresh_token=second.refresh_token)
    # then
    assert rotated_user.pk == user.pk
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert {access_token_verify(t.token).session_id for t in (first, second, third)} == {session.id.hex}
    rows = {row.token_hash: row for row in RefreshToken.objects.filter(session=session)}
    assert len(rows) == 3
    assert rows[refresh_token_digest(first.refresh_token)].used_at is not None
    assert rows[refresh_token_digest(second.refresh_token)].used_at is not None
    assert rows[refresh_token_digest(third.refresh_token)].used_at is None
    session.refresh_from_db()
    assert session.revoked_at is None
    assert session.last_used_at == rows[refresh_token_digest(second.refresh_token)].used_at


def test_rotation_never_extends_the_absolute_expiry(user):
    first = session_open(user=user)
    expires_at = session_of(first).expires_at
    _, second = refresh_token_rotate(refresh_token=first.refresh_token)
    assert session_of(second).expires_at == expires_at
    assert second.refresh_expires_in <= int(expires_at.timestamp())


def test_a_used_token_within_the_grace_window_is_refused_and_does_no_harm(user):
    # given: a retry right after a successful rotation
    first = session_open(user=user)
    _, second = refresh_token_rotate(refresh_token=first.refresh_token)
    # when
    with pytest.raises(TokenInvalid):
        refresh_token_rotate(refresh_token=first.refresh_token)
    # then: the session lives and the successor still works
    assert session_of(first).revoked_at is None
    _, third = refresh_token_rotate(refresh_token=second.refresh_token)
    assert BASE64URL_43.fullmatch(third.refresh_token)


def test_a_used_token_after_the_grace_window_revokes_the_whole_session(user):
    # given: the token was rotated 11 s ago and comes back (a stolen copy)
    first = session_open(user=user)
    _, second = refresh_token_rotate(refresh_token=first.refresh_token)
    age_use(first.refresh_token, past_grace())
    # when
    with pytest.raises(TokenRevoked) as raised:
        refresh_token_rotate(refresh_token=first.refresh_token)
    # then
    assert raised.value.code is AuthErrorCode.TOKEN_REVOKED
    session = session_of(first)
    assert session.revoked_at is not None
    assert session.revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE
    # and the legitimate holder's successor token is dead too
    with pytest.raises(TokenRevoked):
        refresh_token_rotate(refresh_token=second.refresh_token)
    with pytest.raises(TokenRevoked):
        access_token_check(second.token)


@pytest.mark.django_db(transaction=True)
def test_the_replay_revocation_is_committed_although_an_error_is_raised(user):
    # In autocommit (no test transaction around us): the revocation must survive the raise.
    first = session_open(user=user)
    refresh_token_rotate(refresh_token=first.refresh_token)
    age_use(first.refresh_token, past_grace())
    assert not connection.in_atomic_block
    # when
    with pytest.raises(TokenRevoked):
        refresh_token_rotate(refresh_token=first.refresh_token)
    # then: read back from the database, not from the service's objects
    row = Session.objects.values("revoked_at", "revoked_reason").get()
    assert row["revoked_at"] is not None
    assert row["revoked_reason"] == SessionEndReason.REFRESH_TOKEN_REUSE


@pytest.mark.django_db(transaction=True)
def test_a_replay_through_revoke_is_committed_too(user):
    first = session_open(user=user)
    refresh_token_rotate(refresh_token=first.refresh_token)
    age_use(first.refresh_token, past_grace())
    with pytest.raises(TokenRevoked):
        refresh_token_revoke(refresh_token=first.refresh_token)
    assert Session.objects.get().revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE


def test_rotation_of_an_absolutely_expired_session_is_expired(user):
    tokens = session_open(user=user)
    Session.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenExpired):
        refresh_token_rotate(refresh_token=tokens.refresh_token)
    # expiry is not a revocation, and the token stays unused
    assert session_of(tokens).revoked_at is None
    assert RefreshToken.objects.get().used_at is None


def test_rotation_of_an_idle_expired_session_is_expired(user):
    tokens = session_open(user=user)
    Session.objects.update(last_used_at=timezone.now() - idle_ago())
    with pytest.raises(TokenExpired):
        refresh_token_rotate(refresh_token=tokens.refresh_token)
    assert RefreshToken.objects.count() == 1


def test_rotation_just_inside_the_idle_window_succeeds(user):
    tokens = session_open(user=user)
    Session.objects.update(
        last_used_at=timezone.now() - timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME - 60)
    )
    _, rotated = refresh_token_rotate(refresh_token=tokens.refresh_token)
    assert session_of(rotated).last_used_at > timezone.now() - timedelta(seconds=60)


def test_rotation_for_a_deactivated_user_is_revoked(user):
    tokens = session_open(user=user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(TokenRevoked):
        refresh_token_rotate(refresh_token=tokens.refresh_token)
    assert RefreshToken.objects.get().used_at is None


def test_rotation_of_a_never_issued_token_is_invalid(user):
    session_open(user=user)
    with pytest.raises(TokenInvalid):
        refresh_token_rotate(refresh_token=refresh_token_generate()[0])


def test_rotation_of_a_deleted_users_token_is_invalid_not_a_crash(user):
    tokens = session_open(user=user)
    user.delete()
    with pytest.raises(TokenInvalid):
        refresh_token_rotate(refresh_token=tokens.refresh_token)


# --- refresh_token_revoke -------------------------------------------------------------------------------


def test_revoke_with_the_current_token_signs_out(user):
    tokens = session_open(user=user)
    # when
    ended = refresh_token_revoke(refresh_token=tokens.refresh_token)
    # then
    stored = session_of(tokens)
    assert ended.pk == stored.pk
    assert stored.revoked_at is not None
    assert stored.revoked_reason == SessionEndReason.LOGOUT
    with pytest.raises(TokenRevoked):
        access_token_check(tokens.token)


def test_revoke_with_the_predecessor_within_the_grace_window_signs_out(user):
    # A client that lost the rotation's answer still holds only the old token: it must be able to log out.
    first = session_open(user=user)
    refresh_token_rotate(refresh_token=first.refresh_token)
    refresh_token_revoke(refresh_token=first.refresh_token)
    assert session_of(first).revoked_reason == SessionEndReason.LOGOUT


def test_revoke_with_the_predecessor_after_the_grace_window_is_a_replay(user):
    first = session_open(user=user)
    refresh_token_rotate(refresh_token=first.refresh_token)
    age_use(first.refresh_token, past_grace())
    with pytest.raises(TokenRevoked):
        refresh_token_revoke(refresh_token=first.refresh_token)
    assert session_of(first).revoked_reason == SessionEndReason.REFRESH_TOKEN_REUSE


@pytest.mark.parametrize("expiry", ["absolute", "idle"])
def test_an_expired_session_can_still_sign_out(user, expiry):
    tokens = session_open(user=user)
    now = timezone.now()
    if expiry == "absolute":
        Session.objects.update(expires_at=now - timedelta(seconds=1))
    else:
        Session.objects.update(last_used_at=now - idle_ago())
    refresh_token_revoke(refresh_token=tokens.refresh_token)
    stored = session_of(tokens)
    assert stored.revoked_at is not None
    assert stored.revoked_reason == SessionEndReason.LOGOUT


def test_revoke_of_an_already_revoked_session_is_revoked_and_keeps_the_first_reason(user):
    tokens = session_open(user=user)
    session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_CHANGE)
    revoked_at = session_of(tokens).revoked_at
    with pytest.raises(TokenRevoked):
        refresh_token_revoke(refresh_token=tokens.refresh_token)
    stored = session_of(tokens)
    assert stored.revoked_reason == SessionEndReason.PASSWORD_CHANGE
    assert stored.revoked_at == revoked_at


def test_revoke_of_a_never_issued_token_is_invalid(user):
    session_open(user=user)
    with pytest.raises(TokenInvalid):
        refresh_token_revoke(refresh_token=refresh_token_generate()[0])
    assert Session.objects.get().revoked_at is None


# --- session_revoke, session_revoke_all -----------------------------------------------------------------


def test_session_revoke_all_keeps_one_session_and_returns_the_count(user, make_user):
    # given: four sessions of alice (one already ended) and one of bob
    kept, *others = [session_of(session_open(user=user)) for _ in range(4)]
    session_revoke(user=user, session_id=others[0].pk)
    bob_session = session_of(session_open(user=make_user()))
    # when
    count = session_revoke_all(user=user, reason=SessionEndReason.LOGOUT_ALL, keep_session_id=kept.pk)
    # then
    assert count == 2
    reasons = dict(Session.objects.filter(user=user).values_list("pk", "revoked_reason"))
    assert reasons == {
        kept.pk: "",
        others[0].pk: SessionEndReason.REVOKED_BY_USER,
        others[1].pk: SessionEndReason.LOGOUT_ALL,
        others[2].pk: SessionEndReason.LOGOUT_ALL,
    }
    assert list(sessions_live().values_list("pk", flat=True).order_by("pk")) == sorted([kept.pk, bob_session.pk])


def test_session_revoke_all_without_keep_ends_every_session(user):
    tokens = [session_open(user=user) for _ in range(3)]
    assert session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_RESET) == 3
    assert set(Session.objects.values_list("revoked_reason", flat=True)) == {SessionEndReason.PASSWORD_RESET}
    for issued in tokens:
        with pytest.raises(TokenRevoked):
            access_token_check(issued.token)


def test_session_revoke_ends_ones_own_session(user):
    session = session_of(session_open(user=user))
    session_revoke(user=user, session_id=session.pk)
    session.refresh_from_db()
    assert session.revoked_reason == SessionEndReason.REVOKED_BY_USER
    assert session.revoked_at is not None


def test_session_revoke_of_another_users_session_is_not_found(user, make_user):
    # Someone else's session is answered exactly like one that does not exist, and stays live.
    bob_session = session_of(session_open(user=make_user()))
    with pytest.raises(ValidationError) as raised:
        session_revoke(user=user, session_id=bob_session.pk)
    assert [error.code for error in raised.value.error_dict["id"]] == [UserErrorCode.NOT_FOUND.value]
    bob_session.refresh_from_db()
    assert bob_session.revoked_at is None


@pytest.mark.parametrize("case", ["already-revoked", "unknown", "none"])
def test_session_revoke_of_no_live_session_is_not_found(user, case):
    session = session_of(session_open(user=user))
    if case == "already-revoked":
        session_revoke(user=user, session_id=session.pk)
    session_id = {"already-revoked": session.pk, "unknown": "0" * 32, "none": None}[case]
    with pytest.raises(ValidationError) as raised:
        session_revoke(user=user, session_id=session_id)
    assert [error.code for error in raised.value.error_dict["id"]] == [UserErrorCode.NOT_FOUND.value]


# --- sessions_live ---------------------------------------------------------------------------------------


def test_sessions_live_excludes_revoked_expired_and_idle_sessions(user):
    # given
    live, revoked, expired, idle = [session_of(session_open(user=user)) for _ in range(4)]
    now = timezone.now()
    Session.objects.filter(pk=revoked.pk).update(revoked_at=now, revoked_reason=SessionEndReason.LOGOUT)
    Session.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(seconds=1))
    Session.objects.filter(pk=idle.pk).update(last_used_at=now - idle_ago())
    # then
    assert list(sessions_live().values_list("pk", flat=True)) == [live.pk]
    assert [s.pk for s in session_list_live(user=user)] == [live.pk]


def test_session_list_live_is_most_recently_used_first_and_only_ones_own(user, make_user):
    older, newer = [session_of(session_open(user=user)) for _ in range(2)]
    session_open(user=make_user())
    Session.objects.filter(pk=older.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    assert [s.pk for s in session_list_live(user=user)] == [newer.pk, older.pk]


# --- user_get_for_access -----------------------------------------------------------------------------------


def test_user_get_for_access_returns_the_user_in_one_query(user, django_assert_num_queries):
    claims = access_token_verify(session_open(user=user).token)
    with django_assert_num_queries(1):
        found = user_get_for_access(claims=claims)
    assert found.pk == user.pk


def test_user_get_for_access_refuses_a_revoked_session(user, django_assert_num_queries):
    tokens = session_open(user=user)
    refresh_token_revoke(refresh_token=tokens.refresh_token)
    with django_assert_num_queries(1), pytest.raises(TokenRevoked):
        user_get_for_access(claims=access_token_verify(tokens.token))


def test_user_get_for_access_refuses_an_inactive_user(user):
    claims = access_token_verify(session_open(user=user).token)
    User.objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(TokenRevoked):
        user_get_for_access(claims=claims)


def test_a_sid_of_another_user_never_authenticates(user, make_user):
    # given: bob's token claims alice's live session (or the reverse)
    bob = make_user()
    alice_claims = access_token_verify(session_open(user=user).token)
    bob_claims = access_token_verify(session_open(user=bob).token)
    # then: neither mix is accepted, though every id in them is real
    with pytest.raises(TokenRevoked):
        user_get_for_access(claims=dataclasses.replace(bob_claims, session_id=alice_claims.session_id))
    with pytest.raises(TokenRevoked):
        user_get_for_access(claims=dataclasses.replace(alice_claims, subject=bob_claims.subject))


def test_a_signed_token_pairing_one_users_sub_with_anothers_sid_is_revoked(user, make_user):
    # The same, end to end through signature verification: a correctly signed token is not enough.
    alice_session = session_of(session_open(user=user))
    bob = make_user()
    forged = token_for(str(bob.pk), sid=alice_session.id.hex)
    with pytest.raises(TokenRevoked):
        access_token_check(forged)


def test_user_get_for_access_refuses_an_unknown_session(user):
    claims = access_token_verify(session_open(user=user).token)
    with pytest.raises(TokenRevoked):
        user_get_for_access(claims=dataclasses.replace(claims, session_id="0" * 32))


def test_user_get_for_access_reports_an_idle_expired_session_as_expired(user, django_assert_num_queries):
    claims = access_token_verify(session_open(user=user).token)
    Session.objects.update(last_used_at=timezone.now() - idle_ago())
    with django_assert_num_queries(1), pytest.raises(TokenExpired):
        user_get_for_access(claims=claims)


def test_user_get_for_access_reports_an_absolutely_expired_session_as_expired(user):
    claims = access_token_verify(session_open(user=user).token)
    Session.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenExpired):
        user_get_for_access(claims=claims)


def test_revocation_wins_over_expiry(user):
    # An ended session says so even once it has also expired.
    tokens = session_open(user=user)
    claims = access_token_verify(tokens.token)
    refresh_token_revoke(refresh_token=tokens.refresh_token)
    Session.objects.update(last_used_at=timezone.now() - idle_ago())
    with pytest.raises(TokenRevoked):
        user_get_for_access(claims=claims)
