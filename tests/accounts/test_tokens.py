"""Access tokens (accounts.tokens) and Bearer header parsing (accounts.authentication).

The hostile-token builders below (`FORGERIES`, `token_for`, ...) are shared with
tests/schema/test_authentication.py, which sends the same tokens over HTTP.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts.authentication import bearer_token_from_header
from accounts.exceptions import TokenExpired, TokenInvalid
from accounts.models import Session
from accounts.services import session_open
from accounts.tokens import (
    ACCESS,
    MAX_USER_ID,
    REQUIRED_CLAIMS,
    access_token_issue,
    access_token_verify,
    jwt_decode,
    key_id,
)

OTHER_KEY = "an-unrelated-jwt-signing-key-0123456789-abcdefghijklmnop"
MISSING = object()  # pass as a claim or header value to leave that entry out


# --- builders -------------------------------------------------------------------------


def signing_key() -> str:
    return settings.GRAPHQL_JWT["JWT_SECRET_KEY"]


def access_lifetime() -> int:
    return int(settings.GRAPHQL_JWT["JWT_EXPIRATION_DELTA"].total_seconds())


def now() -> int:
    return int(time.time())


def b64(value) -> str:
    """Return the base64url segment of `value`: raw bytes as they are, anything else as JSON."""
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _without_missing(entries: dict) -> dict:
    return {name: value for name, value in entries.items() if value is not MISSING}


def valid_claims(sub: str, /, **changes) -> dict:
    """Return the claims of a valid access token for `sub`, with `changes` applied."""
    issued = now()
    claims = {
        "sub": sub,
        "iat": issued,
        "exp": issued + 60,
        "jti": secrets.token_urlsafe(16),
        "iss": settings.GRAPHQL_JWT["JWT_ISSUER"],
        "aud": settings.GRAPHQL_JWT["JWT_AUDIENCE"],
        "token_type": ACCESS,
        "sid": uuid.uuid4().hex,
    }
    return _without_missing({**claims, **changes})


def valid_header(**changes) -> dict:
    """Return the header Gatehouse writes for the current key, with `changes` applied."""
    return _without_missing({"alg": "HS256", "typ": "JWT", "kid": key_id(signing_key()), **changes})


def sign(claims: dict, *, key: str | None = None, algorithm: str = "HS256", headers: dict | None = None) -> str:
    """Sign `claims` with PyJWT, naming `key` in `kid` unless `headers` are given."""
    key = key or signing_key()
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": key_id(key)} if headers is None else headers)


def hand_signed(header, payload, *, key: str | None = None, digest=hashlib.sha256) -> str:
    """Build a compact JWS by hand: any header and payload (JSON values or raw bytes), HMAC-signed."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new((key or signing_key()).encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def token_for(sub: str, /, **claim_changes) -> str:
    """Return a correctly signed token for `sub` whose claims carry `claim_changes`."""
    return hand_signed(valid_header(), valid_claims(sub, **claim_changes))


def with_header(sub: str, **header_changes) -> str:
    """Return a token for `sub`, signed with the right key, whose header carries `header_changes`."""
    return hand_signed(valid_header(**header_changes), valid_claims(sub))


def strip_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def flip_first_signature_char(token: str) -> str:
    # The first character of a segment carries six real bits (the last may be only padding).
    head, signature = token.rsplit(".", 1)
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def swap_signature(sub: str) -> str:
    # The signature of one genuine token on the header and payload of another.
    first, second = token_for(sub), token_for(sub)
    return f"{first.rsplit('.', 1)[0]}.{second.rsplit('.', 1)[1]}"


