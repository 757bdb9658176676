"""Asymmetric signing (accounts.keys): each algorithm end to end, rotation, refusals, key files.

Tokens are issued through GraphQL (tokenAuth over Django's test client) and used on `me`;
forged tokens are built by hand. The published keys are checked by PyJWT's own JWK
loading, independently of the code that produced them.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from django.conf import settings
from django.core.checks import Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.error_codes import AuthErrorCode
from accounts.exceptions import TokenInvalid
from accounts.keys import (
    key_id,
    key_set,
    keys_load,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    published_jwks,
    thumbprint,
)
from accounts.tokens import jwt_decode, jwt_encode, jwt_payload
from tests.conftest import PASSWORD, error_codes
from tests.live import missing, production_env
from tests.signing_keys import ALGORITHMS, ROOT, key_pair, run_django, signing_with

TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token refreshToken } }"
REFRESH = "mutation($r: String) { refreshToken(refreshToken: $r) { token refreshToken } }"
ME = "{ me { id username } }"
INVALID = AuthErrorCode.TOKEN_INVALID.value
PUBLIC_MEMBERS = {"RSA": {"kty", "n", "e"}, "EC": {"kty", "crv", "x", "y"}, "OKP": {"kty", "crv", "x"}}
CURVES = {"ES256": "P-256", "EdDSA": "Ed25519"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_in(gql, email="alice@example.com") -> dict:
    body = gql(TOKEN_AUTH, {"e": email, "p": PASSWORD})
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


def me(gql, token) -> dict:
    return gql(ME, token=token)


def assert_invalid(gql, token) -> None:
    """The token is refused as TOKEN_INVALID, in process and over HTTP (`me` answers no data)."""
    with pytest.raises(TokenInvalid):
        jwt_decode(token)
    body = me(gql, token)
    assert error_codes(body) == [INVALID], body
    assert body.get("data") is None or body["data"].get("me") is None, body


def hand_signed(header: dict, claims: dict, algorithm: str, key) -> str:
    """Sign any header (PyJWT's encode would refuse some) with PyJWT's algorithm object."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(jwt.get_algorithm_by_name(algorithm).sign(signing_input.encode(), key))}"


def hand_signed_hmac(header: dict, claims: dict, secret: bytes) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


# --- RFC 7638 ----------------------------------------------------------------------------------


def test_the_thumbprint_is_rfc_7638s_example():
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
        "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
        "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
        "Cur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_kid_is_the_thumbprint_another_library_computes(algorithm, tmp_path):
    # Authlib's joserfc (an independent RFC 7638 implementation) agrees on every key type.
    from joserfc import jwk as joserfc_jwk

    private, _ = key_pair(tmp_path, algorithm)
    key_type = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}[algorithm]
    with signing_with(algorithm, private):
        [published] = published_jwks()["keys"]
        expected = joserfc_jwk.import_key(private.read_bytes(), key_type).thumbprint()
        assert published["kid"] == key_set().signing_kid == expected


# --- each algorithm end to end ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_signs_in_and_me_works(algorithm, tmp_path, gql, user):
    private, _ = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        # when
        tokens = sign_in(gql)
        # then: the token is signed with the algorithm, named by the key's thumbprint
        header = jwt.get_unverified_header(tokens["token"])
        [published] = published_jwks()["keys"]
        assert header == {"alg": algorithm, "typ": "JWT", "kid": published["kid"]}
        body = me(gql, tokens["token"])
        assert "errors" not in body, body
        assert body["data"]["me"]["username"] == "alice"
        # and PyJWT verifies it offline with nothing but the published JWK
        public = jwt.PyJWK.from_dict(published).key
        claims = jwt.decode(tokens["token"], public, algorithms=[algorithm], audience="gatehouse", issuer="gatehouse")
        assert claims["sub"] == str(user.pk)
        # and a refresh issues a token signed the same way, which works too
        refreshed = gql(REFRESH, {"r": tokens["refreshToken"]})["data"]["refreshToken"]
        assert jwt.get_unverified_header(refreshed["token"])["kid"] == published["kid"]
        assert me(gql, refreshed["token"])["data"]["me"]["username"] == "alice"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_published_key_is_public_only_and_complete(algorithm, tmp_path):
    private, _ = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        [jwk] = published_jwks()["keys"]
    assert set(jwk) == PUBLIC_MEMBERS[jwk["kty"]] | {"kid", "alg", "use"}
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk.get("crv") == CURVES.get(algorithm)
    # PyJWT loads it as a public key (nothing private was published)
    loaded = jwt.PyJWK.from_dict(jwk).key
    assert not hasattr(loaded, "private_bytes")


