"""Sessions and their refresh tokens: open, rotate, end, and housekeeping.

A session is one sign-in. It owns a chain of refresh tokens, each used once: a refresh
marks the presented token used and issues its successor. A used token presented again
after REFRESH_TOKEN_REUSE_GRACE seconds is taken for a stolen copy (RFC 9700 §4.14.2):
the whole session ends, so neither the thief nor the victim can continue it.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.batching import row_insert, rows_update, writes_together
from accounts.error_codes import UserErrorCode
from accounts.exceptions import AuthError, RefreshTokenAlreadyUsed, TokenExpired, TokenInvalid, TokenRevoked
from accounts.models import AuthEventKind, RefreshToken, Session, SessionEndReason, User
from accounts.selectors import sessions_live
from accounts.services.account_tokens import account_tokens_revoke
from accounts.services.audit import auth_event_record, request_facts
from accounts.services.locking import user_locked, users_locked
from accounts.session_cache import Miss, seen_nonces, session_cached, users_changed
from accounts.tokens import SessionTokens, access_token_issue, refresh_token_digest, refresh_token_generate

logger = logging.getLogger("accounts.sessions")


def session_open(*, user: User, request=None, device_id: str = "", account_changed: bool = False) -> SessionTokens:
    """Open a session for `user` and return its first access and refresh tokens.

    The session records the client's user agent and address (as TRUSTED_PROXY_COUNT
    reads it) for the user's session list and the admin, and the device that signed in.
    Call it with the account locked (or just created) in the caller's transaction: the
    session goes into the session cache when it commits. `account_changed` says the
    caller changed the account too (a sign-in's `last_login`), which invalidates the
    account's other cached sessions.
    """
    # Read under the caller's lock on the account, before anything is written (see session_cache).
    seen = seen_nonces(user.pk)
    now = timezone.now()
    session = row_insert(
        Session(
            user=user,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=settings.JWT_REFRESH_TOKEN_LIFETIME),
            device_id=device_id,
            **request_facts(request),
        )
    )
    return session_tokens(session=session, user=user, now=now, seen=seen, account_changed=account_changed)


def session_tokens(
    *, session: Session, user: User, now, seen: Miss | None = None, account_changed: bool = False
) -> SessionTokens:
    """Issue the session's next refresh token and a new access token.

    With `seen` (the account's cache nonces, read before its rows were), the session is
    written to the session cache when the transaction commits.
    """
    refresh_token, digest = refresh_token_generate()
    row_insert(RefreshToken(session=session, token_hash=digest, created_at=now))
    session_cached(session=session, user=user, seen=seen, account_changed=account_changed)
    token, payload = access_token_issue(user=user, session=session)
    return SessionTokens(
        token=token, payload=payload, refresh_token=refresh_token, refresh_expires_at=session.ends_at()
    )


def _refresh_token_for_update(refresh_token: str) -> tuple[RefreshToken, Miss | None]:
    """Return the stored refresh token with its session, both locked, and the account's
    cache nonces read before them; raise TokenInvalid.

    The session's row first, then the token's (the one lock order): concurrent uses of
    one token wait for each other, then see the first one's `used_at`; a refresh racing
    a logout, a password change or a deletion waits, then sees the session ended. The
    account is read, not locked. (SQLite serialises every write transaction.)
    """
    digest = refresh_token_digest(refresh_token)
    found = RefreshToken.objects.filter(token_hash=digest).values_list("session_id", "session__user_id").first()
    # Before the account's row is read: a change committed after this read has replaced them.
    seen = seen_nonces(found[1]) if found is not None else None
    session = (
        Session.objects.select_for_update(no_key=True, of=("self",)).select_related("user").filter(pk=found[0]).first()
        if found is not None
        else None
    )
    row = RefreshToken.objects.select_for_update(no_key=True).filter(token_hash=digest).first() if session else None
    if row is None:
        # Never issued, or gone with its session (its account, housekeeping, a password change).
        raise TokenInvalid
    row.session = session
    return row, seen


def _is_replay(row: RefreshToken, now) -> bool:
    """Whether a used token came back after the grace window: taken for a stolen copy."""
    return row.used_at is not None and now - row.used_at > timedelta(seconds=settings.REFRESH_TOKEN_REUSE_GRACE)


def _refusal(row: RefreshToken, now, request=None) -> AuthError | None:
    """Return why a refresh token cannot be used now, or None; end its session on a replay.

    Returned rather than raised so that the caller's transaction commits the ended
    session before the error reaches the client.
    """
    session = row.session
    if session.revoked_at is not None or not session.user.is_active:
        return TokenRevoked()
    if _is_replay(row, now):
        Session.objects.filter(pk=session.pk).update(
            revoked_at=now, revoked_reason=SessionEndReason.REFRESH_TOKEN_REUSE
        )
        users_changed([session.user_id], session_ids=[session.pk])
        logger.warning(
            "Refresh token reuse: session %s of user %s ended (the token was used at %s)",
            session.pk,
            session.user_id,
            row.used_at.isoformat(),
        )
        auth_event_record(
            kind=AuthEventKind.REFRESH_TOKEN_REUSED,
            request=request,
            user=session.user,
            session_id=session.pk,
            detail=f"used {int((now - row.used_at).total_seconds())} s before",
        )
        return TokenRevoked("This refresh token was used before; its session has been ended. Sign in again.")
    if row.used_at is not None:
        # A retry or two tabs racing, within the grace window: refused, nothing else happens.
        return RefreshTokenAlreadyUsed()
    if session.is_expired(now):
        return TokenExpired("The session has expired. Sign in again.")
    return None


def refresh_token_rotate(*, refresh_token: str, request=None) -> tuple[User, SessionTokens]:
    """Exchange a refresh token for a new access token and its successor refresh token.

    Raises TokenInvalid for a token we never issued (or one used moments ago, within the
    grace window: refused, nothing else happens), TokenRevoked when the session or the
    account has ended (and, for a used token presented after the grace window, ends the
    session first), and TokenExpired when the session outlived its lifetime.
    """
    now = timezone.now()
    with transaction.atomic():
        row, seen = _refresh_token_for_update(refresh_token)
        refusal = _refusal(row, now, request)
        # Conditional on still being unused: even without the row lock, one use wins.
        if refusal is None and RefreshToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
            session, user = row.session, row.session.user
            session.last_used_at = now
            with writes_together():
                rows_update(Session.objects.filter(pk=session.pk), last_used_at=now)
                tokens = session_tokens(session=session, user=user, now=now, seen=seen)
            return user, tokens
    raise refusal or RefreshTokenAlreadyUsed()


def refresh_token_revoke(*, refresh_token: str, request=None) -> Session:
    """End the session a refresh token belongs to (logout) and return it.

    The session's current token signs out, as does its predecessor within the grace
    window and the token of an expired session. Raises TokenInvalid for a token we never
    issued and TokenRevoked when the session has already ended; a used token presented
    after the grace window ends the session as a replay, exactly as a refresh would.
    """
    now = timezone.now()
    with transaction.atomic():
        row, _ = _refresh_token_for_update(refresh_token)
        session = row.session
        if session.revoked_at is None and not _is_replay(row, now):
            session.revoked_at, session.revoked_reason = now, SessionEndReason.LOGOUT
            Session.objects.filter(pk=session.pk).update(revoked_at=now, revoked_reason=SessionEndReason.LOGOUT)
            users_changed([session.user_id], session_ids=[session.pk])
            auth_event_record(kind=AuthEventKind.LOGOUT, request=request, user=session.user, session_id=session.pk)
            return session
        refusal = _refusal(row, now, request)
    raise refusal


def session_revoke(*, user: User, session_id, reason: str = SessionEndReason.REVOKED_BY_USER, request=None) -> None:
    """End one of `user`'s own live sessions.

    Raises ValidationError (`id`: NOT_FOUND) when they have no such live session; someone
    else's session is answered exactly like one that does not exist.
    """
    with transaction.atomic():
        ended = session_id is not None and sessions_revoke(
            Session.objects.filter(user=user_locked(user), pk=session_id), reason=reason, request=request
        )
    if not ended:
        raise ValidationError(
            {"id": ValidationError("You have no live session with this ID.", code=UserErrorCode.NOT_FOUND.value)}
        )


@transaction.atomic
def sessions_revoke(sessions, *, reason: str, request=None, actor: User | None = None) -> int:
    """End the live sessions among `sessions` (a queryset); return how many ended.

    Locks their accounts, then the sessions, in the one order (see locking), so two
    bulk ends never deadlock. Expired sessions are left as they are: they are over
    already, and housekeeping deletes them. Each account whose sessions ended gets one
    audit-trail entry, naming the `actor` (an administrator) when it is not the account
    itself.
    """
    now = timezone.now()
    users_locked(sorted({user_id for (user_id,) in sessions_live(sessions, now=now).values_list("user_id")}))
    locked = list(
        sessions_live(sessions, now=now).select_for_update(no_key=True).order_by("pk").values_list("pk", "user_id")
    )
    count = Session.objects.filter(pk__in=[pk for pk, _ in locked]).update(revoked_at=now, revoked_reason=reason)
    users_changed([user_id for _, user_id in locked], session_ids=[pk for pk, _ in locked])
    facts = request_facts(request)
    by_actor = f" by user {actor.pk}" if actor is not None else ""
    for user_id, ended in sorted(Counter(user_id for _, user_id in locked).items()):
        auth_event_record(
            kind=AuthEventKind.SESSIONS_ENDED, facts=facts, user_id=user_id, detail=f"{reason}: {ended}{by_actor}"
        )
    return count


@transaction.atomic
def session_revoke_all(
    *, user: User, reason: str, keep_session_id=None, request=None, actor: User | None = None
) -> int:
    """End every live session of `user` except `keep_session_id`; return how many ended.

    Their access tokens fail with TOKEN_REVOKED on the next request and their refresh
    tokens with TOKEN_REVOKED on the next refresh. Password change and reset use this.
    Raises TokenRevoked when the account no longer exists.
    """
    sessions = Session.objects.filter(user=user_locked(user))
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    return sessions_revoke(sessions, reason=reason, request=request, actor=actor)


@transaction.atomic
def user_deactivate(*, user: User, request=None) -> int:
    """Deactivate an account and end its sessions; return how many ended.

    Ending them (not just refusing them while the account is inactive) means that
    reactivating the account later revives none of its old tokens.
    """
    locked = user_locked(user)
    if locked.is_active:
        User.objects.filter(pk=locked.pk).update(is_active=False)
        users_changed([locked.pk])
    user.is_active = False
    # Its emailed links go too: reactivating the account must not revive them either.
    account_tokens_revoke(user=locked)
    return session_revoke_all(user=locked, reason=SessionEndReason.DEACTIVATED, request=request)


@dataclass(frozen=True)
class StaleSessions:
    expired: int
    revoked: int
    refresh_tokens: int


def sessions_delete_stale(*, dry_run: bool = False, batch_size: int = 1000) -> StaleSessions:
    """Delete sessions that ended long enough ago, with their refresh tokens; return the counts.

    Expired sessions go at once (their tokens can only ever be refused). Revoked ones are
    kept for REVOKED_SESSION_RETENTION first. Deleted in batches, session rows locked
    before their refresh tokens (the one lock order), and rows that a live request holds
    are skipped until the next run: housekeeping never waits for a request nor takes
    part in a lock cycle with one.
    """
    now = timezone.now()
    idle_cutoff = now - timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME)
    revoked_cutoff = now - timedelta(seconds=settings.REVOKED_SESSION_RETENTION)
    expired = Session.objects.filter(revoked_at__isnull=True).filter(
        models.Q(expires_at__lte=now) | models.Q(last_used_at__lte=idle_cutoff)
    )
    revoked = Session.objects.filter(revoked_at__lte=revoked_cutoff)
    counts = StaleSessions(
        expired=expired.count(),
        revoked=revoked.count(),
        refresh_tokens=RefreshToken.objects.filter(
            models.Q(session__in=expired.values("pk")) | models.Q(session__in=revoked.values("pk"))
        ).count(),
    )
    if not dry_run:
        for stale in (expired, revoked):
            while True:
                with transaction.atomic():
                    rows = list(
                        stale.select_for_update(skip_locked=True)
                        .order_by("pk")
                        .values_list("pk", "user_id")[:batch_size]
                    )
                    if not rows:
                        break
                    batch = [pk for pk, _ in rows]
                    RefreshToken.objects.filter(session__in=batch).delete()
                    Session.objects.filter(pk__in=batch).delete()
                    # Their entries ended with them (an entry never outlives its session); this is belt and braces.
                    users_changed([user_id for _, user_id in rows], session_ids=batch)
    return counts
