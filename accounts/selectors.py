"""Read-only queries of the account rules."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.exceptions import Forbidden, TokenRevoked, Unauthenticated
from accounts.models import ServiceClient, Session, User
from accounts.scopes import USERS_READ
from accounts.session_cache import (
    Access,
    cached_fields,
    client_build,
    client_cached_fields,
    datetime_fields,
    session_cache,
    viewer_build,
)
from accounts.tokens import AccessClaims, access_token_verify
from accounts.validators import canonical_email, canonical_username, has_control_characters


def user_get_by_subject(subject: str) -> User | None:
    """Return the user a token's `sub` names, or None (django-graphql-jwt's user handler)."""
    try:
        return User.objects.get(pk=int(subject))
    except (User.DoesNotExist, ValueError, TypeError):
        return None


def user_get_for_access(*, claims: AccessClaims) -> User:
    """Return the live account an access token belongs to: from the cache, else in one query.

    This is the one per-request check of the authenticated path. With the session cache
    (accounts.session_cache) a known session costs one Redis round trip and no SQL; a
    miss, or a Redis that fails, reads the token's session and its user together (one
    join) and fills the cache. Raises TokenRevoked when the session was ended (logout,
    logout everywhere, an administrator, a replayed refresh token) or the account was
    deleted or deactivated since the token was issued, and TokenExpired when the session
    outlived its idle or absolute lifetime.
    """
    user_id, session_id = int(claims.subject), claims.session_id
    store = session_cache()
    seen = None
    if store is not None:
        found = store.lookup(session_id, user_id)
        if isinstance(found, Access):
            return found.check(timezone.now())
        seen = found
    access = _access_read(session_id, user_id)
    user = access.check(timezone.now())
    if seen is not None and not connection.in_atomic_block:
        # Only what is committed is shared (a read inside a transaction may see its own writes).
        store.fill(session_id=session_id, access=access, seen=seen)
    return user


def _access_read(session_id: str, user_id: int) -> Access:
    """Read a session and its account in one query, as plain rows; raise TokenRevoked unless both are live."""
    with connection.cursor() as cursor:
        cursor.execute(
            _access_sql(connection.vendor),
            [Session._meta.pk.get_db_prep_value(uuid.UUID(session_id), connection), user_id],
        )
        row = cursor.fetchone()
    names = cached_fields()
    if row is None:
        # A deleted account takes its sessions with it: a token naming one is revoked, and
        # a new account at the same address (a new primary key) never matches it.
        raise TokenRevoked
    values = dict(zip(names, row, strict=False))
    revoked_at, expires_at, last_used_at = row[len(names) :]
    if revoked_at is not None or not values["is_active"]:
        raise TokenRevoked
    if connection.vendor == "sqlite":
        # SQLite returns times without a zone (Django's own converters add UTC); a plain row does not.
        for name in datetime_fields():
            if values[name] is not None and timezone.is_naive(values[name]):
                values[name] = values[name].replace(tzinfo=UTC)
        expires_at, last_used_at = expires_at.replace(tzinfo=UTC), last_used_at.replace(tzinfo=UTC)
        values["is_active"] = bool(values["is_active"])
    return Access(viewer_build(values), expires_at, last_used_at)


@cache
def _access_sql(vendor: str) -> str:
    """Return the SQL of the per-request check, written once per database vendor.

    A plain cursor on purpose: this runs on every authenticated request without the cache,
    and the ORM's compiler and a RawQuerySet's model building cost more than the query
    itself (measured on Postgres: 0.29 ms against 0.85 ms for the same join through
    select_related). Table and column names come from the models; the password hash is
    never read.
    """
    quote = connection.ops.quote_name
    user, session = User._meta, Session._meta
    names = {
        "user_columns": ", ".join(f"u.{quote(user.get_field(name).column)}" for name in cached_fields()),
        "user_table": quote(user.db_table),
        "user_pk": quote(user.pk.column),
        "session_table": quote(session.db_table),
        **{name: quote(session.get_field(name).column) for name in ("id", "expires_at", "last_used_at", "revoked_at")},
        "user_id": quote(session.get_field("user").column),
    }
    # Identifiers come from the models, quoted; every value is a parameter.
    return _ACCESS_SQL.format(**names)


_ACCESS_SQL = (
    "SELECT {user_columns}, s.{revoked_at}, s.{expires_at}, s.{last_used_at} "
    "FROM {session_table} s INNER JOIN {user_table} u ON u.{user_pk} = s.{user_id} "
    "WHERE s.{id} = %s AND s.{user_id} = %s"
)


def sessions_live(sessions=None, *, now=None):
    """Return the sessions (of `sessions`, else all) that are neither ended nor expired."""
    now = now or timezone.now()
    return (Session.objects.all() if sessions is None else sessions).filter(
        revoked_at__isnull=True,
        expires_at__gt=now,
        last_used_at__gt=now - timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME),
    )


def session_list_live(*, user: User, limit: int = 100) -> list[Session]:
    """Return the user's live sessions, most recently used first (at most `limit`)."""
    return list(sessions_live().filter(user=user).order_by("-last_used_at")[:limit])


