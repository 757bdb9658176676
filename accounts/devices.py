"""Device tokens: OWASP's "device cookie" defence against lockout by guessing.

https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies

A client that signed in successfully gets a device token, bound to that account and to
its current password. Its later sign-ins to that account present it and are counted
against a budget of their own (keyed by the device id), so failures from anywhere else
never lock the owner's device out; a stolen token only gives its holder that one
device's budget, and only for that account. A sign-in that presents a valid token gets
a new token for the same device (with a fresh lifetime), never a new device: devices
cannot be multiplied by signing in through one. Any change of the password (a change,
a reset, an administrator) kills every device token of the account, as a new hash no
longer matches the one they were bound to. The token is signed with Django's signing
(SECRET_KEY, with a salt of its own) and carries the account's primary key, the device
id, a keyed digest of the password hash (useless for recovering it) and the time it was
issued: no table, and checking one costs no query.
"""

import secrets

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "gatehouse.accounts.device-token"
_SEPARATOR = "."
# A genuine token is under 100 characters; anything much longer is refused unread.
MAX_TOKEN_LENGTH = 256


def device_token_issue(*, user, device_id: str | None = None) -> str:
    """Return a device token for `user` and its current password: for `device_id`, else a new device."""
    device_id = device_id or secrets.token_urlsafe(16)
    return signing.TimestampSigner(salt=_SALT).sign(_SEPARATOR.join((str(user.pk), device_id, _password_state(user))))


def _password_state(user) -> str:
    """Return a keyed digest of the account's password hash: it changes with every password change."""
    return salted_hmac(_SALT, user.password or "", algorithm="sha256").hexdigest()[:24]


def device_id_for(token: str | None, *, user) -> str | None:
    """Return the device id of `token` if it is a valid, unexpired device token of `user`, else None.

    Never raises and never queries: anything missing, malformed, tampered with, expired,
    oversized, issued for another account or before the account's password last changed
    is None.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if user is None or getattr(user, "pk", None) is None:
        return None
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=settings.DEVICE_TOKEN_LIFETIME)
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        return None
    parts = value.split(_SEPARATOR)
    if len(parts) != 3:
        return None
    account, device_id, state = parts
    if not device_id or account != str(user.pk) or not constant_time_compare(state, _password_state(user)):
        return None
    return device_id