# Every entry builds, for a user's `sub`, a token that must be TOKEN_INVALID. Each breaks one
# thing of a token that would otherwise be accepted (test_the_builders_make_a_valid_token).
FORGERIES = {
    # alg "none" in any spelling, with or without a signature segment
    **{
        f"alg {alg} no signature": lambda sub, alg=alg: strip_signature(
            hand_signed(valid_header(alg=alg), valid_claims(sub))
        )
        for alg in ("none", "None", "NONE", "nOnE")
    },
    **{
        f"alg {alg} with HMAC signature": lambda sub, alg=alg: hand_signed(valid_header(alg=alg), valid_claims(sub))
        for alg in ("none", "None", "NONE", "nOnE")
    },
    "alg none by PyJWT": lambda sub: jwt.encode(
        valid_claims(sub), None, algorithm="none", headers={"kid": key_id(signing_key())}
    ),
    "alg missing": lambda sub: with_header(sub, alg=MISSING),
    "signature stripped": lambda sub: strip_signature(sign(valid_claims(sub))),
    "signature altered": lambda sub: flip_first_signature_char(sign(valid_claims(sub))),
    "signature of another token": swap_signature,
    # algorithm substitution and key confusion
    "HS384 with the key": lambda sub: sign(valid_claims(sub), algorithm="HS384"),
    # (by hand: PyJWT warns that the test key is short for SHA-512)
    "HS512 with the key": lambda sub: hand_signed(valid_header(alg="HS512"), valid_claims(sub), digest=hashlib.sha512),
    "HS384 header, HS256 signature": lambda sub: with_header(sub, alg="HS384"),
    "RS256 header, HMAC signature": lambda sub: with_header(sub, alg="RS256"),
    "ES256 header, HMAC signature": lambda sub: with_header(sub, alg="ES256"),
    "wrong key, its own kid": lambda sub: sign(valid_claims(sub), key=OTHER_KEY),
    "wrong key, the right kid": lambda sub: sign(
        valid_claims(sub), key=OTHER_KEY, headers={"kid": key_id(signing_key())}
    ),
    # keys and extensions the token would choose itself (all correctly signed)
    "header jwk": lambda sub: with_header(sub, jwk={"kty": "oct", "k": b64(OTHER_KEY.encode())}),
    "header jwk, signed with it": lambda sub: hand_signed(
        valid_header(jwk={"kty": "oct", "k": b64(OTHER_KEY.encode())}), valid_claims(sub), key=OTHER_KEY
    ),
    "header jku": lambda sub: with_header(sub, jku="https://attacker.example/jwks.json"),
    "header x5u": lambda sub: with_header(sub, x5u="https://attacker.example/cert.pem"),
    "header x5c": lambda sub: with_header(sub, x5c=[b64(b"not a certificate")]),
    "header x5t": lambda sub: with_header(sub, x5t=b64(b"thumbprint")),
    "header crit": lambda sub: with_header(sub, crit=["exp"]),
    "header crit of a supported extension": lambda sub: with_header(sub, crit=["b64"]),
    "header b64 false": lambda sub: with_header(sub, b64=False, crit=["b64"]),
    "header cty": lambda sub: with_header(sub, cty="JWT"),
    "header zip": lambda sub: with_header(sub, zip="DEF"),
    "header unknown entry": lambda sub: with_header(sub, foo="bar"),
    "kid unknown": lambda sub: with_header(sub, kid=key_id(OTHER_KEY)),
    "kid missing": lambda sub: with_header(sub, kid=MISSING),
    "kid empty": lambda sub: with_header(sub, kid=""),
    "kid not a string": lambda sub: with_header(sub, kid=1),
    "kid is the key itself": lambda sub: with_header(sub, kid=signing_key()),
    "typ at+jwt": lambda sub: with_header(sub, typ="at+jwt"),
    "typ JWE": lambda sub: with_header(sub, typ="JWE"),
    "typ null": lambda sub: with_header(sub, typ=None),
    # malformed structure
    "header not JSON": lambda sub: hand_signed(b"not json", valid_claims(sub)),
    "header a JSON list": lambda sub: hand_signed(["HS256"], valid_claims(sub)),
    "header a JSON string": lambda sub: hand_signed("HS256", valid_claims(sub)),
    "header JSON null": lambda sub: hand_signed(None, valid_claims(sub)),
    "header invalid UTF-8": lambda sub: hand_signed(b"\xff\xfe{}", valid_claims(sub)),
    "payload not JSON": lambda sub: hand_signed(valid_header(), b"not json"),
    "payload a JSON list": lambda sub: hand_signed(valid_header(), [valid_claims(sub)]),
    "payload a JSON string": lambda sub: hand_signed(valid_header(), sub),
    "payload a JSON number": lambda sub: hand_signed(valid_header(), int(sub)),
    "payload JSON null": lambda sub: hand_signed(valid_header(), None),
    "payload invalid UTF-8": lambda sub: hand_signed(valid_header(), b"\xff\xfe{}"),
    "random base64 segments": lambda sub: ".".join(secrets.token_urlsafe(24) for _ in range(3)),
    "segments of impossible base64 length": lambda sub: "a.b.c",
    "2 segments": lambda sub: sign(valid_claims(sub)).rsplit(".", 1)[0],
    "4 segments": lambda sub: sign(valid_claims(sub)) + ".e30",
    "5 segments (JWE shape)": lambda sub: sign(valid_claims(sub)) + ".e30.e30",
    "trailing dot": lambda sub: sign(valid_claims(sub)) + ".",
    "leading dot": lambda sub: "." + sign(valid_claims(sub)),
    "padding characters": lambda sub: sign(valid_claims(sub)) + "==",
    "standard base64 characters": lambda sub: sign(valid_claims(sub)).replace("-", "+").replace("_", "/") + "+/",
    "non-ASCII characters": lambda sub: "é" + sign(valid_claims(sub)),
    "empty": lambda sub: "",
    "dots only": lambda sub: "..",
    # required claims: each one missing, or null
    **{f"{claim} missing": lambda sub, claim=claim: token_for(sub, **{claim: MISSING}) for claim in REQUIRED_CLAIMS},
    **{f"{claim} null": lambda sub, claim=claim: token_for(sub, **{claim: None}) for claim in REQUIRED_CLAIMS},
    # sub: a positive decimal string without leading zeros that fits a bigint
    "sub an int": lambda sub: token_for(sub, sub=int(sub)),
    "sub a list": lambda sub: token_for(sub, sub=[sub]),
    "sub abc": lambda sub: token_for(sub, sub="abc"),
    "sub empty": lambda sub: token_for(sub, sub=""),
    "sub 0": lambda sub: token_for(sub, sub="0"),
    "sub negative": lambda sub: token_for(sub, sub=f"-{sub}"),
    "sub with plus sign": lambda sub: token_for(sub, sub=f"+{sub}"),
    "sub with leading zero": lambda sub: token_for(sub, sub=f"0{sub}"),
    "sub with spaces": lambda sub: token_for(sub, sub=f" {sub} "),
    "sub with trailing newline": lambda sub: token_for(sub, sub=f"{sub}\n"),
    "sub a decimal": lambda sub: token_for(sub, sub=f"{sub}.0"),
    "sub in exponent form": lambda sub: token_for(sub, sub=f"{sub}e0"),
    "sub in Arabic-Indic digits": lambda sub: token_for(sub, sub="\u0661"),
    "sub 25 digits": lambda sub: token_for(sub, sub="1" * 25),
    "sub past the bigint range": lambda sub: token_for(sub, sub=str(MAX_USER_ID + 1)),
    "sub an email": lambda sub: token_for(sub, sub="alice@example.com"),
    # jti: a URL-safe string of 16 to 64 characters
    "jti 15 characters": lambda sub: token_for(sub, jti="a" * 15),
    "jti 65 characters": lambda sub: token_for(sub, jti="a" * 65),
    "jti empty": lambda sub: token_for(sub, jti=""),
    "jti an int": lambda sub: token_for(sub, jti=12345678901234567890),
    "jti with a slash": lambda sub: token_for(sub, jti="a" * 16 + "/"),
    "jti with padding": lambda sub: token_for(sub, jti="a" * 16 + "="),
    # iat and exp: ints, nothing else
    "iat a string": lambda sub: token_for(sub, iat="yesterday"),
    "iat a numeric string": lambda sub: token_for(sub, iat=str(now())),
    "iat a float": lambda sub: token_for(sub, iat=now() + 0.5),
    "iat a bool": lambda sub: token_for(sub, iat=True),
    "exp a string": lambda sub: token_for(sub, exp="tomorrow"),
    "exp a numeric string": lambda sub: token_for(sub, exp=str(now() + 60)),
    "exp a float": lambda sub: token_for(sub, exp=now() + 60.5),
    "exp a list": lambda sub: token_for(sub, exp=[now() + 60]),
    "exp Infinity": lambda sub: token_for(sub, exp=float("inf")),
    "exp NaN": lambda sub: token_for(sub, exp=float("nan")),
    # iss and aud: exactly the configured strings
    "iss wrong": lambda sub: token_for(sub, iss="https://attacker.example"),
    "iss another case": lambda sub: token_for(sub, iss=settings.GRAPHQL_JWT["JWT_ISSUER"].upper()),
    "iss a list": lambda sub: token_for(sub, iss=[settings.GRAPHQL_JWT["JWT_ISSUER"]]),
    "aud wrong": lambda sub: token_for(sub, aud="another-service"),
    "aud another case": lambda sub: token_for(sub, aud=settings.GRAPHQL_JWT["JWT_AUDIENCE"].upper()),
    "aud empty": lambda sub: token_for(sub, aud=""),
    "aud a list with the audience": lambda sub: token_for(sub, aud=[settings.GRAPHQL_JWT["JWT_AUDIENCE"], "other"]),
    "aud a list of only the audience": lambda sub: token_for(sub, aud=[settings.GRAPHQL_JWT["JWT_AUDIENCE"]]),
    # token type: exactly "access"
    "token_type refresh": lambda sub: token_for(sub, token_type="refresh"),
    "token_type Access": lambda sub: token_for(sub, token_type="Access"),
    "token_type empty": lambda sub: token_for(sub, token_type=""),
    "token_type a list": lambda sub: token_for(sub, token_type=[ACCESS]),
    # sid: a session UUID as 32 lowercase hex digits, required
    "sid missing": lambda sub: token_for(sub, sid=MISSING),
    "sid an int": lambda sub: token_for(sub, sid=1),
    "sid empty": lambda sub: token_for(sub, sid=""),
    "sid not hex": lambda sub: token_for(sub, sid="s" * 32),
    "sid uppercase hex": lambda sub: token_for(sub, sid=uuid.uuid4().hex.upper()),
    "sid dashed UUID": lambda sub: token_for(sub, sid=str(uuid.uuid4())),
    "sid 33 hex digits": lambda sub: token_for(sub, sid="a" * 33),
    # time: not yet valid, or an absurd lifetime
    "iat in the future": lambda sub: token_for(sub, iat=now() + 60, exp=now() + 120),
    "nbf in the future": lambda sub: token_for(sub, nbf=now() + 60),
    "lifetime one second too long": lambda sub: token_for(sub, iat=now(), exp=now() + access_lifetime() + 1),
    "exp in the year 3000": lambda sub: token_for(sub, exp=32503680000),
    "exp beyond any integer type": lambda sub: token_for(sub, exp=10**30),
}


