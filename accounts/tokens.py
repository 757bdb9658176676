"""Tokens: short-lived access JWTs, and opaque refresh tokens stored as digests.

django-graphql-jwt's settings (GRAPHQL_JWT) hold the algorithm, key, lifetimes, issuer
and audience, and its handler settings point here, so its helpers and ours agree. The
keys (an HMAC secret, or an RS256/ES256/EdDSA key pair) are loaded by accounts.keys. What
the library leaves out (RFC 8725) is added: a `kid` per signing key for rotation, a
header allow-list, required and type-checked claims, an exact audience, a token type,
and refusal of tokens whose lifetime or issue time is absurd. Every access token names its
session (`sid`), which is what makes logout reach access tokens.

Refresh tokens are not JWTs: 256 random bits, base64url, shown to the client once and
stored only as a SHA-256 digest (see accounts.models.RefreshToken). The two shapes
cannot be mistaken for each other: a refresh token has no dots, an access token does.
"""

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import jwt
import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from graphql_jwt.settings import jwt_settings

from accounts.exceptions import TokenExpired, TokenInvalid
from accounts.keys import key_id as key_id  # re-exported: the HMAC `kid`, where it always was
from accounts.keys import key_set

ACCESS = "access"


class OtherTokenType(TokenInvalid):
    """A token we signed, of another type than the one asked for (TOKEN_INVALID to the client).

    BearerAuthentication verifies a token as a user's first and, only on this error, as a
    service token's: a forged or broken token costs one verification, never two.
    """


# The claims every token carries, whatever its type, and those of a user's access token.
COMMON_CLAIMS = ("sub", "iat", "exp", "jti", "iss", "aud", "token_type")
REQUIRED_CLAIMS = (*COMMON_CLAIMS, "sid")
ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
# Three base64url segments; anything else is refused before a byte is decoded.
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SUBJECT = re.compile(r"[1-9][0-9]{0,18}")
MAX_USER_ID = 2**63 - 1  # the largest primary key a database bigint holds
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SID = re.compile(r"[0-9a-f]{32}")  # a session's UUID, as hex
OPAQUE_TOKEN_BYTES = 32
_OPAQUE_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes in unpadded base64url


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    subject: str
    session_id: str
    jti: str
    issued_at: int
    expires_at: int
    payload: dict


@dataclass(frozen=True)
class SessionTokens:
    """What a sign-in or a refresh hands to the client."""

    token: str
    payload: dict
    refresh_token: str
    # When the session ends unless it is refreshed before (the earlier of its idle and
    # absolute expiry).
    refresh_expires_at: datetime
    # A sign-in's new device token (see accounts.devices); None for a refresh.
    device_token: str | None = None

    @property
    def refresh_expires_in(self) -> int:
        """Return `refresh_expires_at` as Unix time (django-graphql-jwt's `refreshExpiresIn`)."""
        return int(self.refresh_expires_at.timestamp())

    def as_payload(self) -> dict:
        return {
            "token": self.token,
            "payload": self.payload,
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at,
        }


HASURA_CLAIMS = "https://hasura.io/jwt/claims"


def jwt_payload(user, context=None, *, session_id: str | None = None, not_after: int | None = None) -> dict:
    """Return the claims of a new access token for `user` (django-graphql-jwt's payload handler).

    `not_after` caps the expiry (the session's own end). Without `session_id` (the
    library's `get_token` helper) the token names no session and is refused on use.
    """
    now = int(time.time())
    expires = now + int(jwt_settings.JWT_EXPIRATION_DELTA.total_seconds())
    payload = {
        # The primary key, never the email: an email change must not move a token.
        "sub": str(user.pk),
        "iat": now,
        "exp": expires if not_after is None else max(now + 1, min(expires, not_after)),
        "jti": secrets.token_urlsafe(16),
        "iss": jwt_settings.JWT_ISSUER,
        "aud": jwt_settings.JWT_AUDIENCE,
        "token_type": ACCESS,
    }
    if session_id is not None:
        payload["sid"] = session_id
    preset = settings.JWT_CLAIMS_PRESET
    if preset == "hasura":
        payload[HASURA_CLAIMS] = hasura_claims(user)
    elif preset:
        raise ImproperlyConfigured(f"JWT_CLAIMS_PRESET must be empty or hasura, not {preset!r}.")
    return payload