def test_hs256_is_unchanged_the_hmac_kid_and_nothing_published(user):
    # The test settings: HS256, no key files.
    payload = jwt_payload(user, session_id="0" * 32)
    token = jwt_encode(payload)
    assert jwt.get_unverified_header(token) == {
        "alg": "HS256",
        "typ": "JWT",
        "kid": key_id(settings.GRAPHQL_JWT["JWT_SECRET_KEY"]),
    }
    assert jwt.decode(token, settings.GRAPHQL_JWT["JWT_SECRET_KEY"], algorithms=["HS256"], audience="gatehouse")
    assert published_jwks() == {"keys": []}


# --- rotation --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rotation_keeps_old_tokens_while_their_key_is_listed_and_refuses_them_once_dropped(
    algorithm, tmp_path, gql, user
):
    old_private, old_public = key_pair(tmp_path, algorithm, 0)
    new_private, _ = key_pair(tmp_path, algorithm, 1)
    with signing_with(algorithm, old_private):
        old_token = sign_in(gql)["token"]
        old_kid = key_set().signing_kid
    # when: the new key signs and the old public key is still listed
    with signing_with(algorithm, new_private, previous=[old_public]):
        # then: the old token still works, new tokens carry the new kid, both keys are published
        assert me(gql, old_token)["data"]["me"]["username"] == "alice"
        new_token = sign_in(gql)["token"]
        new_kid = jwt.get_unverified_header(new_token)["kid"]
        assert new_kid != old_kid
        assert [jwk["kid"] for jwk in published_jwks()["keys"]] == [new_kid, old_kid]
        assert me(gql, new_token)["data"]["me"]["username"] == "alice"
    # when: the old key is dropped
    with signing_with(algorithm, new_private):
        # then: its tokens are refused; the new ones still work
        assert_invalid(gql, old_token)
        assert me(gql, new_token)["data"]["me"]["username"] == "alice"
        assert [jwk["kid"] for jwk in published_jwks()["keys"]] == [new_kid]


@pytest.mark.django_db
def test_a_previous_kid_with_the_current_keys_signature_is_refused(tmp_path, gql, user):
    # The kid picks the key: a token cannot borrow one key's id and another key's signature.
    old_private, old_public = key_pair(tmp_path, "ES256", 0)
    new_private, _ = key_pair(tmp_path, "ES256", 1)
    with signing_with("ES256", old_private):
        old_kid = key_set().signing_kid
    with signing_with("ES256", new_private, previous=[old_public]):
        good = sign_in(gql)["token"]
        forged = jwt.encode(
            jwt.decode(good, options={"verify_signature": False}),
            key_set().signing_key,
            algorithm="ES256",
            headers={"kid": old_kid},
        )
        assert me(gql, good)["data"]["me"]["username"] == "alice"
        assert_invalid(gql, forged)


def test_the_current_key_listed_again_as_previous_is_published_once(tmp_path):
    private, public = key_pair(tmp_path, "EdDSA")
    with signing_with("EdDSA", private, previous=[public]):
        assert len(published_jwks()["keys"]) == 1