# --- the builders themselves ------------------------------------------------------------


def test_the_builders_make_a_valid_token():
    # given: what every forgery starts from, and PyJWT's own encoding of the same claims
    claims = valid_claims("42")
    # when / then
    assert jwt_decode(token_for("42"))["sub"] == "42"
    assert jwt_decode(sign(claims)) == claims
    assert jwt.get_unverified_header(token_for("42")) == {"alg": "HS256", "typ": "JWT", "kid": key_id(signing_key())}


def test_the_required_claims_are_the_documented_eight():
    assert set(REQUIRED_CLAIMS) == {"sub", "iat", "exp", "jti", "iss", "aud", "token_type", "sid"}


# --- issue and verify -------------------------------------------------------------------


def test_issued_token_round_trips_with_the_users_claims(user):
    # given
    before = now()
    # when
    issued = session_open(user=user)
    claims = access_token_verify(issued.token)
    # then
    after = now()
    session = Session.objects.get()
    assert claims.subject == str(user.pk)
    assert int(claims.subject) == user.pk
    assert claims.session_id == session.id.hex
    assert claims.payload == issued.payload
    assert claims.jti == issued.payload["jti"]
    assert claims.issued_at == issued.payload["iat"]
    assert claims.expires_at == issued.payload["exp"]
    assert before <= claims.issued_at <= after
    assert claims.expires_at - claims.issued_at == access_lifetime()
    assert issued.payload == jwt_decode(issued.token)
    assert issued.payload["token_type"] == ACCESS
    assert issued.payload["iss"] == settings.GRAPHQL_JWT["JWT_ISSUER"]
    assert issued.payload["aud"] == settings.GRAPHQL_JWT["JWT_AUDIENCE"]
    assert set(issued.payload) == set(REQUIRED_CLAIMS)
    # the session ends at its idle expiry, which comes before its absolute one
    assert issued.refresh_expires_in == int(session.ends_at().timestamp())
    assert issued.refresh_expires_in == int(session.last_used_at.timestamp()) + settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME


