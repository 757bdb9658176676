"""Signing keys: loaded and checked once, picked by `kid`, and published as JWKs.

Under HS256 (the default) one shared secret signs and verifies, so nothing can be
published and another service that checks a token could also mint one. Under RS256,
ES256 or EdDSA (Ed25519) the private key, read from the PEM file JWT_PRIVATE_KEY_FILE,
only signs; its public half and the public keys of JWT_PREVIOUS_PUBLIC_KEY_FILES verify
and are published at /.well-known/jwks.json, so any JWT library can check a Gatehouse
token offline.

Every key is loaded once, when first needed (or when the production settings load,
which refuse to start on a bad file), and kept as PyJWT prepares it: a token's
verification is one dict look-up by `kid` and one call of PyJWT's algorithm object for
exactly the configured algorithm. A token never picks the algorithm or the key family.

`kid`: under HS256 a short digest of the secret (as before: tokens in flight stay
valid); under an asymmetric algorithm the RFC 7638 JWK thumbprint, which any party can
recompute from the published key. PyJWT has no thumbprint helper and Authlib's (in its
deprecated `authlib.jose`) would load every key a second time; RFC 7638 is a digest of
three or four members in a fixed order, written here and tested against the RFC's
example.

Nothing here may import Django models or graphql_jwt: the production settings import
this module to refuse a bad key before Django is set up.
"""

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

HMAC = "HS256"
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ALGORITHMS = (HMAC, *ASYMMETRIC_ALGORITHMS)
RSA_MIN_BITS = 2048
RSA_DEFAULT_BITS = 3072
# The members of a public JWK, by key type, in RFC 7638 order (the required members, sorted).
_PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
# What each algorithm's key must be, and how an operator would call it in a message.
_KEY_TYPES = {
    "RS256": ((rsa.RSAPrivateKey,), (rsa.RSAPublicKey,), "an RSA key"),
    "ES256": ((ec.EllipticCurvePrivateKey,), (ec.EllipticCurvePublicKey,), "an EC key on the P-256 curve"),
    "EdDSA": ((ed25519.Ed25519PrivateKey,), (ed25519.Ed25519PublicKey,), "an Ed25519 key"),
}


@dataclass(frozen=True)
class KeySet:
    """The keys of the configured algorithm, ready for signing and verification."""

    algorithm: str
    # PyJWT's algorithm object: it verifies every signature (and refuses the wrong key family).
    verifier: jwt.algorithms.Algorithm
    # The HMAC secret (a str, signed exactly as before) or the private key object.
    signing_key: object
    signing_kid: str
    # kid -> the key as the verifier prepared it: the current key first, then previous ones.
    # A plain dict (never changed once built): a look-up per request, as cheap as it gets.
    verification_keys: dict[str, object]
    # The public JWKs to publish (none under HS256).
    jwks: tuple[dict, ...]


