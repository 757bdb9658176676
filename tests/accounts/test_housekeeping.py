"""`manage.py housekeeping`: stale sessions and their refresh tokens are deleted, live ones kept."""

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session as AdminSession
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from accounts.models import RateLimitWindow, RefreshToken, Session, SessionEndReason
from accounts.ratelimit import rate_limit_hit
from accounts.services import StaleSessions, refresh_token_rotate, session_open, sessions_delete_stale
from accounts.tokens import access_token_verify


def open_session(user, *, rotations: int = 0) -> Session:
    """Open a session of `user` whose chain holds 1 + `rotations` refresh tokens."""
    tokens = session_open(user=user)
    for _ in range(rotations):
        _, tokens = refresh_token_rotate(refresh_token=tokens.refresh_token)
    return Session.objects.get(pk=access_token_verify(tokens.token).session_id)


def age(session: Session, **fields) -> None:
    Session.objects.filter(pk=session.pk).update(**fields)


def housekeeping(*args) -> str:
    out = StringIO()
    call_command("housekeeping", *args, stdout=out)
    return out.getvalue()


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def retention() -> timedelta:
    return timedelta(seconds=settings.REVOKED_SESSION_RETENTION)


@pytest.fixture
def sessions(user):
    """Sessions of every kind; each stale one carries two refresh tokens, each kept one one or more."""
    live = open_session(user)
    recently_used = open_session(user, rotations=3)
    absolute = open_session(user, rotations=1)
    age(absolute, expires_at=ago(seconds=1))
    idle = open_session(user, rotations=1)
    age(idle, last_used_at=ago(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME + 1))
    long_revoked = open_session(user, rotations=1)
    age(long_revoked, revoked_at=timezone.now() - retention() - timedelta(seconds=1), revoked_reason="logout")
    recently_revoked = open_session(user)
    age(recently_revoked, revoked_at=ago(days=1), revoked_reason=SessionEndReason.ADMIN)
    return {
        "live": live.pk,
        "recently_used": recently_used.pk,
        "absolute": absolute.pk,
        "idle": idle.pk,
        "long_revoked": long_revoked.pk,
        "recently_revoked": recently_revoked.pk,
    }


def remaining() -> set:
    return set(Session.objects.values_list("pk", flat=True))


def test_deletes_expired_and_long_revoked_sessions_with_their_refresh_tokens(sessions):
    # given
    stale = [sessions["absolute"], sessions["idle"], sessions["long_revoked"]]
    kept = [sessions["live"], sessions["recently_used"], sessions["recently_revoked"]]
    kept_tokens = RefreshToken.objects.filter(session__in=kept).count()
    assert RefreshToken.objects.filter(session__in=stale).count() == 6
    # when
    housekeeping()
    # then
    assert remaining() == set(kept)
    assert not RefreshToken.objects.filter(session_id__in=stale).exists()
    assert RefreshToken.objects.count() == kept_tokens == 1 + 4 + 1


def test_output_states_the_counts(sessions):
    output = housekeeping()
    assert output.strip().splitlines() == [
        "Deleted 2 expired and 1 long-revoked session(s) with 6 refresh token(s).",
        "Deleted 0 used or expired emailed token(s) and 0 old audit-trail event(s).",
        "Deleted 0 expired rate-limit window(s).",
    ]


def test_dry_run_deletes_nothing_and_prints_the_counts(sessions):
    # given
    tokens_before = RefreshToken.objects.count()
    # when
    output = housekeeping("--dry-run")
    # then
    assert output.strip().splitlines() == [
        "Would delete 2 expired and 1 long-revoked session(s) with 6 refresh token(s).",
        "Would delete 0 used or expired emailed token(s) and 0 old audit-trail event(s).",
        "Would delete 0 expired rate-limit window(s).",
    ]
    assert remaining() == set(sessions.values())
    assert RefreshToken.objects.count() == tokens_before


def test_dry_run_then_real_run_agree(sessions):
    dry = housekeeping("--dry-run")
    real = housekeeping()
    assert dry.replace("Would delete", "Deleted") == real
    assert housekeeping().strip().splitlines() == [
        "Deleted 0 expired and 0 long-revoked session(s) with 0 refresh token(s).",
        "Deleted 0 used or expired emailed token(s) and 0 old audit-trail event(s).",
        "Deleted 0 expired rate-limit window(s).",
    ]


