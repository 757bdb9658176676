"""The account rules that write: registration, sign-in and sessions. Nothing else writes.

A session is one sign-in. It owns a chain of refresh tokens, each used once: a refresh
marks the presented token used and issues its successor. A used token presented again
after REFRESH_TOKEN_REUSE_GRACE seconds is taken for a stolen copy (RFC 9700 §4.14.2):
the whole session ends, so neither the thief nor the victim can continue it.
"""

import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from accounts.client import address_key, client_address
from accounts.error_codes import UserErrorCode
from accounts.exceptions import AuthError, InvalidCredentials, TokenExpired, TokenInvalid, TokenRevoked
from accounts.models import RefreshToken, Session, SessionEndReason, User
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import email_taken, sessions_live, user_get_by_login, username_taken
from accounts.tokens import SessionTokens, access_token_issue, refresh_token_digest, refresh_token_generate
from accounts.validators import canonical_email, canonical_username, clean_user_agent, login_key

logger = logging.getLogger("accounts.sessions")


def _required(value: str | None, message: str) -> str:
    if value is None or not value.strip():
        raise ValidationError(message, code=UserErrorCode.REQUIRED.value)
    return value


def _taken(field: str) -> ValidationError:
    """Return the UNIQUE error of `field`, with the model's own message."""
    return ValidationError(User._meta.get_field(field).error_messages["unique"], code=UserErrorCode.UNIQUE.value)


def _clean_registration(*, username: str, email: str, password: str) -> tuple[str, str]:
    """Return the canonical username and email; raise ValidationError keyed by field."""
    errors: dict[str, ValidationError] = {}
    clean: dict[str, str] = {}
    for field, raw, canonical, message in (
        ("username", username, canonical_username, "Choose a username."),
        ("email", email, canonical_email, "Enter your email address."),
    ):
        try:
            clean[field] = canonical(_required(raw, message))
        except ValidationError as exc:
            errors[field] = exc
    if "username" in clean and username_taken(clean["username"]):
        errors["username"] = _taken("username")
    if "email" in clean and email_taken(clean["email"]):
        errors["email"] = _taken("email")
    try:
        _required(password, "Choose a password.")
        # The validators compare the password with the account's own attributes.
        candidate = User(username=clean.get("username", ""), email=clean.get("email", ""))
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        errors["password"] = exc
    if errors:
        raise ValidationError(errors)
    return clean["username"], clean["email"]


@transaction.atomic
def user_register(*, request, username: str, email: str, password: str) -> tuple[User, SessionTokens]:
    """Create an active user after the validators pass, and sign it in.

    Raises ValidationError keyed by field with codes from UserErrorCode, and RateLimited
    when the client address has registered too often.
    """
    rate_limit_hit(
        scope="register:address",
        key=address_key(client_address(request)),
        rate=settings.GATEHOUSE["REGISTER_RATE_PER_ADDRESS"],
    )
    username, email = _clean_registration(username=username, email=email, password=password)
    try:
        # A savepoint: a lost race leaves the outer transaction usable to tell which field.
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        # Another registration committed the same username or email between our check and
        # our insert; the database refused the second one. Say which, as a field error.
        field = "email" if email_taken(email) else "username"
        raise ValidationError({field: _taken(field)}) from None
    return user, _sign_in(user, request)


def login_attempt_count(*, request, email: str | None = None, username: str | None = None) -> None:
    """Count one sign-in attempt against the client address and the identifier tried.

    Raises RateLimited when either budget is spent. The identifier is counted in its
    canonical form, so case and Unicode spellings share one budget; an account's email
    and its username are two identifiers on purpose: one shared budget would reveal which
    email belongs to which username (spend one, watch the other get refused).
    """
    limits = settings.GATEHOUSE
    rate_limit_hit(
        scope="login:address", key=address_key(client_address(request)), rate=limits["LOGIN_RATE_PER_ADDRESS"]
    )
    rate_limit_hit(
        scope="login:account", key=login_key(email=email, username=username), rate=limits["LOGIN_RATE_PER_ACCOUNT"]
    )


