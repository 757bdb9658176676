"""The account rules that write: registration, sign-in and sessions. Nothing else writes.

A session is one sign-in. It owns a chain of refresh tokens, each used once: a refresh
marks the presented token used and issues its successor. A used token presented again
after REFRESH_TOKEN_REUSE_GRACE seconds is taken for a stolen copy (RFC 9700 §4.14.2):
the whole session ends, so neither the thief nor the victim can continue it.
"""

import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.client import address_key, client_address
from accounts.error_codes import UserErrorCode
from accounts.exceptions import (
    AuthError,
    InvalidCredentials,
    RateLimited,
    RefreshTokenAlreadyUsed,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from accounts.mail import frontend_link, lifetime_text, mail_send_on_commit, run_after_commit
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
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import email_taken, sessions_live, user_get_by_login, username_taken
from accounts.tokens import (
    SessionTokens,
    access_token_issue,
    opaque_token_digest,
    opaque_token_generate,
    refresh_token_digest,
    refresh_token_generate,
)
from accounts.validators import canonical_email, canonical_username, clean_user_agent, login_key, printable_text

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
def user_register(*, request, username: str, email: str, password: str) -> tuple[User, SessionTokens | None]:
    """Create an active user after the validators pass, email it a verification link, and sign it in.

    The tokens are None when unverified accounts may not sign in
    (ACCOUNT_ALLOW_UNVERIFIED_LOGIN off). Raises ValidationError keyed by field with
    codes from UserErrorCode, and RateLimited when the client address has registered too
    often.
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
    _verification_send(user=user, email=user.email)
    tokens = _sign_in(user, request) if settings.ACCOUNT_ALLOW_UNVERIFIED_LOGIN else None
    auth_event_record(
        kind=AuthEventKind.REGISTERED,
        request=request,
        user=user,
        session_id=tokens.payload["sid"] if tokens is not None else None,
    )
    return user, tokens


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


def user_authenticate(
    *, request, password: str, email: str | None = None, username: str | None = None
) -> tuple[User, SessionTokens]:
    """Check a login and sign the user in.

    Raises InvalidCredentials, identical for an unknown account, a wrong password, an
    inactive account and (when ACCOUNT_ALLOW_UNVERIFIED_LOGIN is off) an unconfirmed
    email, and RateLimited when the account or the client address has tried too often.
    Every attempt counts, whatever its outcome, and goes to the audit trail.
    """
    attempt = _LoginAttempt()
    try:
        user, tokens = _authenticate(
            request=request, password=password, email=email, username=username, attempt=attempt
        )
    except (InvalidCredentials, RateLimited) as exc:
        if isinstance(exc, RateLimited) and not exc.first:
            # Refusals after the first in a window cost the attacker nothing; one entry
            # per window is enough, and a flood must not become a flood of writes.
            raise
        # Written after the sign-in transaction rolled back, so the failure is kept.
        auth_event_record(
            kind=AuthEventKind.LOGIN_FAILED,
            request=request,
            user=attempt.account,
            identifier=_audit_identifier(email=email, username=username, account=attempt.account),
            detail="rate limited" if isinstance(exc, RateLimited) else "",
        )
        raise
    auth_event_record(
        kind=AuthEventKind.LOGIN_SUCCEEDED,
        request=request,
        user=user,
        identifier=_audit_identifier(email=email, username=username, account=user),
        session_id=tokens.payload["sid"],
    )
    return user, tokens


def _audit_identifier(*, email: str | None, username: str | None, account: User | None) -> str:
    """Return what a sign-in named, for the audit trail, never as typed unless it is an account's.

    People type passwords into the login field. A well-formed email address is kept in
    its canonical form (a password rarely is one), and so is the username of an existing
    account; anything else is kept as a keyed digest, so repeated attempts at the same
    unknown name still show as one, and nothing typed is readable.
    """
    key = login_key(email=email, username=username)
    if key.startswith("email:") or (account is not None and key.startswith("username:")):
        return key
    digest = hmac.new(settings.SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()[:24]
    return f"unknown:{digest}"


@dataclass
class _LoginAttempt:
    account: User | None = None


@transaction.atomic
def _authenticate(
    *, request, password: str, email: str | None, username: str | None, attempt: _LoginAttempt
) -> tuple[User, SessionTokens]:
    login_attempt_count(request=request, email=email, username=username)
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        # Never hash megabytes (nor look anyone up): no account can have this password.
        raise InvalidCredentials
    user = attempt.account = user_get_by_login(email=email, username=username)
    if user is None or not user.has_usable_password():
        # Hash anyway, so an unknown account (or one without a password, which Django
        # refuses without hashing) takes as long as a wrong password, as
        # django.contrib.auth.backends.ModelBackend does for unknown users.
        make_password(password)
        raise InvalidCredentials
    # check_password also re-hashes an outdated hash (e.g. Django's default Argon2 parameters).
    if not user.check_password(password) or not user.is_active:
        raise InvalidCredentials
    if not settings.ACCOUNT_ALLOW_UNVERIFIED_LOGIN and not user.is_email_verified:
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
        **_request_facts(request),
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

    The row locks serialise concurrent uses of one token on Postgres: the second waits,
    then sees the first one's `used_at`; a refresh racing a logout of the same session
    waits, then sees the session ended. (SQLite serialises every write transaction.)
    """
    digest = refresh_token_digest(refresh_token)
    row = (
        # The session row too: a refresh racing a logout waits for it, then sees it ended.
        RefreshToken.objects.select_for_update(of=("self", "session"))
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
        row = _refresh_token_for_update(refresh_token)
        refusal = _refusal(row, now, request)
        # Conditional on still being unused: even without the row lock, one use wins.
        if refusal is None and RefreshToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
            session, user = row.session, row.session.user
            session.last_used_at = now
            Session.objects.filter(pk=session.pk).update(last_used_at=now)
            return user, _session_tokens(session=session, user=user, now=now)
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
        row = _refresh_token_for_update(refresh_token)
        session = row.session
        if session.revoked_at is None and not _is_replay(row, now):
            session.revoked_at, session.revoked_reason = now, SessionEndReason.LOGOUT
            Session.objects.filter(pk=session.pk).update(revoked_at=now, revoked_reason=SessionEndReason.LOGOUT)
            auth_event_record(kind=AuthEventKind.LOGOUT, request=request, user=session.user, session_id=session.pk)
            return session
        refusal = _refusal(row, now, request)
    raise refusal


def session_revoke(*, user: User, session_id, reason: str = SessionEndReason.REVOKED_BY_USER, request=None) -> None:
    """End one of `user`'s own live sessions.

    Raises ValidationError (`id`: NOT_FOUND) when they have no such live session; someone
    else's session is answered exactly like one that does not exist.
    """
    ended = session_id is not None and sessions_revoke(
        Session.objects.filter(user=user, pk=session_id), reason=reason, request=request
    )
    if not ended:
        raise ValidationError(
            {"id": ValidationError("You have no live session with this ID.", code=UserErrorCode.NOT_FOUND.value)}
        )


@transaction.atomic
def sessions_revoke(sessions, *, reason: str, request=None, actor: User | None = None) -> int:
    """End the live sessions among `sessions` (a queryset); return how many ended.

    Expired sessions are left as they are: they are over already, and housekeeping
    deletes them. Each account whose sessions ended gets one audit-trail entry, naming
    the `actor` (an administrator) when it is not the account itself.
    """
    now = timezone.now()
    live = sessions_live(sessions, now=now)
    ended_by_user = list(live.values("user_id").annotate(ended=Count("pk")).order_by())
    count = live.update(revoked_at=now, revoked_reason=reason)
    facts = _request_facts(request)
    by_actor = f" by user {actor.pk}" if actor is not None else ""
    for row in ended_by_user:
        auth_event_record(
            kind=AuthEventKind.SESSIONS_ENDED,
            facts=facts,
            user_id=row["user_id"],
            detail=f"{reason}: {row['ended']}{by_actor}",
        )
    return count


def session_revoke_all(
    *, user: User, reason: str, keep_session_id=None, request=None, actor: User | None = None
) -> int:
    """End every live session of `user` except `keep_session_id`; return how many ended.

    Their access tokens fail with TOKEN_REVOKED on the next request and their refresh
    tokens with TOKEN_REVOKED on the next refresh. Password change and reset use this.
    """
    sessions = Session.objects.filter(user=user)
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    return sessions_revoke(sessions, reason=reason, request=request, actor=actor)


def user_deactivate(*, user: User, request=None) -> int:
    """Deactivate an account and end its sessions; return how many ended.

    Ending them (not just refusing them while the account is inactive) means that
    reactivating the account later revives none of its old tokens.
    """
    if user.is_active:
        user.is_active = False
        User.objects.filter(pk=user.pk).update(is_active=False)
    # Its emailed links go too: reactivating the account must not revive them either.
    account_tokens_revoke(user=user)
    return session_revoke_all(user=user, reason=SessionEndReason.DEACTIVATED, request=request)


def password_set(*, user: User, password: str | None, request=None) -> int:
    """Set (or, with None, disable) a password outside the user's own flows; end every session.

    For the admin's password form and `manage.py changepassword`: whoever held the
    account's tokens is signed out. Returns how many sessions ended. The caller has run
    the validators (Django's forms and command do).
    """
    with transaction.atomic():
        locked = _user_locked(user)
        if password is None:
            locked.set_unusable_password()
        else:
            locked.set_password(password)
        locked.save(update_fields=["password"])
        user.password = locked.password
        account_tokens_revoke(user=user)
    ended = session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_CHANGE, request=request)
    auth_event_record(kind=AuthEventKind.PASSWORD_CHANGED, request=request, user=user, detail="set by an administrator")
    return ended


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


# --- the audit trail ----------------------------------------------------------------------


def auth_event_record(
    *,
    kind: str,
    request=None,
    facts: dict | None = None,
    user: User | None = None,
    user_id: int | None = None,
    identifier: str = "",
    session_id=None,
    detail: str = "",
) -> AuthEvent:
    """Append one entry to the audit trail. Never pass a password or a token.

    The client's address and user agent come from `request`, or from `facts` taken from
    it earlier (work done after the response). The account is `user`, or just its id.
    """
    if user is not None:
        user_id = user.pk
    return AuthEvent.objects.create(
        **(facts if facts is not None else _request_facts(request)),
        kind=kind,
        user_id=user_id,
        user_ref=user_id,
        # Whatever a client typed: printable only (Postgres refuses NUL), and bounded.
        identifier=printable_text(identifier, AuthEvent._meta.get_field("identifier").max_length),
        session_id=session_id,
        detail=detail[: AuthEvent._meta.get_field("detail").max_length],
    )


def _request_facts(request) -> dict:
    """Return the client address and user agent of `request` as a session or event records them."""
    if request is None:
        return {"ip_address": None, "user_agent": ""}
    return {
        "ip_address": _ip_address(client_address(request)),
        "user_agent": clean_user_agent(request.META.get("HTTP_USER_AGENT")),
    }


# --- one-time tokens sent by email ---------------------------------------------------------


def _user_locked(user: User) -> User:
    """Return `user` re-read with its row locked until the transaction ends.

    Every flow that checks or changes a password or an email works on the locked row, so
    two of them never interleave (a reset and a change, two reset requests) and none
    decides on a stale copy loaded when the request was authenticated.
    """
    return User.objects.select_for_update().get(pk=user.pk)


def account_tokens_revoke(*, user: User, purposes=None) -> int:
    """Delete the user's unused emailed links (of `purposes`, else all); return how many."""
    tokens = AccountToken.objects.filter(user=user, used_at__isnull=True)
    if purposes is not None:
        tokens = tokens.filter(purpose__in=purposes)
    return tokens.delete()[0]


def _password_state(user: User) -> str:
    """Return a digest of the user's password hash: it changes with every password change."""
    return hashlib.sha256(user.password.encode()).hexdigest()


def _account_token_issue(*, user: User, purpose: str, email: str, lifetime: int) -> tuple[str, AccountToken]:
    """Issue a one-time token; the user's older tokens of the same purpose die with it.

    Call inside a transaction: the user's row is locked, so two requests at once still
    leave one live link.
    """
    user = _user_locked(user)
    AccountToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).delete()
    token, digest = opaque_token_generate()
    now = timezone.now()
    row = AccountToken.objects.create(
        user=user,
        purpose=purpose,
        token_hash=digest,
        email=email,
        password_state=_password_state(user) if purpose == AccountTokenPurpose.RESET_PASSWORD else "",
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    return token, row


def _invalid_token() -> ValidationError:
    return ValidationError(
        {"token": ValidationError("This link is invalid or has expired.", code=UserErrorCode.INVALID_TOKEN.value)}
    )


def _account_token_use(*, token: str, purposes: tuple[str, ...]) -> AccountToken:
    """Mark a one-time token used and return it; raise ValidationError (INVALID_TOKEN) otherwise.

    Call inside a transaction: if a later step refuses the input, the use is rolled back
    and the link still works.
    """
    try:
        digest = opaque_token_digest(token)
    except TokenInvalid:
        raise _invalid_token() from None
    row = (
        # The user row too: a reset and a password change (or an email change) never interleave.
        AccountToken.objects.select_for_update(of=("self", "user"))
        .select_related("user")
        .filter(token_hash=digest, purpose__in=purposes)
        .first()
    )
    now = timezone.now()
    if row is None or row.used_at is not None or row.expires_at <= now or not row.user.is_active:
        raise _invalid_token()
    if row.password_state and row.password_state != _password_state(row.user):
        # The password changed since the link was sent (a reset, a change, the admin).
        raise _invalid_token()
    if row.purpose != AccountTokenPurpose.CHANGE_EMAIL and row.email != row.user.email:
        # Sent to an address the account no longer has (changed since, by the user or an admin).
        raise _invalid_token()
    # Conditional on still being unused: of two uses racing, one wins.
    if not AccountToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
        raise _invalid_token()
    return row


def _account_email_limits(*, request, recipient: str) -> None:
    """Count one account email against the client address and the recipient address.

    The recipient is counted whether or not it has an account, so the limit reveals
    nothing, and nobody can flood someone's mailbox with resets.
    """
    limits = settings.GATEHOUSE
    rate_limit_hit(
        scope="account-email:address",
        key=address_key(client_address(request)),
        rate=limits["ACCOUNT_EMAIL_RATE_PER_ADDRESS"],
    )
    rate_limit_hit(scope="account-email:recipient", key=recipient, rate=limits["ACCOUNT_EMAIL_RATE_PER_RECIPIENT"])


def _account_token_limits(*, request) -> None:
    rate_limit_hit(
        scope="account-token:address",
        key=address_key(client_address(request)),
        rate=settings.GATEHOUSE["ACCOUNT_TOKEN_RATE_PER_ADDRESS"],
    )


def _link_send(*, user: User, email: str, purpose: str, lifetime: int, template: str, path: str) -> None:
    """Issue a one-time link of `purpose` for `email` and mail it there once the transaction commits."""
    token, row = _account_token_issue(user=user, purpose=purpose, email=email, lifetime=lifetime)
    mail_send_on_commit(
        template=template,
        to=email,
        context={
            "username": user.username,
            "email": email,
            "link": frontend_link(path, token),
            "lifetime": lifetime_text(row.created_at, row.expires_at),
        },
    )


def _verification_send(*, user: User, email: str, change: bool = False) -> None:
    """Email a verification link: for the account's own address, or (`change`) for a new one."""
    _link_send(
        user=user,
        email=email,
        purpose=AccountTokenPurpose.CHANGE_EMAIL if change else AccountTokenPurpose.VERIFY_EMAIL,
        lifetime=settings.EMAIL_VERIFICATION_TOKEN_LIFETIME,
        template="email_change" if change else "activate",
        path="activate",
    )


def _canonical_email_field(email: str | None, field: str = "email") -> str:
    try:
        return canonical_email(_required(email, "Enter an email address."))
    except ValidationError as exc:
        raise ValidationError({field: exc}) from None


# --- email verification --------------------------------------------------------------------


@transaction.atomic
def account_verify(*, request, token: str) -> User:
    """Confirm the address a verification link was sent to; return the account.

    For a new account this sets `is_email_verified`. For an email change (updateAccount)
    the confirmed address replaces the old one only now. Raises ValidationError:
    `token` INVALID_TOKEN for a link that is unknown, used, expired or superseded, and
    UNIQUE when the new address was taken by another account in the meantime.
    """
    _account_token_limits(request=request)
    row = _account_token_use(token=token, purposes=(AccountTokenPurpose.VERIFY_EMAIL, AccountTokenPurpose.CHANGE_EMAIL))
    user = row.user
    changed = row.purpose == AccountTokenPurpose.CHANGE_EMAIL and row.email != user.email
    if changed:
        if email_taken(row.email, exclude=user):
            raise ValidationError({"token": _taken("email")})
        user.email = row.email
        # Reset and verification links went to the old address: they die with the change.
        AccountToken.objects.filter(
            user=user, purpose__in=(AccountTokenPurpose.RESET_PASSWORD, AccountTokenPurpose.VERIFY_EMAIL)
        ).exclude(pk=row.pk).delete()
    user.is_email_verified = True
    try:
        with transaction.atomic():
            user.save(update_fields=["email", "is_email_verified"])
    except IntegrityError:
        raise ValidationError({"token": _taken("email")}) from None
    AccountToken.objects.filter(user=user, purpose=row.purpose, used_at__isnull=True).delete()
    kind = AuthEventKind.EMAIL_CHANGED if changed else AuthEventKind.EMAIL_VERIFIED
    auth_event_record(kind=kind, request=request, user=user)
    return user


def _after_response_for_address(*, request, email: str, job, name: str) -> None:
    """Validate and count a request about an address, and leave everything else to `job`.

    The request only checks the address's form and counts the rate limits (per client
    and per recipient, whether or not an account exists); `job(email, facts)` looks the
    account up and acts after the response, so every address costs the request the same.
    """
    canonical = _canonical_email_field(email)
    _account_email_limits(request=request, recipient=canonical)
    facts = _request_facts(request)
    run_after_commit(lambda: job(canonical, facts), name=name)


def account_verification_resend(*, request, email: str) -> None:
    """Send a new verification link if `email` names an active, unverified account.

    Answers the same, with the same work in the request, whether or not it does: the
    lookup, the token and the mail happen after the response (see accounts.mail).
    Raises ValidationError for a malformed address and RateLimited when the client or
    the recipient has had enough.
    """
    _after_response_for_address(request=request, email=email, job=_verification_resend, name="verification resend")


@transaction.atomic
def _verification_resend(email: str, facts: dict) -> None:
    user = User.objects.filter(email=email, is_active=True, is_email_verified=False).first()
    if user is not None:
        _verification_send(user=user, email=user.email)
        auth_event_record(kind=AuthEventKind.EMAIL_VERIFICATION_SENT, facts=facts, user=user, identifier=email)


# --- passwords -----------------------------------------------------------------------------


def _password_validated(password: str | None, *, user: User, field: str) -> str:
    """Return `password` if the validators accept it for `user`; raise ValidationError keyed by `field`."""
    try:
        _required(password, "Choose a password.")
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({field: exc}) from None
    return password


def _password_confirmed(*, request, user: User, password: str | None, field: str) -> None:
    """Check a signed-in user's current password; raise ValidationError (INVALID_PASSWORD).

    Counted per account: a stolen access token must not become a password oracle.
    """
    rate_limit_hit(
        scope="password-check:account", key=str(user.pk), rate=settings.GATEHOUSE["PASSWORD_CHECK_RATE_PER_ACCOUNT"]
    )
    wrong = ValidationError(
        {field: ValidationError("The password is not correct.", code=UserErrorCode.INVALID_PASSWORD.value)}
    )
    if not password or len(password) > settings.PASSWORD_MAX_LENGTH:
        raise wrong
    if not user.check_password(password):
        raise wrong


def password_reset_request(*, request, email: str) -> None:
    """Email a one-time reset link if `email` names an active account.

    Answers the same, with the same work in the request, whether or not it does: the
    lookup, the token and the mail happen after the response (see accounts.mail).
    Raises ValidationError for a malformed address and RateLimited when the client or
    the recipient has had enough.
    """
    _after_response_for_address(request=request, email=email, job=_password_reset_send, name="password reset request")


@transaction.atomic
def _password_reset_send(email: str, facts: dict) -> None:
    user = User.objects.filter(email=email, is_active=True).first()
    if user is not None and not user.has_usable_password():
        # As Django's PasswordResetForm: an administrator disabled password sign-in, and
        # whoever reads the mailbox must not undo that.
        user = None
    if user is not None:
        _link_send(
            user=user,
            email=user.email,
            purpose=AccountTokenPurpose.RESET_PASSWORD,
            lifetime=settings.PASSWORD_RESET_TOKEN_LIFETIME,
            template="reset_password",
            path="reset-password",
        )
    auth_event_record(
        kind=AuthEventKind.PASSWORD_RESET_REQUESTED,
        facts=facts,
        user=user,
        identifier=email,
        detail="" if user is not None else "no such account",
    )


@transaction.atomic
def password_reset(*, request, token: str, new_password: str) -> User:
    """Set a new password with a reset link; end every session of the account.

    The link is one-time and state-bound: dead after use, after any password change and
    after a newer reset. Opening it proves the mailbox, so the address counts as
    verified. Raises ValidationError (`token` INVALID_TOKEN, `newPassword` validators)
    and changes nothing then.
    """
    _account_token_limits(request=request)
    row = _account_token_use(token=token, purposes=(AccountTokenPurpose.RESET_PASSWORD,))
    user = row.user
    _password_validated(new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.is_email_verified = True  # the link reached this very address
    user.save(update_fields=["password", "is_email_verified"])
    # Every other emailed link dies too, a pending email change included: whoever took
    # the account must not keep a way back in.
    account_tokens_revoke(user=user)
    session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_RESET, request=request)
    auth_event_record(kind=AuthEventKind.PASSWORD_RESET, request=request, user=user)
    return user


@transaction.atomic
def password_change(*, request, user: User, session_id: str, old_password: str, new_password: str) -> SessionTokens:
    """Change a signed-in user's password; end every other session; renew this one's tokens.

    Raises ValidationError (`oldPassword` INVALID_PASSWORD, `newPassword` validators) and
    RateLimited; nothing changes then. Returns a new access token and a new refresh token
    of the current session; its earlier refresh token stops working.
    """
    user = _user_locked(user)
    session = Session.objects.select_for_update().filter(pk=session_id, user=user, revoked_at__isnull=True).first()
    if session is None:
        # Ended (a reset, a logout elsewhere) while this request was on its way.
        raise TokenRevoked
    errors = {}
    for check in (
        lambda: _password_confirmed(request=request, user=user, password=old_password, field="old_password"),
        lambda: _password_validated(new_password, user=user, field="new_password"),
    ):
        try:
            check()
        except ValidationError as exc:
            errors.update(exc.error_dict)
    if errors:
        raise ValidationError(errors)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_CHANGE, keep_session_id=session_id, request=request)
    account_tokens_revoke(user=user)
    # The session's refresh token goes too: whoever else holds it cannot carry on.
    RefreshToken.objects.filter(session=session, used_at__isnull=True).delete()
    now = timezone.now()
    session.last_used_at = now
    Session.objects.filter(pk=session.pk).update(last_used_at=now)
    auth_event_record(kind=AuthEventKind.PASSWORD_CHANGED, request=request, user=user, session_id=session.pk)
    return _session_tokens(session=session, user=user, now=now)


