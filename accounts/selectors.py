"""Read-only queries of the account rules."""

from django.core.exceptions import ValidationError
from django.db.models.functions import Lower

from accounts.exceptions import TokenRevoked
from accounts.models import User
from accounts.tokens import AccessClaims
from accounts.validators import canonical_email, canonical_username


def user_get_by_subject(subject: str) -> User | None:
    """Return the user a token's `sub` names, or None (django-graphql-jwt's user handler)."""
    try:
        return User.objects.get(pk=int(subject))
    except (User.DoesNotExist, ValueError, TypeError):
        return None


def user_get_for_access(*, claims: AccessClaims) -> User:
    """Return the live account an access token belongs to, in one query.

    Raises TokenRevoked when the account was deleted or deactivated since the token was
    issued. This is the one per-request check of the authenticated path.
    """
    user = user_get_by_subject(claims.subject)
    if user is None or not user.is_active:
        raise TokenRevoked
    return user


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