@transaction.atomic
def user_authenticate(
    *, request, password: str, email: str | None = None, username: str | None = None
) -> tuple[User, SessionTokens]:
    """Check a login and sign the user in.

    Raises InvalidCredentials, identical for an unknown account, a wrong password and an
    inactive account, and RateLimited when the account or the client address has tried
    too often. Every attempt counts, whatever its outcome.
    """
    login_attempt_count(request=request, email=email, username=username)
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        # Never hash megabytes (nor look anyone up): no account can have this password.
        raise InvalidCredentials
    user = user_get_by_login(email=email, username=username)
    if user is None or not user.has_usable_password():
        # Hash anyway, so an unknown account (or one without a password, which Django
        # refuses without hashing) takes as long as a wrong password, as
        # django.contrib.auth.backends.ModelBackend does for unknown users.
        make_password(password)
        raise InvalidCredentials
    # check_password also re-hashes an outdated hash (e.g. Django's default Argon2 parameters).
    if not user.check_password(password) or not user.is_active:
        raise InvalidCredentials
    return user, _sign_in(user, request)


def _sign_in(user: User, request) -> SessionTokens:
    """Record the login and open its session."""
    user.last_login = timezone.now()
    User.objects.filter(pk=user.pk).update(last_login=user.last_login)
    return session_open(user=user, request=request)


def session_open(*, user: User, request=None) -> SessionTokens:
    """Open a session for `user` and return its first access and refresh tokens.

    The session records the client's user agent and address (as TRUSTED_PROXY_COUNT
    reads it) for the user's session list and the admin.
    """
    now = timezone.now()
    session = Session.objects.create(
        user=user,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=settings.JWT_REFRESH_TOKEN_LIFETIME),
        user_agent=clean_user_agent(request.META.get("HTTP_USER_AGENT")) if request is not None else "",
        ip_address=_ip_address(client_address(request)) if request is not None else None,
    )
    return _session_tokens(session=session, user=user, now=now)


