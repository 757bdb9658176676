"""One-time tokens sent by email (verification, email change, password reset), and their limits."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.client import address_key, client_address
from accounts.error_codes import UserErrorCode
from accounts.exceptions import TokenInvalid
from accounts.mail import frontend_link, lifetime_text, mail_send_on_commit
from accounts.models import AccountToken, AccountTokenPurpose, User
from accounts.ratelimit import rate_limit_hit
from accounts.services.locking import user_locked
from accounts.tokens import opaque_token_digest, opaque_token_generate


def account_tokens_revoke(*, user: User, purposes=None) -> int:
    """Delete the user's unused emailed links (of `purposes`, else all); return how many."""
    tokens = AccountToken.objects.filter(user=user, used_at__isnull=True)
    if purposes is not None:
        tokens = tokens.filter(purpose__in=purposes)
    return tokens.delete()[0]


def _password_state(user: User) -> str:
    """Return a digest of the user's password hash: it changes with every password change."""
    return hashlib.sha256(user.password.encode()).hexdigest()


def account_token_issue(*, user: User, purpose: str, email: str, lifetime: int) -> tuple[str, AccountToken]:
    """Issue a one-time token; the user's older tokens of the same purpose die with it.

    Call inside a transaction: the user's row is locked, so two requests at once still
    leave one live link. Raises TokenRevoked when the account is gone.
    """
    user = user_locked(user)
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


def account_token_use(*, token: str, purposes: tuple[str, ...]) -> AccountToken:
    """Mark a one-time token used and return it, its account locked; raise ValidationError (INVALID_TOKEN).

    Call inside a transaction: if a later step refuses the input, the use is rolled back
    and the link still works. The account's row is locked first, then the token's (the
    one lock order), so a reset and a password change or an email change never
    interleave, and every check below reads the account as it is now.
    """
    try:
        digest = opaque_token_digest(token)
    except TokenInvalid:
        raise _invalid_token() from None
    found = AccountToken.objects.filter(token_hash=digest, purpose__in=purposes).values_list("user_id").first()
    if found is None:
        raise _invalid_token()
    user = User.objects.select_for_update(no_key=True).filter(pk=found[0]).first()
    row = AccountToken.objects.select_for_update(no_key=True).filter(token_hash=digest, purpose__in=purposes).first()
    now = timezone.now()
    if user is None or row is None or row.used_at is not None or row.expires_at <= now or not user.is_active:
        raise _invalid_token()
    row.user = user
    if row.password_state and row.password_state != _password_state(user):
        # The password changed since the link was sent (a reset, a change, the admin).
        raise _invalid_token()
    if row.purpose != AccountTokenPurpose.CHANGE_EMAIL and row.email != user.email:
        # Sent to an address the account no longer has (changed since, by the user or an admin).
        raise _invalid_token()
    # Conditional on still being unused: of two uses racing, one wins (SQLite has no row lock).
    if not AccountToken.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=now):
        raise _invalid_token()
    return row


def account_email_limits(*, request, recipient: str) -> None:
    """Count one account email against the client address and the recipient address.

    The recipient is counted whether or not it has an account, so the limit reveals
    nothing, and nobody can flood someone's mailbox with resets. Call it before the
    transaction of the flow: a refusal of the flow must not give the count back.
    """
    limits = settings.GATEHOUSE
    rate_limit_hit(
        scope="account-email:address",
        key=address_key(client_address(request)),
        rate=limits["ACCOUNT_EMAIL_RATE_PER_ADDRESS"],
    )
    rate_limit_hit(scope="account-email:recipient", key=recipient, rate=limits["ACCOUNT_EMAIL_RATE_PER_RECIPIENT"])


def account_token_limits(*, request) -> None:
    """Count one emailed token presented by the client address (before the flow's transaction)."""
    rate_limit_hit(
        scope="account-token:address",
        key=address_key(client_address(request)),
        rate=settings.GATEHOUSE["ACCOUNT_TOKEN_RATE_PER_ADDRESS"],
    )


def link_send(*, user: User, email: str, purpose: str, lifetime: int, template: str, path: str) -> None:
    """Issue a one-time link of `purpose` for `email` and mail it there once the transaction commits."""
    token, row = account_token_issue(user=user, purpose=purpose, email=email, lifetime=lifetime)
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


def verification_send(*, user: User, email: str, change: bool = False) -> None:
    """Email a verification link: for the account's own address, or (`change`) for a new one."""
    link_send(
        user=user,
        email=email,
        purpose=AccountTokenPurpose.CHANGE_EMAIL if change else AccountTokenPurpose.VERIFY_EMAIL,
        lifetime=settings.EMAIL_VERIFICATION_TOKEN_LIFETIME,
        template="email_change" if change else "activate",
        path="activate",
    )


def account_tokens_delete_stale(*, dry_run: bool = False, batch_size: int = 1000) -> int:
    """Delete used and expired emailed tokens; return how many.

    Rows that a live flow holds are skipped (they go next time): housekeeping never
    waits for a request, nor takes part in a lock cycle with one.
    """
    stale = AccountToken.objects.filter(models.Q(used_at__isnull=False) | models.Q(expires_at__lte=timezone.now()))
    if dry_run:
        return stale.count()
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(
                stale.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                return deleted
            deleted += AccountToken.objects.filter(pk__in=batch).delete()[0]