def session_list_visible(*, viewer: User | None, user: User, limit: int = 100) -> list[Session] | None:
    """Return `user`'s live sessions if `viewer` may see them (only the owner, not even staff), else None."""
    if viewer is None or viewer.pk != user.pk:
        return None
    return session_list_live(user=user, limit=limit)


def session_get_live(*, user: User, session_id) -> Session | None:
    """Return the user's own live session with that id, or None (also for anyone else's)."""
    return sessions_live().filter(user=user, pk=session_id).first()


def user_get_by_login(*, email: str | None = None, username: str | None = None, lock: bool = False) -> User | None:
    """Return the account a login identifier names, or None; at most one query.

    Identifiers that cannot name an account (malformed, oversized) cost no query. With
    `lock`, the row is locked (FOR NO KEY UPDATE) until the transaction ends, and read as
    it is once any flow holding it has committed.
    """
    try:
        if email is not None:
            field, value = "email", canonical_email(email)
        elif username is not None:
            field, value = "username_ci", canonical_username(username).lower()
        else:
            return None
    except ValidationError:
        return None
    if connection.vendor != "postgresql":
        return _users_by(field, value, lock).first()
    # Every sign-in reads its account twice (before its budget is counted, then locked):
    # the ORM's compiler cost more than the query (about 0.35 ms of 0.45 ms here), so its
    # SQL is compiled once. psycopg2 returns every column of the account already as
    # Django would convert it (aware datetimes, booleans), so the row is the model's.
    sql, names = _login_sql(field, lock)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        row = cursor.fetchone()
    return None if row is None else User.from_db(connection.alias, names, row)


def _users_by(field: str, value: str, lock: bool):
    users = User.objects.select_for_update(no_key=True) if lock else User.objects.all()
    # LOWER(username) = ... uses the case-insensitive unique index on Postgres.
    users = users.alias(username_ci=Lower("username")) if field == "username_ci" else users
    return users.filter(**{field: value}).order_by()


@cache
def _login_sql(field: str, lock: bool) -> tuple[str, list[str]]:
    """Return the SQL of a login lookup (Postgres, compiled by the ORM once) and its columns' names."""
    names = [f.attname for f in User._meta.concrete_fields]
    sql, params = _users_by(field, "%s", lock).values_list(*names).query.sql_with_params()
    assert list(params) == ["%s"]  # noqa: S101 (the one value is the one parameter)
    return sql, names


def user_get_visible(*, viewer: User | None, user_id: int, caller: "ServiceCaller | None" = None) -> User | None:
    """Return the user `viewer` may see by id: themselves, or anyone for staff; else None.

    A service caller (no viewer) with `users:read` sees anyone, as staff do; raises
    Forbidden for one without it.
    """
    if caller is not None:
        caller_scope_require(caller, USERS_READ)
        return User.objects.filter(pk=user_id).first()
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


def username_taken(username: str, *, exclude: User | None = None) -> bool:
    """Whether another account (not `exclude`) has this canonical username, ignoring case."""
    users = _by_username(username)
    return (users.exclude(pk=exclude.pk) if exclude is not None else users).exists()


def email_taken(email: str, *, exclude: User | None = None) -> bool:
    """Whether another account (not `exclude`) has this canonical email."""
    users = User.objects.filter(email=email)
    return (users.exclude(pk=exclude.pk) if exclude is not None else users).exists()


def access_token_check(token: str) -> dict:
    """Return the claims of an access token that would authenticate a request right now.

    Checks the signature and claims, then (one query) that its session is live and its
    account active. Raises TokenInvalid, TokenExpired or TokenRevoked.
    """
    claims = access_token_verify(token)
    user_get_for_access(claims=claims)
    return claims.payload


# Usernames sort ignoring case (they are unique ignoring case); accounts that never
# signed in sort as the oldest logins on every database (Postgres puts NULL last in
# ascending order by default, SQLite first).
USER_ORDERINGS = {
    "DATE_JOINED_ASC": (F("date_joined").asc(), F("pk").asc()),
    "DATE_JOINED_DESC": (F("date_joined").desc(), F("pk").desc()),
    "USERNAME_ASC": (Lower("username").asc(), F("pk").asc()),
    "USERNAME_DESC": (Lower("username").desc(), F("pk").desc()),
    "EMAIL_ASC": (F("email").asc(), F("pk").asc()),
    "EMAIL_DESC": (F("email").desc(), F("pk").desc()),
    "LAST_LOGIN_ASC": (F("last_login").asc(nulls_first=True), F("pk").asc()),
    "LAST_LOGIN_DESC": (F("last_login").desc(nulls_last=True), F("pk").desc()),
}