def test_issued_token_names_its_key_and_algorithm(user):
    # when
    token = session_open(user=user).token
    # then
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": key_id(signing_key())}


def test_issued_token_never_carries_the_email_or_username(user):
    # An email change must not move a token, so nothing in it names the account but the pk.
    token = session_open(user=user).token
    payload = jwt_decode(token)
    assert user.email not in json.dumps(payload)
    assert user.username not in json.dumps(payload)


def test_each_issue_has_a_fresh_jti(user):
    first = session_open(user=user)
    second = session_open(user=user)
    assert first.payload["jti"] != second.payload["jti"]
    assert first.token != second.token
    assert access_token_verify(first.token).jti != access_token_verify(second.token).jti


def test_session_id_is_carried_as_sid(user):
    issued = session_open(user=user)
    assert issued.payload["sid"] == Session.objects.get().id.hex
    assert access_token_verify(issued.token).session_id == issued.payload["sid"]


def test_an_access_token_never_outlives_its_session(user):
    # given: a session with ten seconds left of its absolute lifetime
    session_open(user=user)
    session = Session.objects.get()
    session.expires_at = timezone.now() + timedelta(seconds=10)
    session.save()
    # when
    token, payload = access_token_issue(user=user, session=session)
    # then: the token expires with the session, not five minutes later
    assert payload["exp"] == int(session.expires_at.timestamp())
    assert access_token_verify(token).expires_at == payload["exp"]


