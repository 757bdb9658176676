"""Input checks shared by the services."""

from django.core.exceptions import ValidationError

from accounts.error_codes import UserErrorCode
from accounts.models import User
from accounts.validators import canonical_email


def required(value: str | None, message: str) -> str:
    """Return `value`; raise ValidationError (REQUIRED) when it is missing or blank."""
    if value is None or not value.strip():
        raise ValidationError(message, code=UserErrorCode.REQUIRED.value)
    return value


def taken(field: str) -> ValidationError:
    """Return the UNIQUE error of `field`, with the model's own message."""
    return ValidationError(User._meta.get_field(field).error_messages["unique"], code=UserErrorCode.UNIQUE.value)


def canonical_email_field(email: str | None, field: str = "email") -> str:
    """Return the canonical form of an address argument; raise ValidationError keyed by `field`."""
    try:
        return canonical_email(required(email, "Enter an email address."))
    except ValidationError as exc:
        raise ValidationError({field: exc}) from None