def hasura_claims(user) -> dict:
    """Return Hasura's namespaced claims for `user` (JWT_CLAIMS_PRESET=hasura).

    Every user has the role `user` (the default); staff add `staff`, and each Django group
    the user belongs to is a role of the same name, so Hasura's permissions can follow the
    groups managed in the admin. The claims are fixed when the token is issued: a group
    change reaches the gateway at the next refresh, within the access token's lifetime.
    """
    roles = ["user"]
    if user.is_staff:
        roles.append("staff")
    for name in sorted(user.groups.values_list("name", flat=True)):
        if name not in roles:
            roles.append(name)
    return {"x-hasura-user-id": str(user.pk), "x-hasura-default-role": "user", "x-hasura-allowed-roles": roles}


def jwt_payload_get_subject(payload: dict) -> str | None:
    """Return the claim that names the user (django-graphql-jwt's username handler)."""
    return payload.get("sub")


def jwt_encode(payload: dict, context=None) -> str:
    """Sign `payload` with the current key, naming the key in `kid`."""
    keys = key_set()
    return jwt.encode(payload, keys.signing_key, algorithm=keys.algorithm, headers={"kid": keys.signing_kid})


def jwt_decode(token: str, context=None) -> dict:
    """Verify a user's access token and return its claims; raise TokenInvalid or TokenExpired.

    django-graphql-jwt's decode handler. A user's token names its account by primary key
    (`sub`) and its session (`sid`); a token of any other type (a service token) is
    refused here, whatever its signature.
    """
    payload = jwt_verify(token, token_type=ACCESS, max_lifetime=int(jwt_settings.JWT_EXPIRATION_DELTA.total_seconds()))
    sub, sid = payload["sub"], payload.get("sid")
    if not (_SUBJECT.fullmatch(sub) and int(sub) <= MAX_USER_ID):
        raise TokenInvalid
    if not (isinstance(sid, str) and _SID.fullmatch(sid)):
        raise TokenInvalid
    return payload


def jwt_verify(token: str, *, token_type: str, max_lifetime: int) -> dict:
    """Verify a token we signed, of `token_type`, and return its claims; raise TokenInvalid or TokenExpired.

    What every token type shares: the signature by a key we publish or hold, the header,
    the exact issuer and audience, the claims every token carries (`sub` a string) and
    their types, an issue time not in the future and a lifetime of at most `max_lifetime`
    seconds. The caller checks its type's own claims.

    Every check that does not need the database happens here, so a forged or broken
    token never costs a query. The signature is checked by PyJWT's own algorithm object
    for exactly the configured algorithm, with the key the `kid` names among the keys
    accounts.keys loaded and prepared once (constant-time HMAC comparison; PyJWT's refusal
    of asymmetric keys as HMAC secrets; a token never picks the algorithm or the family);
    the compact form around it is read here: `jwt.decode` spent about 0.25 ms per token
    on this machine, mostly on a character-by-character alphabet check in Python that the
    regular expression below does in C, and on parsing the header twice.
    """
    if not isinstance(token, str) or len(token) > settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]:
        raise TokenInvalid
    if not _JWS_COMPACT.fullmatch(token):
        raise TokenInvalid
    header_segment, payload_segment, signature_segment = token.split(".")
    keys = key_set()
    key = _header_key(_json_segment(header_segment), keys)
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    # Exactly the configured algorithm: no `none`, no substitution, no key confusion.
    if not keys.verifier.verify(signing_input, key, _segment_bytes(signature_segment)):
        raise TokenInvalid
    payload = _json_segment(payload_segment)
    if not isinstance(payload, dict) or any(claim not in payload for claim in COMMON_CLAIMS):
        raise TokenInvalid
    # The exact issuer and audience (a single string, as strict_aud in PyJWT).
    if payload["iss"] != jwt_settings.JWT_ISSUER or payload["aud"] != jwt_settings.JWT_AUDIENCE:
        raise TokenInvalid
    if payload["token_type"] != token_type:
        # Signed by us, but another type of token: the caller may try the other verification.
        raise OtherTokenType
    leeway = jwt_settings.JWT_LEEWAY
    # Expiry is checked after the claim types: a bool or string `exp` is malformed, not
    # merely expired.
    _check_claim_types(payload, leeway, max_lifetime)
    # We never write `nbf`; honoured (as PyJWT does) if a token carries one.
    if "nbf" in payload and (type(payload["nbf"]) is not int or payload["nbf"] > time.time() + leeway):
        raise TokenInvalid
    if payload["exp"] <= time.time() - leeway:
        raise TokenExpired
    return payload


