"""Registration and email verification."""

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.client import address_key, client_address
from accounts.mail import run_after_commit
from accounts.models import AccountToken, AccountTokenPurpose, AuthEventKind, User
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import email_taken, username_taken
from accounts.services.account_tokens import (
    account_email_limits,
    account_token_limits,
    account_token_use,
    verification_send,
)
from accounts.services.audit import auth_event_record, request_facts
from accounts.services.inputs import canonical_email_field, required, taken
from accounts.services.signin import sign_in
from accounts.tokens import SessionTokens
from accounts.validators import canonical_email, canonical_username


def _clean_registration(*, username: str, email: str, password: str) -> tuple[str, str]:
    """Return the canonical username and email; raise ValidationError keyed by field."""
    errors: dict[str, ValidationError] = {}
    clean: dict[str, str] = {}
    for field, raw, canonical, message in (
        ("username", username, canonical_username, "Choose a username."),
        ("email", email, canonical_email, "Enter your email address."),
    ):
        try:
            clean[field] = canonical(required(raw, message))
        except ValidationError as exc:
            errors[field] = exc
    if "username" in clean and username_taken(clean["username"]):
        errors["username"] = taken("username")
    if "email" in clean and email_taken(clean["email"]):
        errors["email"] = taken("email")
    try:
        required(password, "Choose a password.")
        # The validators compare the password with the account's own attributes.
        candidate = User(username=clean.get("username", ""), email=clean.get("email", ""))
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        errors["password"] = exc
    if errors:
        raise ValidationError(errors)
    return clean["username"], clean["email"]


def registration_count(*, request) -> None:
    """Count one registration-like request (its answers tell whether a name is taken) by the client address."""
    rate_limit_hit(
        scope="register:address",
        key=address_key(client_address(request)),
        rate=settings.GATEHOUSE["REGISTER_RATE_PER_ADDRESS"],
    )


def user_register(*, request, username: str, email: str, password: str) -> tuple[User, SessionTokens | None]:
    """Create an active user after the validators pass, email it a verification link, and sign it in.

    The tokens are None when unverified accounts may not sign in
    (ACCOUNT_ALLOW_UNVERIFIED_LOGIN off). Raises ValidationError keyed by field with
    codes from UserErrorCode, and RateLimited when the client address has registered too
    often (counted first, outside the transaction: a refused registration still counts).
    """
    registration_count(request=request)
    with transaction.atomic():
        username, email = _clean_registration(username=username, email=email, password=password)
        try:
            # A savepoint: a lost race leaves the outer transaction usable to tell which field.
            with transaction.atomic():
                user = User.objects.create_user(username=username, email=email, password=password)
        except IntegrityError:
            # Another registration committed the same username or email between our check
            # and our insert; the database refused the second one. Say which, as a field error.
            field = "email" if email_taken(email) else "username"
            raise ValidationError({field: taken(field)}) from None
        verification_send(user=user, email=user.email)
        tokens = sign_in(user, request) if settings.ACCOUNT_ALLOW_UNVERIFIED_LOGIN else None
        auth_event_record(
            kind=AuthEventKind.REGISTERED,
            request=request,
            user=user,
            session_id=tokens.payload["sid"] if tokens is not None else None,
        )
    return user, tokens


def account_verify(*, request, token: str) -> User:
    """Confirm the address a verification link was sent to; return the account.

    For a new account this sets `is_email_verified`. For an email change (updateAccount)
    the confirmed address replaces the old one only now. Raises ValidationError:
    `token` INVALID_TOKEN for a link that is unknown, used, expired or superseded, and
    UNIQUE when the new address was taken by another account in the meantime.
    """
    account_token_limits(request=request)
    with transaction.atomic():
        row = account_token_use(
            token=token, purposes=(AccountTokenPurpose.VERIFY_EMAIL, AccountTokenPurpose.CHANGE_EMAIL)
        )
        user = row.user
        changed = row.purpose == AccountTokenPurpose.CHANGE_EMAIL and row.email != user.email
        if changed:
            if email_taken(row.email, exclude=user):
                raise ValidationError({"token": taken("email")})
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
            raise ValidationError({"token": taken("email")}) from None
        AccountToken.objects.filter(user=user, purpose=row.purpose, used_at__isnull=True).delete()
        kind = AuthEventKind.EMAIL_CHANGED if changed else AuthEventKind.EMAIL_VERIFIED
        auth_event_record(kind=kind, request=request, user=user)
    return user


def after_response_for_address(*, request, email: str, job, name: str) -> None:
    """Validate and count a request about an address, and leave everything else to `job`.

    The request only checks the address's form and counts the rate limits (per client
    and per recipient, whether or not an account exists); `job(email, facts)` looks the
    account up and acts after the response, so every address costs the request the same.
    """
    canonical = canonical_email_field(email)
    account_email_limits(request=request, recipient=canonical)
    facts = request_facts(request)
    run_after_commit(lambda: job(canonical, facts), name=name)


def account_verification_resend(*, request, email: str) -> None:
    """Send a new verification link if `email` names an active, unverified account.

    Answers the same, with the same work in the request, whether or not it does: the
    lookup, the token and the mail happen after the response (see accounts.mail).
    Raises ValidationError for a malformed address and RateLimited when the client or
    the recipient has had enough.
    """
    after_response_for_address(request=request, email=email, job=_verification_resend, name="verification resend")


@transaction.atomic
def _verification_resend(email: str, facts: dict) -> None:
    # Read under the account's lock: a deletion, deactivation or email change that commits
    # meanwhile is seen, and none can remove the row the new link will refer to.
    user = (
        User.objects.select_for_update(no_key=True).filter(email=email, is_active=True, is_email_verified=False).first()
    )
    if user is not None:
        verification_send(user=user, email=user.email)
        auth_event_record(kind=AuthEventKind.EMAIL_VERIFICATION_SENT, facts=facts, user=user, identifier=email)
