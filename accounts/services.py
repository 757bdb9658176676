"""The account rules that write: registration and sign-in. Nothing else writes accounts."""

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.client import address_key, client_address
from accounts.error_codes import UserErrorCode
from accounts.exceptions import InvalidCredentials
from accounts.models import User
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import email_taken, user_get_by_login, username_taken
from accounts.tokens import IssuedTokens, access_token_issue
from accounts.validators import canonical_email, canonical_username, login_key


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
def user_register(*, request, username: str, email: str, password: str) -> tuple[User, IssuedTokens]:
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
    return user, _sign_in(user)


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
) -> tuple[User, IssuedTokens]:
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
    return user, _sign_in(user)


def _sign_in(user: User) -> IssuedTokens:
    """Record the login and issue the access token."""
    user.last_login = timezone.now()
    User.objects.filter(pk=user.pk).update(last_login=user.last_login)
    return access_token_issue(user=user)
