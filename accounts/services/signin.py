"""Sign-in with a password, and the budgets that every password check counts against.

Budgets (OWASP's authentication and device-cookie guidance): a password check from a
client the account does not know counts against the client's address and against the
account, across all of its identifiers; one that presents a valid device token of the
account (given to a device at its last successful sign-in) counts only against that
device's own budget, so failures from anywhere else never lock the owner's device out,
and a stolen device token gives its holder no more than that one device's budget. A
signed-in user confirming their password (password change, email change, deletion)
counts against their session's budget: a stolen access token is no password oracle,
and a flood of guesses elsewhere never stops the owner from changing the password.

Every check is counted before it is made, and before the flow's transaction begins, so
parallel requests cannot multiply attempts and a refused flow never gives its count
back.
"""

import secrets
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from accounts.batching import rows_update, writes_together
from accounts.client import address_key, client_address
from accounts.devices import device_id_for, device_token_issue
from accounts.exceptions import InvalidCredentials, RateLimited
from accounts.models import AuthEventKind, Session, User
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import user_get_by_login
from accounts.services.audit import audit_identifier, auth_event_record
from accounts.services.sessions import session_open
from accounts.tokens import SessionTokens
from accounts.validators import login_key


def login_attempt_count(
    *, request, account: User | None, email: str | None = None, username: str | None = None, device: str | None = None
) -> None:
    """Count one password check of a sign-in; raise RateLimited when its budget is spent.

    With `device` (the id of a valid device token of `account`), only that device's
    budget counts. Otherwise the client address's budget and the account's: keyed by the
    account's id, so its email and its username share one budget, or, when no account
    matches, by the canonical identifier tried (so spelling variants share one too).
    """
    limits = settings.GATEHOUSE
    if device is not None:
        rate_limit_hit(scope="login:device", key=device, rate=limits["LOGIN_RATE_PER_ACCOUNT"])
        return
    rate_limit_hit(
        scope="login:address", key=address_key(client_address(request)), rate=limits["LOGIN_RATE_PER_ADDRESS"]
    )
    key = f"account:{account.pk}" if account is not None else login_key(email=email, username=username)
    rate_limit_hit(scope="login:account", key=key, rate=limits["LOGIN_RATE_PER_ACCOUNT"])


def password_check_count(*, session_id) -> None:
    """Count one password confirmation of a signed-in user; raise RateLimited when its budget is spent.

    It counts against the budget of the device that opened the session, the same one its
    sign-ins count against, or, for a session no device opened (a registration), the
    session's own. Call it before the flow's transaction.
    """
    device = Session.objects.filter(pk=session_id).values_list("device_id", flat=True).first()
    if device:
        rate_limit_hit(scope="login:device", key=device, rate=settings.GATEHOUSE["LOGIN_RATE_PER_ACCOUNT"])
        return
    rate_limit_hit(scope="login:session", key=str(session_id), rate=settings.GATEHOUSE["LOGIN_RATE_PER_ACCOUNT"])


def django_session_password_check_count(*, session_key: str) -> None:
    """Count one password confirmation in a Django (admin) session; raise RateLimited when its budget is spent."""
    rate_limit_hit(scope="login:admin-session", key=session_key, rate=settings.GATEHOUSE["LOGIN_RATE_PER_ACCOUNT"])


@dataclass
class _Attempt:
    account: User | None = None


def user_authenticate(
    *, request, password: str, email: str | None = None, username: str | None = None, device_token: str | None = None
) -> tuple[User, SessionTokens]:
    """Check a login and sign the user in; the tokens carry the device's token.

    The device is the one `device_token` names, when it is a valid token of the account
    (its token is renewed), else a new one: the session opened belongs to it.

    Raises InvalidCredentials, identical for an unknown account, a wrong password, an
    inactive account and (when ACCOUNT_ALLOW_UNVERIFIED_LOGIN is off) an unconfirmed
    email, and RateLimited when the budget the attempt counts against is spent (see
    login_attempt_count). Every attempt counts, whatever its outcome, and goes to the
    audit trail; a success's entry is written in the sign-in's own transaction.
    """
    attempt = _Attempt(account=user_get_by_login(email=email, username=username))
    device = device_id_for(device_token, user=attempt.account)
    try:
        # Every attempt counts against the same budget whatever its password (an oversized
        # one too: a different key would tell accounts from non-accounts).
        login_attempt_count(request=request, account=attempt.account, email=email, username=username, device=device)
        user, tokens = _authenticate(
            request=request,
            password=password,
            email=email,
            username=username,
            attempt=attempt,
            device=device or secrets.token_urlsafe(16),
        )
    except (InvalidCredentials, RateLimited) as exc:
        if isinstance(exc, RateLimited) and not exc.first:
            # Refusals after the first in a lockout cost the attacker nothing; one entry
            # is enough, and a flood must not become a flood of writes.
            raise
        # Written after the sign-in transaction rolled back, so the failure is kept.
        auth_event_record(
            kind=AuthEventKind.LOGIN_FAILED,
            request=request,
            user=attempt.account,
            identifier=audit_identifier(email=email, username=username, account=attempt.account),
            detail="rate limited" if isinstance(exc, RateLimited) else "",
        )
        raise
    return user, tokens


@transaction.atomic
def _authenticate(
    *, request, password: str, email: str | None, username: str | None, attempt: _Attempt, device: str
) -> tuple[User, SessionTokens]:
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        # Never hash megabytes: no account can have this password.
        raise InvalidCredentials
    # The account is read again under its row lock, so the password checked is the one it
    # has now: a sign-in that waited for a password change or reset sees the new hash and
    # fails; one that went first opens a session that the change then ends; one that
    # waited for a deletion finds no account. Unknown and known identifiers cost the same
    # query.
    user = attempt.account = user_get_by_login(email=email, username=username, lock=True)
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
    # The account's last_login, the session, its refresh token and the audit entry: one round trip.
    with writes_together():
        tokens = sign_in(user, request, device_id=device)
        auth_event_record(
            kind=AuthEventKind.LOGIN_SUCCEEDED,
            request=request,
            user=user,
            identifier=audit_identifier(email=email, username=username, account=user),
            session_id=tokens.payload["sid"],
        )
    # Issued after the password check, which may have upgraded the hash it is bound to.
    return user, replace(tokens, device_token=device_token_issue(user=user, device_id=device))


def sign_in(user: User, request, *, device_id: str = "") -> SessionTokens:
    """Record the login and open its session (inside the caller's transaction, the account locked)."""
    user.last_login = timezone.now()
    rows_update(User.objects.filter(pk=user.pk), last_login=user.last_login)
    return session_open(user=user, request=request, device_id=device_id, account_changed=True)


def admin_sign_in_record(*, request, email: str | None, user: User | None, refusal: RateLimited | None = None) -> None:
    """Record a sign-in through the Django admin's login form, as a GraphQL sign-in is recorded.

    `user` is the signed-in account, or None for a failure (`email` is what was typed);
    `refusal` the budget's refusal, if that was why. As for tokenAuth, only the first
    refusal of a lockout is recorded: a flood must not become a flood of writes.
    """
    if refusal is not None and not refusal.first:
        return
    rate_limited = refusal is not None
    account = user or user_get_by_login(email=email or "")
    auth_event_record(
        kind=AuthEventKind.LOGIN_SUCCEEDED if user is not None else AuthEventKind.LOGIN_FAILED,
        request=request,
        user=account,
        identifier=audit_identifier(email=email or "", username=None, account=account),
        detail="admin" + (", rate limited" if rate_limited else ""),
    )