# --- algorithm confusion and unknown keys ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_public_key_used_as_an_hmac_secret_is_refused(algorithm, tmp_path, gql, user):
    # The classic confusion: the attacker knows the public key (it is published) and signs
    # an HS256 token with its PEM text as the HMAC secret, naming the real kid.
    private, public = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        genuine = sign_in(gql)["token"]
        claims = jwt.decode(genuine, options={"verify_signature": False})
        kid = key_set().signing_kid
        for secret in (public.read_bytes(), public.read_bytes().strip()):
            forged = hand_signed_hmac({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, secret)
            assert_invalid(gql, forged)
        # and with the JWK text as the secret
        jwk_text = json.dumps(published_jwks()["keys"][0]).encode()
        assert_invalid(gql, hand_signed_hmac({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, jwk_text))


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_token_of_another_algorithm_or_family_is_refused(algorithm, tmp_path, gql, user):
    private, _ = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        genuine = sign_in(gql)["token"]
        claims = jwt.decode(genuine, options={"verify_signature": False})
        kid = key_set().signing_kid
    # An HS256 token with the (still configured) HMAC secret and its kid: another family.
    secret = settings.GRAPHQL_JWT["JWT_SECRET_KEY"]
    hmac_token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})
    # A token of another asymmetric algorithm, signed with a key of its own, naming our kid.
    other = next(name for name in ALGORITHMS if name != algorithm)
    other_private, _ = key_pair(tmp_path, other)
    other_token = jwt.encode(claims, load_private_key(str(other_private), other), algorithm=other, headers={"kid": kid})
    # `none`, with and without our kid.
    unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{genuine.split('.')[1]}."
    with signing_with(algorithm, private):
        assert me(gql, genuine)["data"]["me"]["username"] == "alice"
        for token in (hmac_token, other_token, unsigned):
            assert_invalid(gql, token)


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_kid_that_names_no_key_or_no_kid_is_refused(algorithm, tmp_path, gql, user):
    private, _ = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        genuine = sign_in(gql)["token"]
        claims = jwt.decode(genuine, options={"verify_signature": False})
        key = key_set().signing_key
        kid = key_set().signing_kid
        assert me(gql, hand_signed({"alg": algorithm, "kid": kid}, claims, algorithm, key))["data"]["me"]
        for kids in ({"kid": "not-a-key"}, {"kid": ""}, {"kid": 7}, {"kid": [kid]}, {"kid": None}, {}):
            assert_invalid(gql, hand_signed({"alg": algorithm, "typ": "JWT", **kids}, claims, algorithm, key))


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 256, 384, 1000])
def test_a_signature_of_any_length_that_is_wrong_is_invalid_not_an_error(algorithm, length, tmp_path, gql, user):
    private, _ = key_pair(tmp_path, algorithm)
    with signing_with(algorithm, private):
        head, body, _ = sign_in(gql)["token"].split(".")
        assert_invalid(gql, f"{head}.{body}.{b64(os.urandom(length))}")


# --- key files: loading and refusals ---------------------------------------------------------


