"""Access tokens: short-lived HS256 JWTs, issued and verified against an allow-list.

django-graphql-jwt's settings (GRAPHQL_JWT) hold the algorithm, key, lifetimes, issuer
and audience, and its handler settings point here, so its helpers and ours agree. What
the library leaves out (RFC 8725) is added: a `kid` per signing key for rotation, a
header allow-list, required and type-checked claims, an exact audience, a token type,
and refusal of tokens whose lifetime or issue time is absurd.
"""

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache

import jwt
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from graphql_jwt.settings import jwt_settings

from accounts.exceptions import TokenExpired, TokenInvalid

ACCESS = "access"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti", "iss", "aud", "token_type")
ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
# Three base64url segments; anything else is refused before a byte is decoded.
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SUBJECT = re.compile(r"[1-9][0-9]{0,18}")
MAX_USER_ID = 2**63 - 1  # the largest primary key a database bigint holds
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    subject: str
    session_id: str | None
    jti: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class IssuedTokens:
    """What a sign-in hands to the client."""

    token: str
    payload: dict
    refresh_expires_in: int

    def as_payload(self) -> dict:
        return {"token": self.token, "payload": self.payload, "refresh_expires_in": self.refresh_expires_in}


def key_id(key: str) -> str:
    """Return the public id of a signing key: a short digest, useless for recovering it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@cache
def _verification_keys() -> dict[str, str]:
    keys = [jwt_settings.JWT_SECRET_KEY, *settings.GATEHOUSE["JWT_PREVIOUS_SIGNING_KEYS"]]
    return {key_id(key): key for key in keys if key}


@receiver(setting_changed)
def _reset_keys(*, setting, **kwargs):
    if setting in {"GRAPHQL_JWT", "GATEHOUSE"}:
        _verification_keys.cache_clear()


def jwt_payload(user, context=None, *, session_id: str | None = None) -> dict:
    """Return the claims of a new access token for `user` (django-graphql-jwt's payload handler)."""
    now = int(time.time())
    payload = {
        # The primary key, never the email: an email change must not move a token.
        "sub": str(user.pk),
        "iat": now,
        "exp": now + int(jwt_settings.JWT_EXPIRATION_DELTA.total_seconds()),
        "jti": secrets.token_urlsafe(16),
        "iss": jwt_settings.JWT_ISSUER,
        "aud": jwt_settings.JWT_AUDIENCE,
        "token_type": ACCESS,
    }
    if session_id is not None:
        payload["sid"] = session_id
    return payload


def jwt_payload_get_subject(payload: dict) -> str | None:
    """Return the claim that names the user (django-graphql-jwt's username handler)."""
    return payload.get("sub")


def jwt_encode(payload: dict, context=None) -> str:
    """Sign `payload` with the current key, naming the key in `kid`."""
    key = jwt_settings.JWT_SECRET_KEY
    return jwt.encode(payload, key, algorithm=jwt_settings.JWT_ALGORITHM, headers={"kid": key_id(key)})


def jwt_decode(token: str, context=None) -> dict:
    """Verify `token` and return its claims; raise TokenInvalid or TokenExpired.

    Every check that does not need the database happens here, so a forged or broken
    token never costs a query.
    """
    if not isinstance(token, str) or len(token) > settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]:
        raise TokenInvalid
    if not _JWS_COMPACT.fullmatch(token):
        raise TokenInvalid
    try:
        header = jwt.get_unverified_header(token)
    except Exception:  # any undecodable header is just an invalid token, never a 500
        raise TokenInvalid from None
    key = _header_key(header)
    leeway = jwt_settings.JWT_LEEWAY
    try:
        payload = jwt.decode(
            token,
            key,
            # Exactly the configured algorithm: no `none`, no substitution, no key confusion.
            algorithms=[jwt_settings.JWT_ALGORITHM],
            audience=jwt_settings.JWT_AUDIENCE,
            issuer=jwt_settings.JWT_ISSUER,
            leeway=leeway,
            # Expiry is checked below, after the claim types: PyJWT would coerce a bool or
            # string `exp` with int() and call a malformed token merely expired.
            options={
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                "verify_signature": True,
                "verify_exp": False,
            },
        )
    except Exception:  # every verification failure looks the same to the client
        raise TokenInvalid from None
    _check_claim_types(payload, leeway)
    if payload["exp"] <= time.time() - leeway:
        raise TokenExpired
    return payload


def _header_key(header) -> str:
    """Return the verification key a header names; refuse any header we did not write."""
    if not isinstance(header, dict) or not set(header) <= ALLOWED_HEADER_KEYS:
        # jwk, jku, x5u, x5c, crit and friends: a token never chooses its own key.
        raise TokenInvalid
    if header.get("alg") != jwt_settings.JWT_ALGORITHM or header.get("typ", "JWT") != "JWT":
        raise TokenInvalid
    key = _verification_keys().get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise TokenInvalid
    return key


def _check_claim_types(payload: dict, leeway: int) -> None:
    now = int(time.time())
    sub, jti, iat, exp = payload["sub"], payload["jti"], payload["iat"], payload["exp"]
    sid = payload.get("sid")
    if not (isinstance(sub, str) and _SUBJECT.fullmatch(sub) and int(sub) <= MAX_USER_ID):
        raise TokenInvalid
    if not (isinstance(jti, str) and _JTI.fullmatch(jti)):
        raise TokenInvalid
    if payload["token_type"] != ACCESS:
        raise TokenInvalid
    if sid is not None and not (isinstance(sid, str) and 0 < len(sid) <= 64):
        raise TokenInvalid
    for claim in (iat, exp):
        if type(claim) is not int:  # bool is an int to Python, not to us
            raise TokenInvalid
    lifetime = int(jwt_settings.JWT_EXPIRATION_DELTA.total_seconds())
    # Not yet issued, or living longer than any token we issue: forged or from a bad clock.
    if iat > now + leeway or exp - iat > lifetime or exp <= iat:
        raise TokenInvalid


def access_token_issue(*, user, session_id: str | None = None) -> IssuedTokens:
    """Return a signed access token for `user` with its claims."""
    payload = jwt_settings.JWT_PAYLOAD_HANDLER(user, session_id=session_id)
    token = jwt_settings.JWT_ENCODE_HANDLER(payload)
    refresh_expires_in = payload["iat"] + int(jwt_settings.JWT_REFRESH_EXPIRATION_DELTA.total_seconds())
    return IssuedTokens(token=token, payload=payload, refresh_expires_in=refresh_expires_in)


def access_token_verify(token: str) -> AccessClaims:
    """Return the verified claims of an access token; raise TokenInvalid or TokenExpired."""
    payload = jwt_settings.JWT_DECODE_HANDLER(token)
    return AccessClaims(
        subject=payload["sub"],
        session_id=payload.get("sid"),
        jti=payload["jti"],
        issued_at=payload["iat"],
        expires_at=payload["exp"],
    )