def test_key_id_is_a_short_digest_that_does_not_reveal_the_key():
    kid = key_id(signing_key())
    assert kid == key_id(signing_key())
    assert len(kid) == 16
    assert all(char in "0123456789abcdef" for char in kid)
    assert kid != key_id(OTHER_KEY)
    assert kid not in signing_key()


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_token_is_invalid(forge):
    # given
    token = forge("42")
    # when / then
    with pytest.raises(TokenInvalid):
        jwt_decode(token)
    with pytest.raises(TokenInvalid):
        access_token_verify(token)


@pytest.mark.parametrize(
    "exp",
    [
        pytest.param(lambda: True, id="bool"),
        pytest.param(lambda: str(now() - 5), id="numeric string"),
        pytest.param(lambda: now() - 5.5, id="float"),
    ],
)
def test_exp_of_the_wrong_type_is_invalid_even_in_the_past(exp):
    # The claim check refuses any exp that is not an int ("bool is an int to Python, not to
    # us"), but PyJWT's expiry check, which coerces with int(), runs first: True is 1 (1970).
    token = token_for("42", iat=now() - 60, exp=exp())
    with pytest.raises(TokenInvalid):
        jwt_decode(token)


@pytest.mark.parametrize("value", [None, b"", 42, ["a.b.c"]], ids=["None", "bytes", "int", "list"])
def test_non_string_input_is_invalid(value):
    with pytest.raises(TokenInvalid):
        jwt_decode(value)


def test_a_token_longer_than_the_header_limit_is_invalid():
    # given: a correctly signed token padded with an (ignored) claim past the limit
    limit = settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]
    token = token_for("42", padding="x" * limit)
    assert len(token) > limit
    # when / then
    with pytest.raises(TokenInvalid):
        jwt_decode(token)


def test_the_same_token_under_the_limit_is_accepted():
    token = token_for("42", padding="x" * 100)
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "MAX_AUTHORIZATION_HEADER": len(token)}):
        assert jwt_decode(token)["sub"] == "42"
    with (
        override_settings(GATEHOUSE={**settings.GATEHOUSE, "MAX_AUTHORIZATION_HEADER": len(token) - 1}),
        pytest.raises(TokenInvalid),
    ):
        jwt_decode(token)


# --- accepted edges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"jti": "a" * 16}, id="jti 16 characters"),
        pytest.param({"jti": "a" * 64}, id="jti 64 characters"),
        pytest.param({"jti": "-_" * 8}, id="jti URL-safe punctuation"),
        pytest.param({"sub": str(MAX_USER_ID)}, id="sub the largest bigint"),
        pytest.param({"sid": "0" * 32}, id="sid all zeros"),
    ],
)
def test_edge_values_are_accepted(changes):
    payload = jwt_decode(token_for("42", **changes))
    for claim, value in changes.items():
        assert payload[claim] == value


def test_lifetime_of_exactly_the_configured_one_is_accepted():
    issued = now()
    payload = jwt_decode(token_for("42", iat=issued, exp=issued + access_lifetime()))
    assert payload["exp"] - payload["iat"] == access_lifetime()


# --- expiry and leeway ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds_ago", [0, 1, 5, 3600], ids=["exp now", "1s ago", "5s ago", "1h ago"])
def test_expired_token_is_expired(seconds_ago):
    # exp is the first instant a token is no longer valid (RFC 7519 4.1.4): exp == now is expired.
    issued = now()
    token = token_for("42", iat=issued - seconds_ago - 60, exp=issued - seconds_ago)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 0}), pytest.raises(TokenExpired):
        jwt_decode(token)


def test_expired_token_with_a_bad_signature_is_invalid_not_expired():
    # The signature is checked first: a forger learns nothing from the expiry.
    issued = now()
    token = sign(valid_claims("42", iat=issued - 120, exp=issued - 60), key=OTHER_KEY)
    with pytest.raises(TokenInvalid):
        jwt_decode(token)