# --- profile and deletion ------------------------------------------------------------------


@transaction.atomic
def account_update(
    *,
    request,
    user: User,
    username: str | None = None,
    email: str | None = None,
    password: str | None = None,
) -> tuple[User, str | None]:
    """Change a signed-in user's username and ask to change their email.

    Returns the account as it now is and the address waiting for confirmation, if any.

    The username changes at once, with the registration rules. A new email address needs
    the current `password` (a stolen access token must not be able to move the account
    to another mailbox) and replaces the old one only once confirmed: a link goes to the
    new address, a notice to the old one, and `verifyAccount` makes the change; a
    password change or reset cancels it. Every call counts against the client address's
    registration budget before anything is looked up (availability answers are as
    telling as registration's). Raises ValidationError keyed by field (nothing changes
    then) and RateLimited.
    """
    rate_limit_hit(
        scope="register:address",
        key=address_key(client_address(request)),
        rate=settings.GATEHOUSE["REGISTER_RATE_PER_ADDRESS"],
    )
    user = _user_locked(user)
    errors: dict[str, ValidationError] = {}
    new_username = new_email = None
    if email is not None:
        if not password:
            message = "Enter your current password to change your email address."
            raise ValidationError({"password": ValidationError(message, code=UserErrorCode.REQUIRED.value)})
        _password_confirmed(request=request, user=user, password=password, field="password")
    if username is not None:
        try:
            new_username = canonical_username(_required(username, "Choose a username."))
            if username_taken(new_username, exclude=user):
                raise _taken("username")
        except ValidationError as exc:
            errors["username"] = exc
    if email is not None:
        try:
            new_email = canonical_email(_required(email, "Enter your email address."))
            if new_email != user.email:
                _account_email_limits(request=request, recipient=new_email)
            if email_taken(new_email, exclude=user):
                raise _taken("email")
        except ValidationError as exc:
            errors["email"] = exc
    if errors:
        raise ValidationError(errors)
    if new_username is not None and new_username != user.username:
        old_username, user.username = user.username, new_username
        try:
            with transaction.atomic():
                user.save(update_fields=["username"])
        except IntegrityError:
            user.username = old_username
            raise ValidationError({"username": _taken("username")}) from None
        auth_event_record(kind=AuthEventKind.USERNAME_CHANGED, request=request, user=user)
    if new_email is None or new_email == user.email:
        return user, None
    _verification_send(user=user, email=new_email, change=True)
    mail_send_on_commit(
        template="email_change_notice", to=user.email, context={"username": user.username, "old_email": user.email}
    )
    auth_event_record(kind=AuthEventKind.EMAIL_CHANGE_REQUESTED, request=request, user=user)
    return user, new_email