def _segment_bytes(segment: str) -> bytes:
    """Decode one base64url segment (its alphabet already checked); refuse a non-canonical one.

    As PyJWT does since GHSA-hxm8-2xgr-2p9m: a length no encoding produces, or unused
    trailing bits, would let one token be written several ways.
    """
    if len(segment) % 4 == 1:
        raise TokenInvalid
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode("ascii"):
        raise TokenInvalid
    return decoded


def _json_segment(segment: str):
    try:
        return orjson.loads(_segment_bytes(segment))
    except orjson.JSONDecodeError:
        raise TokenInvalid from None


def _header_key(header, keys):
    """Return the prepared verification key a header names; refuse any header we did not write."""
    if not isinstance(header, dict) or not set(header) <= ALLOWED_HEADER_KEYS:
        # jwk, jku, x5u, x5c, crit and friends: a token never chooses its own key.
        raise TokenInvalid
    if header.get("alg") != keys.algorithm or header.get("typ", "JWT") != "JWT":
        raise TokenInvalid
    key = keys.verification_keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise TokenInvalid
    return key


def _check_claim_types(payload: dict, leeway: int, max_lifetime: int) -> None:
    now = int(time.time())
    sub, jti, iat, exp = payload["sub"], payload["jti"], payload["iat"], payload["exp"]
    if not isinstance(sub, str):
        raise TokenInvalid
    if not (isinstance(jti, str) and _JTI.fullmatch(jti)):
        raise TokenInvalid
    for claim in (iat, exp):
        if type(claim) is not int:  # bool is an int to Python, not to us
            raise TokenInvalid
    # Not yet issued, or living longer than any token we issue: forged or from a bad clock.
    if iat > now + leeway or exp - iat > max_lifetime or exp <= iat:
        raise TokenInvalid


def access_token_issue(*, user, session) -> tuple[str, dict]:
    """Return a signed access token of `session` for `user`, and its claims.

    The token never outlives its session: its expiry is capped at the session's end.
    """
    payload = jwt_settings.JWT_PAYLOAD_HANDLER(
        user, session_id=session.id.hex, not_after=int(session.ends_at().timestamp())
    )
    return jwt_settings.JWT_ENCODE_HANDLER(payload), payload


def access_token_verify(token: str) -> AccessClaims:
    """Return the verified claims of an access token; raise TokenInvalid or TokenExpired."""
    payload = jwt_settings.JWT_DECODE_HANDLER(token)
    return AccessClaims(
        subject=payload["sub"],
        session_id=payload["sid"],
        jti=payload["jti"],
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        payload=payload,
    )


def opaque_token_generate() -> tuple[str, str]:
    """Return a new opaque token and the digest to store: 256 bits from the OS CSPRNG.

    Refresh tokens and the one-time tokens in account emails are both of this shape.
    """
    token = secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)
    return token, opaque_token_digest(token)


def opaque_token_digest(token) -> str:
    """Return the stored digest of an opaque token; raise TokenInvalid for any other shape.

    A JWT or any string we could not have issued is refused here, before a query. The
    tokens are 256 random bits, so a fast digest is as safe as a slow one and lets the
    row be found by an index.
    """
    if not isinstance(token, str) or not _OPAQUE_TOKEN.fullmatch(token):
        raise TokenInvalid
    return hashlib.sha256(token.encode()).hexdigest()


refresh_token_generate = opaque_token_generate
refresh_token_digest = opaque_token_digest