def key_id(key: str) -> str:
    """Return the public id of an HMAC signing key: a short digest, useless for recovering it."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def thumbprint(jwk: Mapping) -> str:
    """Return the RFC 7638 thumbprint of a public JWK: SHA-256 over its required members, base64url."""
    members = _PUBLIC_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def public_jwk(public_key, algorithm: str) -> dict:
    """Return the JWK of `public_key` for publication: its public members, `kid`, `alg` and `use`.

    Only the members a public key has are copied out of PyJWT's export, so nothing private
    (or PyJWT's `key_ops`) can reach the published set whatever the export holds.
    """
    exported = jwt.get_algorithm_by_name(algorithm).to_jwk(public_key, as_dict=True)
    jwk = {name: exported[name] for name in _PUBLIC_MEMBERS[exported["kty"]]}
    return {**jwk, "kid": thumbprint(jwk), "alg": algorithm, "use": "sig"}


def _read(path: str, setting: str) -> bytes:
    if not path:
        raise ImproperlyConfigured(
            f"{setting} is required when JWT_ALGORITHM is not HS256: the path of a PEM key file."
        )
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{setting}: the key file {path} does not exist.") from None
    except IsADirectoryError:
        raise ImproperlyConfigured(f"{setting}: {path} is a directory, not a key file.") from None
    except PermissionError:
        raise ImproperlyConfigured(f"{setting}: the key file {path} is not readable by this process.") from None
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting}: the key file {path} cannot be read ({exc.strerror}).") from None


def _check_type(key, algorithm: str, *, private: bool, path: str, setting: str) -> None:
    private_types, public_types, described = _KEY_TYPES[algorithm]
    if not isinstance(key, private_types if private else public_types):
        raise ImproperlyConfigured(f"{setting}: {path} is not {described}, which JWT_ALGORITHM={algorithm} needs.")
    if algorithm == "ES256" and not isinstance(key.curve, ec.SECP256R1):
        raise ImproperlyConfigured(
            f"{setting}: {path} is on the {key.curve.name} curve; ES256 needs P-256 (secp256r1)."
        )
    if algorithm == "RS256" and key.key_size < RSA_MIN_BITS:
        raise ImproperlyConfigured(
            f"{setting}: {path} is a {key.key_size}-bit RSA key; at least {RSA_MIN_BITS} bits are needed."
        )


def load_private_key(path: str, algorithm: str, *, setting: str = "JWT_PRIVATE_KEY_FILE"):
    """Return the private key in the PEM file `path`; raise ImproperlyConfigured if it cannot sign `algorithm`."""
    data = _read(path, setting)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ImproperlyConfigured(
            f"{setting}: {path} is encrypted; Gatehouse reads unencrypted PEM keys only."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ImproperlyConfigured(f"{setting}: {path} is not a PEM private key.") from None
    _check_type(key, algorithm, private=True, path=path, setting=setting)
    return key


def load_public_key(path: str, algorithm: str, *, setting: str = "JWT_PREVIOUS_PUBLIC_KEY_FILES"):
    """Return the public key in the PEM file `path`; raise ImproperlyConfigured if it cannot verify `algorithm`."""
    data = _read(path, setting)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ImproperlyConfigured(
            f"{setting}: {path} is not a PEM public key (a private key does not belong here: "
            "publish its public half, e.g. `openssl pkey -in old.pem -pubout`)."
        ) from None
    _check_type(key, algorithm, private=False, path=path, setting=setting)
    return key


def generate_private_key(algorithm: str, *, rsa_bits: int = RSA_DEFAULT_BITS):
    """Return a new private key for `algorithm` (one of ASYMMETRIC_ALGORITHMS)."""
    if algorithm == "RS256":
        if rsa_bits < RSA_MIN_BITS:
            raise ValueError(f"RSA keys need at least {RSA_MIN_BITS} bits.")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"No key pair for {algorithm!r}: use one of {', '.join(ASYMMETRIC_ALGORITHMS)}.")


def private_key_pem(key) -> bytes:
    """Return `key` as an unencrypted PKCS #8 PEM file (what load_private_key reads)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key) -> bytes:
    """Return the public half of `key` as a PEM file (what JWT_PREVIOUS_PUBLIC_KEY_FILES lists)."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def keys_load(
    algorithm: str,
    *,
    secret: str = "",
    previous_secrets: Iterable[str] = (),
    private_key_file: str = "",
    previous_public_key_files: Iterable[str] = (),
) -> KeySet:
    """Load and check the keys of `algorithm`; raise ImproperlyConfigured, naming the file and why, on a bad one.

    Under HS256 the secrets are used as before and the key files are not read; under an
    asymmetric algorithm the HMAC secrets are not used at all: a token is verified by
    exactly the configured algorithm family.
    """
    if algorithm not in ALGORITHMS:
        raise ImproperlyConfigured(f"JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}.")
    verifier = jwt.get_algorithm_by_name(algorithm)
    if algorithm == HMAC:
        # PyJWT's HMAC preparation refuses PEM and JWK text as a secret (algorithm confusion).
        keys = {key_id(key): verifier.prepare_key(key) for key in (secret, *previous_secrets) if key}
        return KeySet(
            algorithm=algorithm,
            verifier=verifier,
            signing_key=secret,
            signing_kid=key_id(secret) if secret else "",
            verification_keys=keys,
            jwks=(),
        )
    private_key = load_private_key(private_key_file, algorithm)
    public_keys = [private_key.public_key()]
    public_keys += [load_public_key(path, algorithm) for path in previous_public_key_files]
    jwks, keys = [], {}
    for public_key in public_keys:
        jwk = public_jwk(public_key, algorithm)
        if jwk["kid"] not in keys:  # the current key listed again as a previous one
            keys[jwk["kid"]] = verifier.prepare_key(public_key)
            jwks.append(jwk)
    return KeySet(
        algorithm=algorithm,
        verifier=verifier,
        signing_key=private_key,
        signing_kid=jwks[0]["kid"],
        verification_keys=keys,
        jwks=tuple(jwks),
    )


@cache
def key_set() -> KeySet:
    """Return the configured keys, loaded once per process (and again after a settings change in tests)."""
    return keys_load(
        settings.GRAPHQL_JWT.get("JWT_ALGORITHM", HMAC),
        secret=settings.GRAPHQL_JWT.get("JWT_SECRET_KEY") or "",
        previous_secrets=settings.GATEHOUSE["JWT_PREVIOUS_SIGNING_KEYS"],
        private_key_file=settings.JWT_PRIVATE_KEY_FILE,
        previous_public_key_files=settings.JWT_PREVIOUS_PUBLIC_KEY_FILES,
    )


def published_jwks() -> dict:
    """Return the JWK Set of /.well-known/jwks.json: the public keys only, `[]` under HS256."""
    return {"keys": [dict(jwk) for jwk in key_set().jwks]}


def world_readable_key_file() -> str | None:
    """Return the private key file's path if any user of the machine may read it, else None."""
    if settings.GRAPHQL_JWT.get("JWT_ALGORITHM", HMAC) == HMAC or not settings.JWT_PRIVATE_KEY_FILE:
        return None
    try:
        mode = os.stat(settings.JWT_PRIVATE_KEY_FILE).st_mode
    except OSError:
        return None  # a missing file is an error of its own (gatehouse.E011)
    return settings.JWT_PRIVATE_KEY_FILE if mode & stat.S_IROTH else None


_KEY_SETTINGS = {"GRAPHQL_JWT", "GATEHOUSE", "JWT_PRIVATE_KEY_FILE", "JWT_PREVIOUS_PUBLIC_KEY_FILES"}


@receiver(setting_changed)
def _reset_keys(*, setting, **kwargs):
    if setting in _KEY_SETTINGS:
        key_set.cache_clear()