def weak_rsa_key():
    """An RSA key too short to be accepted (what the refusal is about)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def _write(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _pem(key) -> bytes:
    return private_key_pem(key)


@pytest.mark.parametrize(
    ("algorithm", "key", "message"),
    [
        ("RS256", lambda: ec.generate_private_key(ec.SECP256R1()), "is not an RSA key"),
        ("RS256", lambda: weak_rsa_key(), "1024-bit RSA key"),
        ("ES256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "not an EC key on the P-256"),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1()), "secp384r1 curve"),
        ("EdDSA", lambda: ec.generate_private_key(ec.SECP256R1()), "is not an Ed25519 key"),
        ("EdDSA", lambda: ed448.Ed448PrivateKey.generate(), "is not an Ed25519 key"),
    ],
    ids=["rs-ec", "rs-1024", "es-rsa", "es-p384", "ed-ec", "ed-ed448"],
)
def test_a_private_key_of_the_wrong_type_or_strength_is_refused(algorithm, key, message, tmp_path):
    path = _write(tmp_path, "key.pem", _pem(key()))
    with pytest.raises(ImproperlyConfigured, match=message):
        load_private_key(path, algorithm)
    with pytest.raises(ImproperlyConfigured, match=message):
        keys_load(algorithm, private_key_file=path)


def test_a_public_key_of_the_wrong_type_or_strength_is_refused(tmp_path):
    weak = weak_rsa_key()
    with pytest.raises(ImproperlyConfigured, match="1024-bit"):
        load_public_key(_write(tmp_path, "weak.pub", public_key_pem(weak)), "RS256")
    with pytest.raises(ImproperlyConfigured, match="not an Ed25519 key"):
        load_public_key(_write(tmp_path, "ec.pub", public_key_pem(ec.generate_private_key(ec.SECP256R1()))), "EdDSA")


def test_unusable_files_are_refused_with_the_reason(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    cases = {
        str(tmp_path / "missing.pem"): "does not exist",
        str(tmp_path): "is a directory",
        _write(tmp_path, "garbage.pem", b"not a key"): "is not a PEM private key",
        _write(tmp_path, "public.pem", public_key_pem(rsa_key)): "is not a PEM private key",
        _write(tmp_path, "encrypted.pem", encrypted): "is encrypted",
        "": "JWT_PRIVATE_KEY_FILE is required",
    }
    for path, message in cases.items():
        with pytest.raises(ImproperlyConfigured, match=message):
            load_private_key(path, "RS256")
    # A private key where a public one belongs is refused, with the way to extract the public half.
    with pytest.raises(ImproperlyConfigured, match="not a PEM public key"):
        load_public_key(_write(tmp_path, "private.pem", _pem(rsa_key)), "RS256")


def test_a_bad_key_file_is_error_e011_and_a_good_one_passes(tmp_path):
    private, _ = key_pair(tmp_path, "ES256")
    with signing_with("ES256", private):
        assert "gatehouse.E011" not in {issue.id for issue in run_checks(tags=["security"])}
    with signing_with("ES256", tmp_path / "missing.pem"):
        [issue] = [issue for issue in run_checks(tags=["security"]) if issue.id == "gatehouse.E011"]
    assert isinstance(issue, Error)
    assert "does not exist" in issue.msg


def test_hmac_key_checks_do_not_apply_to_an_asymmetric_algorithm(tmp_path):
    # The HMAC secret signs nothing under ES256: a short one is no error (E001).
    private, _ = key_pair(tmp_path, "ES256")
    with signing_with("ES256", private), override_settings(JWT_SIGNING_KEY=""):
        ids = {issue.id for issue in run_checks(tags=["security"])}
    assert not ids & {"gatehouse.E001", "gatehouse.E002", "gatehouse.E011"}


def test_a_world_readable_private_key_warns_w008_in_deployment_checks(tmp_path):
    private, _ = key_pair(tmp_path, "EdDSA")
    private.chmod(0o644)
    with signing_with("EdDSA", private):
        issues = {issue.id: issue for issue in run_checks(tags=["security"], include_deployment_checks=True)}
        assert isinstance(issues["gatehouse.W008"], Warning)
        assert str(private) in issues["gatehouse.W008"].msg
        assert "gatehouse.W008" not in {issue.id for issue in run_checks(tags=["security"])}
        private.chmod(0o640)  # group-readable only: the operator's choice
        assert "gatehouse.W008" not in {
            issue.id for issue in run_checks(tags=["security"], include_deployment_checks=True)
        }
        private.chmod(0o600)
        assert "gatehouse.W008" not in {
            issue.id for issue in run_checks(tags=["security"], include_deployment_checks=True)
        }


# --- generate_signing_key ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_generate_signing_key_writes_a_usable_key_with_mode_0600(algorithm, tmp_path, capsys):
    out = tmp_path / "signing.pem"
    public = tmp_path / "signing.pub.pem"
    previous_umask = os.umask(0)  # even with nothing masked, the file is the owner's alone
    try:
        call_command("generate_signing_key", "--algorithm", algorithm, "--out", str(out), "--public-out", str(public))
    finally:
        os.umask(previous_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    key = load_private_key(str(out), algorithm)
    assert public_key_pem(key) == public.read_bytes()
    with signing_with(algorithm, out, previous=[public]):
        kid = key_set().signing_kid
    assert kid in capsys.readouterr().out
    if algorithm == "RS256":
        assert key.key_size == 3072


def test_generate_signing_key_refuses_to_overwrite_a_file(tmp_path):
    out = tmp_path / "signing.pem"
    out.write_bytes(b"the key in use")
    out.chmod(0o600)
    with pytest.raises(CommandError, match="already exists"):
        call_command("generate_signing_key", "--algorithm", "ES256", "--out", str(out))
    assert out.read_bytes() == b"the key in use"
    # Nor through a symbolic link, even a dangling one.
    link = tmp_path / "link.pem"
    link.symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(CommandError, match="already exists"):
        call_command("generate_signing_key", "--algorithm", "ES256", "--out", str(link))
    assert not (tmp_path / "elsewhere.pem").exists()
    # An existing --public-out is refused before the private key is written.
    fresh = tmp_path / "fresh.pem"
    with pytest.raises(CommandError, match="already exists"):
        call_command("generate_signing_key", "--algorithm", "ES256", "--out", str(fresh), "--public-out", str(out))
    assert not fresh.exists()


def test_generate_signing_key_refuses_hs256_and_a_missing_directory(tmp_path):
    with pytest.raises(CommandError):
        call_command("generate_signing_key", "--algorithm", "HS256", "--out", str(tmp_path / "k.pem"))
    with pytest.raises(CommandError, match="Cannot create"):
        call_command("generate_signing_key", "--algorithm", "ES256", "--out", str(tmp_path / "no" / "k.pem"))
    assert list(tmp_path.iterdir()) == []


def test_generate_signing_key_runs_in_a_shell_before_the_key_exists(tmp_path):
    # The settings already name the (missing) key file: the command must still run (no system checks).
    out = tmp_path / "new.pem"
    result = run_django(
        {"JWT_ALGORITHM": "EdDSA", "JWT_PRIVATE_KEY_FILE": str(out)},
        ["manage.py", "generate_signing_key", "--algorithm", "EdDSA", "--out", str(out)],
        settings_module="config.settings.local",
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = run_django(
        {},
        ["manage.py", "generate_signing_key", "--algorithm", "EdDSA", "--out", str(out)],
        settings_module="config.settings.local",
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr


# --- production refuses to start -------------------------------------------------------------


SETUP = ["-c", "import django; django.setup(); from accounts.keys import key_set; print(key_set().algorithm)"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_production_starts_with_a_good_key_and_no_hmac_secret(algorithm, tmp_path):
    private, public = key_pair(tmp_path, algorithm)
    result = run_django(
        {
            "JWT_ALGORITHM": algorithm,
            "JWT_PRIVATE_KEY_FILE": str(private),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES": str(public),
        },
        SETUP,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == algorithm


def _refused(result, message: str) -> None:
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_production_refuses_a_missing_key_file(tmp_path):
    _refused(
        run_django({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")}, SETUP),
        "does not exist",
    )
    _refused(run_django({"JWT_ALGORITHM": "RS256"}, SETUP), "JWT_PRIVATE_KEY_FILE is required")


def test_production_refuses_an_unreadable_key_file(tmp_path):
    private, _ = key_pair(tmp_path, "ES256")
    private.chmod(0)
    # Root reads any file: then the server runs without that power, as a container's user would.
    wrapper = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            missing("running as root without setpriv (util-linux): no file is unreadable to root")
        wrapper = (setpriv, "--bounding-set=-dac_override,-dac_read_search")
    _refused(
        run_django({"JWT_ALGORITHM": "ES256", "JWT_PRIVATE_KEY_FILE": str(private)}, SETUP, wrapper=wrapper),
        "is not readable",
    )


def test_production_refuses_a_key_of_the_wrong_type(tmp_path):
    private, _ = key_pair(tmp_path, "ES256")
    _refused(
        run_django({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": str(private)}, SETUP),
        "is not an RSA key, which JWT_ALGORITHM=RS256 needs",
    )
    _, rsa_public = key_pair(tmp_path, "RS256")
    ed_private, _ = key_pair(tmp_path, "EdDSA")
    _refused(
        run_django(
            {
                "JWT_ALGORITHM": "EdDSA",
                "JWT_PRIVATE_KEY_FILE": str(ed_private),
                "JWT_PREVIOUS_PUBLIC_KEY_FILES": str(rsa_public),
            },
            SETUP,
        ),
        "JWT_PREVIOUS_PUBLIC_KEY_FILES",
    )


def test_production_refuses_an_rsa_key_under_2048_bits(tmp_path):
    weak = weak_rsa_key()
    path = _write(tmp_path, "weak.pem", _pem(weak))
    _refused(run_django({"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": path}, SETUP), "1024-bit RSA key")


def test_production_refuses_a_key_file_with_hs256(tmp_path):
    private, _ = key_pair(tmp_path, "RS256")
    _refused(
        run_django({"JWT_SIGNING_KEY": "j" * 48, "JWT_PRIVATE_KEY_FILE": str(private)}, SETUP),
        "JWT_ALGORITHM is HS256",
    )


def test_production_refuses_an_unknown_algorithm():
    _refused(run_django({"JWT_ALGORITHM": "none", "JWT_SIGNING_KEY": "j" * 48}, SETUP), "JWT_ALGORITHM must be one of")
    _refused(run_django({"JWT_ALGORITHM": "HS512", "JWT_SIGNING_KEY": "j" * 48}, SETUP), "JWT_ALGORITHM must be one of")


def test_production_still_requires_the_hmac_secret_under_hs256():
    _refused(run_django({}, SETUP), "JWT_SIGNING_KEY is required")


def test_check_deploy_warns_on_a_world_readable_key_file(tmp_path):
    private, _ = key_pair(tmp_path, "RS256")
    private.chmod(0o644)
    variables = {"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY_FILE": str(private), "STATIC_ROOT": str(tmp_path)}
    result = run_django(variables, ["manage.py", "check", "--deploy", "--tag", "security"])
    assert "gatehouse.W008" in result.stderr + result.stdout
    private.chmod(0o600)
    result = run_django(variables, ["manage.py", "check", "--deploy", "--tag", "security"])
    assert "gatehouse.W008" not in result.stderr + result.stdout


def test_keys_are_loaded_once_per_process(tmp_path):
    # The verification path reads no file: after the first load, removing the file changes nothing.
    private, _ = key_pair(tmp_path, "ES256")
    with signing_with("ES256", private):
        first = key_set()
        private.unlink()
        started = time.perf_counter()
        assert key_set() is first
        assert time.perf_counter() - started < 0.01


def test_the_server_refuses_to_start_with_a_missing_key_file(tmp_path):
    # The shipped server command stops on its own (it does not restart workers forever),
    # and its log says which file and why.
    env = production_env(tmp_path, JWT_ALGORITHM="EdDSA", JWT_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"))
    gunicorn = Path(sys.executable).with_name("gunicorn")
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own server command
        [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert f"JWT_PRIVATE_KEY_FILE: the key file {tmp_path / 'missing.pem'} does not exist." in result.stderr