@transaction.atomic
def account_delete(*, request, user: User, password: str) -> None:
    """Delete a signed-in user's account after confirming the password; end every session.

    With ACCOUNT_DELETION = "deactivate" the row stays (deactivated, its username and
    email replaced by placeholders, no usable password) so the address is free again either way and a
    new account there inherits nothing. Raises ValidationError (`password`
    INVALID_PASSWORD) and RateLimited; nothing changes then.
    """
    user = _user_locked(user)
    _password_confirmed(request=request, user=user, password=password, field="password")
    session_revoke_all(user=user, reason=SessionEndReason.ACCOUNT_DELETED, request=request)
    auth_event_record(kind=AuthEventKind.ACCOUNT_DELETED, request=request, user=user)
    if settings.ACCOUNT_DELETION == "deactivate":
        # Placeholders no registration can take first: a colon is never in a username,
        # and a single-label domain is never a valid email address.
        user.username = f"deleted:{user.pk}"
        user.email = f"deleted-{user.pk}@deleted"
        user.set_unusable_password()
        user.is_active = False
        user.is_email_verified = False
        user.save(update_fields=["username", "email", "password", "is_active", "is_email_verified"])
        AccountToken.objects.filter(user=user).delete()
        return
    user.delete()


# --- housekeeping --------------------------------------------------------------------------


def account_tokens_delete_stale(*, dry_run: bool = False) -> int:
    """Delete used and expired emailed tokens; return how many."""
    stale = AccountToken.objects.filter(models.Q(used_at__isnull=False) | models.Q(expires_at__lte=timezone.now()))
    return stale.count() if dry_run else stale.delete()[0]


def auth_events_delete_old(*, dry_run: bool = False, batch_size: int = 5000) -> int:
    """Delete audit-trail entries older than AUTH_EVENT_RETENTION; return how many."""
    old = AuthEvent.objects.filter(created_at__lte=timezone.now() - timedelta(seconds=settings.AUTH_EVENT_RETENTION))
    if dry_run:
        return old.count()
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:batch_size]):
        deleted += AuthEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted
