"""Canonical forms and validators for identifiers and passwords.

Emails and usernames are canonicalised one way, here, and every path (register, login,
lookups, uniqueness, the admin, createsuperuser) goes through these functions.
"""

import ipaddress
import re
import socket
import unicodedata
from functools import lru_cache

import idna
from django.conf import settings
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from accounts.error_codes import UserErrorCode
from accounts.mail import mail_recipient

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path.
USERNAME_MAX_LENGTH = 150
USER_AGENT_MAX_LENGTH = 512
# The domain of the placeholder addresses that ACCOUNT_DELETION=deactivate writes
# (`deleted-<id>@deleted`): refused even where local domains are allowed, so no
# registration can take one.
DELETED_EMAIL_DOMAIN = "deleted"

_EMAIL_LOCAL_PART = re.compile(r"[a-z0-9#$&'*+/=?^_`{|}~-]+(?:\.[a-z0-9#$&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

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

    Only addresses that Django's mail layer sends to exactly as stored are accepted: the
    SMTP recipient (RCPT TO) and the To header of every account mail are this string. So the
    local part is a plain dot-atom (no quoted strings, comments, display names, brackets,
    lists, whitespace or backslashes, which Python's address parser reads its own way), with
    no RFC 2047 encoded-word (`=?utf-8?q?victim?=` is decoded into `victim`) and no source
    route (`%`, `!`, which relays may follow to another mailbox). The domain is a public DNS
    name of two labels or more; a single-label name (`localhost`) or an address literal
    (`[127.0.0.1]`, `[IPv6:::1]`) only with EMAIL_ALLOW_LOCAL_DOMAINS, and a bare IP
    (`127.0.0.1`) never: RFC 5321 writes IPs only as literals.

    Raises ValidationError (INVALID, TOO_LONG) for anything that is not such an address.
    """
    # Memoised: a sign-in reads the address three times (the account, its budget, the audit
    # trail), and the checks below cost about 0.1 ms each. The key holds the settings they
    # read; only addresses that pass are kept, at most 4,096 of them (about 1 MB).
    return _canonical_email(value, settings.EMAIL_ALLOW_LOCAL_DOMAINS, settings.DEFAULT_CHARSET)


@lru_cache(maxsize=4096)
def _canonical_email(value: str, allow_local_domains: bool, charset: str) -> str:
    del allow_local_domains, charset  # read from the settings below; here they key the cache
    value = value.strip()
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"Use at most {EMAIL_MAX_LENGTH} characters for an email address.", code=UserErrorCode.TOO_LONG.value
        )
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or has_control_characters(value):
        raise _invalid_email()
    local = local.lower()
    # A dot-atom of RFC 5322's atext, less "%" and "!"; "=?" starts an encoded-word anywhere.
    if not _EMAIL_LOCAL_PART.fullmatch(local) or "=?" in local:
        raise _invalid_email()
    domain = _email_address_literal(domain) if domain.startswith("[") else _email_domain_name(domain)
    canonical = f"{local}@{domain}"
    if len(canonical) > EMAIL_MAX_LENGTH:
        raise _invalid_email()
    if "." in domain and not domain.startswith("["):
        # Django's own rules on top (an alphabetic top-level domain, label lengths).
        _email_validator(canonical)
    # Whatever the rules above let through, Django must address the mail to exactly this
    # string: a newer Python or Django that reads something differently is refused here
    # rather than sending someone else's mail.
    if mail_recipient(canonical) != (canonical, canonical):
        raise _invalid_email()
    return canonical


def _invalid_email() -> ValidationError:
    return ValidationError("Enter a valid email address.", code=UserErrorCode.INVALID.value)


def _require_local_domains_allowed() -> None:
    if not settings.EMAIL_ALLOW_LOCAL_DOMAINS:
        raise ValidationError(
            "Enter an address on an internet domain, not a local host name or an IP address.",
            code=UserErrorCode.INVALID.value,
        )


def _email_domain_name(domain: str) -> str:
    """Return a domain name in its stored form (ASCII, lowercase); raise ValidationError (INVALID)."""
    if not domain.isascii():
        try:
            # UTS #46 non-transitional, as browsers and registries do: IDNA 2003 (Python's
            # codec) would map `straße.de` onto `strasse.de`, someone else's domain.
            domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise _invalid_email() from None
    domain = domain.lower()
    labels = domain.split(".")
    if not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise _invalid_email()
    for label in labels:
        # An A-label must be the one encoding of a valid name, so one domain has one stored form.
        if label.startswith("xn--"):
            try:
                valid = idna.encode(idna.decode(label)).decode("ascii") == label
            except (idna.IDNAError, UnicodeError):
                valid = False
            if not valid:
                raise _invalid_email()
    if len(labels) == 1:
        if domain == DELETED_EMAIL_DOMAIN or _is_ipv4(domain):
            raise _invalid_email()
        _require_local_domains_allowed()
    return domain


def _email_address_literal(domain: str) -> str:
    """Return an RFC 5321 address literal in its stored form, `[1.2.3.4]` or `[ipv6:...]`."""
    inner = domain[1:-1] if domain.endswith("]") else ""
    try:
        if inner[:5].lower() == "ipv6:" and "%" not in inner:
            literal = f"[ipv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        else:
            literal = f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise _invalid_email() from None
    _require_local_domains_allowed()
    return literal


def _is_ipv4(name: str) -> bool:
    """Return whether a resolver would read `name` as an IPv4 address (`2130706433`, `0x7f000001`)."""
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


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