def test_leeway_accepts_a_recently_expired_token():
    issued = now()
    token = token_for("42", iat=issued - 60, exp=issued - 5)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 60}):
        assert jwt_decode(token)["sub"] == "42"
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 0}), pytest.raises(TokenExpired):
        jwt_decode(token)


def test_leeway_does_not_stretch_to_a_long_expired_token():
    issued = now()
    token = token_for("42", iat=issued - 200, exp=issued - 120)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 60}), pytest.raises(TokenExpired):
        jwt_decode(token)


def test_leeway_accepts_a_slightly_future_iat():
    issued = now()
    token = token_for("42", iat=issued + 30, exp=issued + 90)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 60}):
        assert jwt_decode(token)["iat"] == issued + 30
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 0}), pytest.raises(TokenInvalid):
        jwt_decode(token)


@pytest.mark.parametrize("exp_after_iat", [0, -10], ids=["exp equals iat", "exp before iat"])
def test_exp_not_after_iat_is_invalid(exp_after_iat):
    # Only reachable within the leeway: the token is neither expired nor too early.
    issued = now() + 20
    token = token_for("42", iat=issued, exp=issued + exp_after_iat)
    with override_settings(GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_LEEWAY": 60}), pytest.raises(TokenInvalid):
        jwt_decode(token)


# --- key rotation --------------------------------------------------------------------------

NEW_KEY = "the-next-jwt-signing-key-0123456789-abcdefghijklmnopqrstu"


def rotated(*previous: str):
    """Settings after rotating to NEW_KEY, still accepting `previous` keys."""
    return override_settings(
        GRAPHQL_JWT={**settings.GRAPHQL_JWT, "JWT_SECRET_KEY": NEW_KEY},
        GATEHOUSE={**settings.GATEHOUSE, "JWT_PREVIOUS_SIGNING_KEYS": list(previous)},
    )


def test_token_of_a_previous_key_is_accepted_while_that_key_is_listed():
    # given: a token signed before the rotation
    old_key = signing_key()
    token = token_for("42")
    # when / then
    with rotated(old_key):
        assert jwt_decode(token)["sub"] == "42"


def test_token_of_a_previous_key_is_refused_once_the_key_is_dropped():
    token = token_for("42")
    with rotated(), pytest.raises(TokenInvalid):
        jwt_decode(token)


def test_after_rotation_tokens_are_signed_with_the_new_key(user):
    old_key = signing_key()
    with rotated(old_key):
        token = session_open(user=user).token
        assert jwt.get_unverified_header(token)["kid"] == key_id(NEW_KEY)
        assert jwt_decode(token)["sub"] == str(user.pk)
    # and the old key alone does not verify it
    with pytest.raises(TokenInvalid):
        jwt_decode(token)


def test_a_previous_kid_with_the_new_keys_signature_is_refused():
    # The kid picks the key: a token cannot borrow one key's id and another key's signature.
    old_key = signing_key()
    with rotated(old_key):
        token = sign(valid_claims("42"), key=NEW_KEY, headers={"kid": key_id(old_key)})
        with pytest.raises(TokenInvalid):
            jwt_decode(token)


# --- the Authorization header ----------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", " ", "   \t  "], ids=["absent", "empty", "space", "whitespace"])
def test_absent_or_blank_header_is_no_token(header):
    assert bearer_token_from_header(header) is None


@pytest.mark.parametrize(
    "header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi", "BeArEr abc.def.ghi"]
)
def test_bearer_scheme_is_case_insensitive(header):
    # RFC 7235 section 2.1: the auth-scheme is case-insensitive.
    assert bearer_token_from_header(header) == "abc.def.ghi"


@pytest.mark.parametrize(
    "header",
    [
        "JWT abc.def.ghi",
        "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer abc.def.ghi extra",
        "abc.def.ghi",
        "Bearerabc.def.ghi",
        "Bearer: abc.def.ghi",
    ],
)
def test_other_header_shapes_are_invalid(header):
    with pytest.raises(TokenInvalid):
        bearer_token_from_header(header)


def test_header_at_the_limit_is_read_and_one_past_it_is_invalid():
    limit = settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]
    at_limit = "Bearer " + "a" * (limit - len("Bearer "))
    assert bearer_token_from_header(at_limit) == "a" * (limit - len("Bearer "))
    with pytest.raises(TokenInvalid):
        bearer_token_from_header(at_limit + "a")