def test_nothing_stale_deletes_nothing(user):
    live = open_session(user, rotations=2)
    assert housekeeping().strip().splitlines() == [
        "Deleted 0 expired and 0 long-revoked session(s) with 0 refresh token(s).",
        "Deleted 0 used or expired emailed token(s) and 0 old audit-trail event(s).",
        "Deleted 0 expired rate-limit window(s).",
    ]
    assert remaining() == {live.pk}
    assert RefreshToken.objects.count() == 3


def test_a_revoked_session_is_kept_for_the_whole_retention_even_once_expired(user):
    # The admin must still see what ended and why (e.g. a replayed refresh token) during the retention.
    session = open_session(user)
    age(
        session,
        revoked_at=ago(days=2),
        revoked_reason=SessionEndReason.REFRESH_TOKEN_REUSE,
        expires_at=ago(days=1),
        last_used_at=ago(days=9),
    )
    housekeeping()
    assert remaining() == {session.pk}


def test_a_session_just_inside_its_idle_window_is_kept(user):
    session = open_session(user)
    age(session, last_used_at=ago(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME - 60))
    housekeeping()
    assert remaining() == {session.pk}


@override_settings(REVOKED_SESSION_RETENTION=0)
def test_zero_retention_deletes_revoked_sessions_at_once(user):
    live = open_session(user)
    revoked = open_session(user)
    age(revoked, revoked_at=ago(seconds=1), revoked_reason=SessionEndReason.LOGOUT)
    assert "1 long-revoked" in housekeeping()
    assert remaining() == {live.pk}


def test_deletes_more_rows_than_one_batch(user):
    # given: five expired and five long-revoked sessions, each with two refresh tokens, and batches of two
    expired = [open_session(user, rotations=1) for _ in range(5)]
    revoked = [open_session(user, rotations=1) for _ in range(5)]
    live = open_session(user)
    Session.objects.filter(pk__in=[s.pk for s in expired]).update(expires_at=ago(seconds=1))
    Session.objects.filter(pk__in=[s.pk for s in revoked]).update(
        revoked_at=timezone.now() - retention() - timedelta(hours=1), revoked_reason=SessionEndReason.LOGOUT_ALL
    )
    # when
    counts = sessions_delete_stale(batch_size=2)
    # then
    assert counts == StaleSessions(expired=5, revoked=5, refresh_tokens=20)
    assert remaining() == {live.pk}
    assert RefreshToken.objects.count() == 1


def test_dry_run_with_small_batches_deletes_nothing(user):
    for _ in range(3):
        age(open_session(user), expires_at=ago(seconds=1))
    assert sessions_delete_stale(dry_run=True, batch_size=2) == StaleSessions(expired=3, revoked=0, refresh_tokens=3)
    assert Session.objects.count() == 3


def test_also_clears_expired_admin_sessions(user, client):
    # given: an expired and a current Django admin session
    client.force_login(user)
    current = client.session.session_key
    AdminSession.objects.create(session_key="x" * 32, session_data="", expire_date=ago(days=1))
    # when
    housekeeping()
    # then
    assert set(AdminSession.objects.values_list("session_key", flat=True)) == {current}


def test_dry_run_leaves_expired_admin_sessions(db):
    AdminSession.objects.create(session_key="x" * 32, session_data="", expire_date=ago(days=1))
    housekeeping("--dry-run")
    assert AdminSession.objects.count() == 1


def test_deletes_expired_rate_limit_windows_only(db, settings):
    # given: two sign-in budgets in the database store, one of them long over
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "database"}
    rate_limit_hit(scope="login:account", key="1", rate=(10, 360))
    rate_limit_hit(scope="login:account", key="2", rate=(10, 360))
    stale, live = RateLimitWindow.objects.order_by("expires_at")
    RateLimitWindow.objects.filter(pk=stale.pk).update(expires_at=ago(seconds=1))
    # when
    dry = housekeeping("--dry-run").strip().splitlines()[-1]
    output = housekeeping().strip().splitlines()[-1]
    # then
    assert dry == "Would delete 1 expired rate-limit window(s)."
    assert output == "Deleted 1 expired rate-limit window(s)."
    assert list(RateLimitWindow.objects.values_list("pk", flat=True)) == [live.pk]
