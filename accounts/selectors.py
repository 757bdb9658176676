"""Read-only queries of the account rules."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.exceptions import TokenExpired, TokenRevoked
from accounts.models import Session, User
from accounts.tokens import AccessClaims, access_token_verify
from accounts.validators import canonical_email, canonical_username


def user_get_by_subject(subject: str) -> User | None:
    """Return the user a token's `sub` names, or None (django-graphql-jwt's user handler)."""
    try:
        return User.objects.get(pk=int(subject))
    except (User.DoesNotExist, ValueError, TypeError):
        return None


def user_get_for_access(*, claims: AccessClaims) -> User:
    """Return the live account an access token belongs to, in one query.

    This is the one per-request check of the authenticated path: the token's session and
    its user are loaded together (a join), and both must still be live. Raises
    TokenRevoked when the session was ended (logout, logout everywhere, an administrator,
    a replayed refresh token) or the account was deleted or deactivated since the token
    was issued, and TokenExpired when the session outlived its idle or absolute lifetime.
    """
    session = Session.objects.select_related("user").filter(pk=claims.session_id, user_id=int(claims.subject)).first()
    if session is None or session.revoked_at is not None or not session.user.is_active:
        # A deleted account takes its sessions with it: a token naming one is revoked, and
        # a new account at the same address (a new primary key) never matches it.
        raise TokenRevoked
    if session.is_expired():
        raise TokenExpired
    return session.user


def sessions_live(*, now=None):
    """Return a queryset of the sessions that are neither ended nor expired."""
    now = now or timezone.now()
    return Session.objects.filter(
        revoked_at__isnull=True,
        expires_at__gt=now,
        last_used_at__gt=now - timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME),
    )


def session_list_live(*, user: User, limit: int = 100) -> list[Session]:
    """Return the user's live sessions, most recently used first (at most `limit`)."""
    return list(sessions_live().filter(user=user).order_by("-last_used_at")[:limit])


def session_get_live(*, user: User, session_id) -> Session | None:
    """Return the user's own live session with that id, or None (also for anyone else's)."""
    return sessions_live().filter(user=user, pk=session_id).first()


def user_get_by_login(*, email: str | None = None, username: str | None = None) -> User | None:
    """Return the account a login identifier names, or None; at most one query.

    Identifiers that cannot name an account (malformed, oversized) cost no query.
    """
    try:
        if email is not None:
            return User.objects.filter(email=canonical_email(email)).first()
        if username is not None:
            return _by_username(canonical_username(username)).first()
    except ValidationError:
        return None
    return None


def user_get_visible(*, viewer: User | None, user_id: int) -> User | None:
    """Return the user `viewer` may see by id: themselves, or anyone for staff; else None."""
    if viewer is None:
        return None
    if viewer.pk == user_id:
        return viewer
    if viewer.is_staff:
        return User.objects.filter(pk=user_id).first()
    return None


def _by_username(username: str):
    # LOWER(username) = ... uses the case-insensitive unique index on Postgres.
    return User.objects.alias(username_ci=Lower("username")).filter(username_ci=username.lower())


def username_taken(username: str) -> bool:
    return _by_username(username).exists()


def email_taken(email: str) -> bool:
    return User.objects.filter(email=email).exists()


def access_token_check(token: str) -> dict:
    """Return the claims of an access token that would authenticate a request right now.

    Checks the signature and claims, then (one query) that its session is live and its
    account active. Raises TokenInvalid, TokenExpired or TokenRevoked.
    """
    claims = access_token_verify(token)
    user_get_for_access(claims=claims)
    return claims.payload