def _ip_address(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _session_tokens(*, session: Session, user: User, now) -> SessionTokens:
    refresh_token, digest = refresh_token_generate()
    RefreshToken.objects.create(session=session, token_hash=digest, created_at=now)
    token, payload = access_token_issue(user=user, session=session)
    return SessionTokens(
        token=token,
        payload=payload,
        refresh_token=refresh_token,
        refresh_expires_in=int(session.ends_at().timestamp()),
    )


def _refresh_token_for_update(refresh_token: str) -> RefreshToken:
    """Return the stored refresh token, locked until the transaction ends; raise TokenInvalid.

    The row lock serialises concurrent uses of one token on Postgres: the second waits,
    then sees the first one's `used_at`. (SQLite serialises every writer anyway.)
    """
    digest = refresh_token_digest(refresh_token)
    row = (
        RefreshToken.objects.select_for_update(of=("self",))
        .select_related("session__user")
        .filter(token_hash=digest)
        .first()
    )
    if row is None:
        # Never issued, or its session is gone with its account or by housekeeping.
        raise TokenInvalid
    return row


def _is_replay(row: RefreshToken, now) -> bool:
    """Whether a used token came back after the grace window: taken for a stolen copy."""
    return row.used_at is not None and now - row.used_at > timedelta(seconds=settings.REFRESH_TOKEN_REUSE_GRACE)


def _refusal(row: RefreshToken, now) -> AuthError | None:
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
        logger.warning(
            "Refresh token reuse: session %s of user %s ended (the token was used at %s)",
            session.pk,
            session.user_id,
            row.used_at.isoformat(),
        )
        return TokenRevoked("This refresh token was used before; its session has been ended. Sign in again.")
    if row.used_at is not None:
        # A retry or two tabs racing, within the grace window: refused, nothing else happens.
        return TokenInvalid("This refresh token has already been used.")
    if session.is_expired(now):
        return TokenExpired("The session has expired. Sign in again.")
    return None


def refresh_token_rotate(*, refresh_token: str) -> tuple[User, SessionTokens]:
    """Exchange a refresh token for a new access token and its successor refresh token.

    Raises TokenInvalid for a token we never issued (or one used moments ago, within the
    grace window: refused, nothing else happens), TokenRevoked when the session or the
    account has ended (and, for a used token presented after the grace window, ends the
    session first), and TokenExpired when the session outlived its lifetime.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _refresh_token_for_update(refresh_token)
        refusal = _refusal(row, now)
        # Conditional on still being unused: even without the row lock, one use wins.
        if refusal is None and RefreshToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
            session, user = row.session, row.session.user
            session.last_used_at = now
            Session.objects.filter(pk=session.pk).update(last_used_at=now)
            return user, _session_tokens(session=session, user=user, now=now)
    raise refusal or TokenInvalid("This refresh token has already been used.")


def refresh_token_revoke(*, refresh_token: str) -> Session:
    """End the session a refresh token belongs to (logout) and return it.

    The session's current token signs out, as does its predecessor within the grace
    window and the token of an expired session. Raises TokenInvalid for a token we never
    issued and TokenRevoked when the session has already ended; a used token presented
    after the grace window ends the session as a replay, exactly as a refresh would.
    """
    now = timezone.now()
    with transaction.atomic():
        row = _refresh_token_for_update(refresh_token)
        session = row.session
        if session.revoked_at is None and not _is_replay(row, now):
            session.revoked_at, session.revoked_reason = now, SessionEndReason.LOGOUT
            Session.objects.filter(pk=session.pk).update(revoked_at=now, revoked_reason=SessionEndReason.LOGOUT)
            return session
        refusal = _refusal(row, now)
    raise refusal


def session_revoke(*, user: User, session_id, reason: str = SessionEndReason.REVOKED_BY_USER) -> None:
    """End one of `user`'s own live sessions.

    Raises ValidationError (`id`: NOT_FOUND) when they have no such live session; someone
    else's session is answered exactly like one that does not exist.
    """
    now = timezone.now()
    ended = session_id is not None and sessions_live(now=now).filter(user=user, pk=session_id).update(
        revoked_at=now, revoked_reason=reason
    )
    if not ended:
        raise ValidationError(
            {"id": ValidationError("You have no live session with this ID.", code=UserErrorCode.NOT_FOUND.value)}
        )


def sessions_revoke(sessions, *, reason: str) -> int:
    """End the live sessions among `sessions` (a queryset); return how many ended.

    Expired sessions are left as they are: they are over already, and housekeeping
    deletes them.
    """
    now = timezone.now()
    return sessions_live(sessions, now=now).update(revoked_at=now, revoked_reason=reason)


def session_revoke_all(*, user: User, reason: str, keep_session_id=None) -> int:
    """End every live session of `user` except `keep_session_id`; return how many ended.

    Their access tokens fail with TOKEN_REVOKED on the next request and their refresh
    tokens with TOKEN_REVOKED on the next refresh. Password change and reset use this.
    """
    sessions = Session.objects.filter(user=user)
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    return sessions_revoke(sessions, reason=reason)


@dataclass(frozen=True)
class StaleSessions:
    expired: int
    revoked: int
    refresh_tokens: int


def sessions_delete_stale(*, dry_run: bool = False, batch_size: int = 1000) -> StaleSessions:
    """Delete sessions that ended long enough ago, with their refresh tokens; return the counts.

    Expired sessions go at once (their tokens can only ever be refused). Revoked ones are
    kept for REVOKED_SESSION_RETENTION first. Deleted in batches so that a large backlog
    never holds long locks.
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
            while batch := list(stale.values_list("pk", flat=True)[:batch_size]):
                with transaction.atomic():
                    RefreshToken.objects.filter(session__in=batch).delete()
                    Session.objects.filter(pk__in=batch).delete()
    return counts
