"""Canonical forms and validators for identifiers and passwords.

Emails and usernames are canonicalised one way, here, and every path (register, login,
lookups, uniqueness, the admin, createsuperuser) goes through these functions.
"""

import unicodedata

import idna
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from accounts.error_codes import UserErrorCode

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path.
USERNAME_MAX_LENGTH = 150
USER_AGENT_MAX_LENGTH = 512

_email_validator = EmailValidator(message="Enter a valid email address.", code=UserErrorCode.INVALID.value)
username_validator = ASCIIUsernameValidator(
    message="Use only English letters, digits and @ . + - _ in a username.",
    code=UserErrorCode.INVALID.value,
)


def has_control_characters(value: str) -> bool:
    """Return whether `value` holds NUL or any other control or format character."""
    return any(unicodedata.category(char) in {"Cc", "Cf", "Cs"} for char in value)


def printable_text(value: str | None, max_length: int) -> str:
    """Return client-chosen text fit to store and display: no control characters, bounded.

    Control and format characters are dropped (NUL is refused by Postgres, the others
    break log lines and admin pages), and the text is cut at `max_length`.
    """
    if not value:
        return ""
    text = value[: max_length * 2]
    text = "".join(char for char in text if unicodedata.category(char) not in {"Cc", "Cf", "Cs"})
    return text.strip()[:max_length]


def clean_user_agent(value: str | None) -> str:
    """Return a client's User-Agent as recorded on a session or an event: printable and bounded."""
    return printable_text(value, USER_AGENT_MAX_LENGTH)


def canonical_email(value: str) -> str:
    """Return the stored form of an email address: trimmed and lowercased in full.

    The domain is converted to its ASCII form first (IDNA, UTS #46 non-transitional), so the whole address is ASCII
    and lowercasing means the same thing in Python, SQLite and Postgres. Django's
    `normalize_email` lowercases only the domain, which lets `A@x.io` and `a@x.io` be two
    accounts; mail providers treat them as one mailbox.

    Raises ValidationError (INVALID, TOO_LONG) for anything that is not an address.
    """
    value = value.strip()
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"Use at most {EMAIL_MAX_LENGTH} characters for an email address.", code=UserErrorCode.TOO_LONG.value
        )
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or has_control_characters(value):
        raise ValidationError("Enter a valid email address.", code=UserErrorCode.INVALID.value)
    if not domain.isascii():
        try:
            # UTS #46 non-transitional, as browsers and registries do: IDNA 2003 (Python's
            # codec) would map `straße.de` onto `strasse.de`, someone else's domain.
            domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValidationError("Enter a valid email address.", code=UserErrorCode.INVALID.value) from None
    canonical = f"{local}@{domain}".lower()
    if not canonical.isascii() or len(canonical) > EMAIL_MAX_LENGTH:
        raise ValidationError("Enter a valid email address.", code=UserErrorCode.INVALID.value)
    _email_validator(canonical)
    return canonical


def canonical_username(value: str) -> str:
    """Return the stored form of a username: NFKC-normalised, then checked.

    Only ASCII letters, digits and @ . + - _ are allowed after normalisation, so that
    lookalike letters from other scripts cannot impersonate an account and uniqueness
    ignoring case is the same rule in every database.

    Raises ValidationError (REQUIRED, INVALID, TOO_LONG).
    """
    if has_control_characters(value):
        raise ValidationError("Control characters are not allowed in a username.", code=UserErrorCode.INVALID.value)
    value = unicodedata.normalize("NFKC", value).strip()
    if not value:
        raise ValidationError("Choose a username.", code=UserErrorCode.REQUIRED.value)
    if len(value) > USERNAME_MAX_LENGTH:
        raise ValidationError(
            f"Use at most {USERNAME_MAX_LENGTH} characters for a username.", code=UserErrorCode.TOO_LONG.value
        )
    username_validator(value)
    return value


class MaximumLengthValidator:
    """Refuse passwords longer than `max_length` characters.

    Long passphrases are welcome, but hashing (and the similarity validator) should not
    be handed megabytes: a cap keeps a single request from costing seconds of CPU.
    """

    def __init__(self, max_length: int = 1024):
        self.max_length = max_length

    def validate(self, password, user=None):
        if len(password) > self.max_length:
            raise ValidationError(
                "This password is too long. It must contain at most %(max_length)d characters.",
                code=UserErrorCode.PASSWORD_TOO_LONG.value,
                params={"max_length": self.max_length},
            )

    def get_help_text(self):
        return f"Your password must contain at most {self.max_length} characters."


def login_key(*, email: str | None, username: str | None) -> str:
    """Return the canonical form of a login identifier (for per-account counting).

    An identifier that cannot name an account is folded instead, so that spelling
    variants of the same garbage still share one key.
    """
    try:
        if email is not None:
            return f"email:{canonical_email(email)}"
        return f"username:{canonical_username(username or '').lower()}"
    except ValidationError:
        return "raw:" + " ".join(unicodedata.normalize("NFKC", email or username or "").lower().split())