USER_SEARCH_MAX_LENGTH = 254


def user_list(
    *,
    viewer: User | None,
    search: str | None = None,
    is_active: bool | None = None,
    is_staff: bool | None = None,
    is_email_verified: bool | None = None,
    joined_after=None,
    joined_before=None,
    order_by: str | None = None,
    caller: "ServiceCaller | None" = None,
):
    """Return the accounts matching a staff search, in a stable order (ties broken by id).

    Staff, and service callers with `users:read`, only: raises Unauthenticated for an
    anonymous viewer and Forbidden for anyone else. `search` matches username or email,
    ignoring case; `joined_after` and `joined_before` bound `date_joined` (inclusive,
    exclusive; a time without a zone is UTC). Raises ValidationError keyed by argument for
    a search that is too long or holds control characters, and for a date no database can
    compare.
    """
    if caller is not None:
        caller_scope_require(caller, USERS_READ)
    elif viewer is None:
        raise Unauthenticated
    elif not viewer.is_staff:
        raise Forbidden
    if search is not None and (len(search) > USER_SEARCH_MAX_LENGTH or has_control_characters(search)):
        raise ValidationError(
            {"search": f"Search for at most {USER_SEARCH_MAX_LENGTH} characters, without control characters."}
        )
    users = User.objects.all()
    if search:
        users = users.filter(Q(username__icontains=search) | Q(email__icontains=search))
    for field, value in (("is_active", is_active), ("is_staff", is_staff), ("is_email_verified", is_email_verified)):
        if value is not None:
            users = users.filter(**{field: value})
    if joined_after is not None:
        users = users.filter(date_joined__gte=_comparable_time(joined_after, "joined_after"))
    if joined_before is not None:
        users = users.filter(date_joined__lt=_comparable_time(joined_before, "joined_before"))
    return users.order_by(*USER_ORDERINGS[order_by or "DATE_JOINED_DESC"])


def _comparable_time(value: datetime, field: str) -> datetime:
    """Return `value` as an aware UTC time; raise ValidationError when it falls outside the calendar."""
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError({field: "This time is outside the supported range."}) from None


# Service clients -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCaller:
    """Who a service token's request is: the live client, and the scopes its token grants.

    The token's scopes, not the client's: a token may have asked for fewer (RFC 6749 §3.3),
    and those are what this request may do.
    """

    client: ServiceClient
    scopes: tuple[str, ...]


def caller_scope_require(caller: ServiceCaller, scope: str) -> None:
    """Raise Forbidden unless the caller's token grants `scope`."""
    if scope not in caller.scopes:
        raise Forbidden(f"This needs the `{scope}` scope.")


def service_caller_get(*, claims: dict) -> ServiceCaller:
    """Return the caller of a verified service token: from the cache, else in one query.

    `claims` are those accounts.services.clients.service_token_verify returned. This is
    the per-request check of a service token, as user_get_for_access is of a user's: with
    the session cache a known client costs one Redis round trip and no SQL; a miss, or a
    Redis that fails, reads the client's row and fills the cache. Raises TokenRevoked when
    the client is unknown or disabled, its secret was rotated since the token was issued
    (the token names the secret's version), or it no longer holds a scope of the token.
    """
    client_id, scopes = claims["sub"], tuple(claims["scope"].split(" "))
    store = session_cache()
    client = seen = None
    if store is not None:
        found = store.client_lookup(client_id)
        if isinstance(found, ServiceClient):
            client = found
        else:
            seen = found
    if client is None:
        client = _client_read(client_id)
        if client is None:
            raise TokenRevoked
        if seen is not None and not connection.in_atomic_block:
            # Only what is committed is shared (a read inside a transaction may see its own writes).
            store.client_fill(client=client, seen=seen)
    if claims["secret_version"] != client.secret_version:
        # Issued for a secret the client no longer has (rotated).
        raise TokenRevoked
    if any(scope not in client.scope_list for scope in scopes):
        raise TokenRevoked
    return ServiceCaller(client=client, scopes=scopes)


def _client_read(client_id: str) -> ServiceClient | None:
    """Read an active client's cached columns (never its secret's digest) in one query, or None."""
    row = ServiceClient.objects.filter(client_id=client_id, is_active=True).values_list(*client_cached_fields()).first()
    return None if row is None else client_build(dict(zip(client_cached_fields(), row, strict=True)))
