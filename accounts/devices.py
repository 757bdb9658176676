"""Device tokens: OWASP's "device cookie" defence against lockout by guessing.

https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies

A client that signed in successfully gets a device token, bound to that account. Its
later sign-ins to that account present it and are counted against a budget of their own
(keyed by the device id), so failures from anywhere else never lock the owner's device
out; a stolen token only gives its holder that one device's budget, and only for that
account. The token is signed with Django's signing (SECRET_KEY, with a salt of its own)
and carries the account's primary key, a random device id and the time it was issued:
no table, and checking one costs no query.
"""

import secrets

from django.conf import settings
from django.core import signing

_SALT = "gatehouse.accounts.device-token"
_SEPARATOR = "."
# A genuine token is under 100 characters; anything much longer is refused unread.
MAX_TOKEN_LENGTH = 256


def device_token_issue(*, user) -> str:
    """Return a new device token for `user`, with a fresh random device id."""
    device_id = secrets.token_urlsafe(16)
    return signing.TimestampSigner(salt=_SALT).sign(f"{user.pk}{_SEPARATOR}{device_id}")


def device_id_for(token: str | None, *, user) -> str | None:
    """Return the device id of `token` if it is a valid, unexpired device token of `user`, else None.

    Never raises and never queries: anything missing, malformed, tampered with, expired,
    oversized or issued for another account is None.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if user is None or getattr(user, "pk", None) is None:
        return None
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=settings.DEVICE_TOKEN_LIFETIME)
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        return None
    account, separator, device_id = value.partition(_SEPARATOR)
    if not separator or not device_id or account != str(user.pk):
        return None
    return device_id
