"""The production password hashers: Argon2id at an OWASP minimum configuration, older hashes upgraded.

The test settings hash with MD5 for speed; these tests switch to the list that
config.settings.base ships, so they exercise exactly what production runs."""

import base64

import argon2
import pytest
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    PBKDF2PasswordHasher,
    check_password,
    identify_hasher,
    make_password,
)
from django.test import override_settings

import config.settings.base as base_settings
from accounts.hashers import Argon2idPasswordHasher
from accounts.models import User
from tests.conftest import PASSWORD

PRODUCTION_HASHERS = override_settings(PASSWORD_HASHERS=base_settings.PASSWORD_HASHERS)
# The Argon2id configurations of the OWASP Password Storage Cheat Sheet, which "provide an
# equal level of defense": (memory in KiB, passes, lanes).
OWASP_ARGON2ID = {(47104, 1, 1), (19456, 2, 1), (12288, 3, 1), (9216, 4, 1), (7168, 5, 1)}
OWASP_ROW = (7168, 5, 1)  # the one production uses: the fastest here, and the least memory


def argon2_parameters(encoded: str) -> dict:
    """Split `argon2$argon2id$v=19$m=...,t=...,p=...$salt$hash` into its parts."""
    algorithm, variety, version, params, salt, digest = encoded.split("$")
    return {
        "algorithm": algorithm,
        "variety": variety,
        "version": version,
        **{key: int(value) for key, value in (pair.split("=") for pair in params.split(","))},
        "salt": salt,
        "digest": digest,
    }


def test_base_settings_prefer_the_argon2id_hasher():
    assert base_settings.PASSWORD_HASHERS[0] == "accounts.hashers.Argon2idPasswordHasher"
    # Older hashes must keep verifying.
    assert "django.contrib.auth.hashers.Argon2PasswordHasher" in base_settings.PASSWORD_HASHERS
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in base_settings.PASSWORD_HASHERS


def test_base_settings_validate_the_password_length_first():
    assert base_settings.AUTH_PASSWORD_VALIDATORS[0]["NAME"] == "accounts.validators.MaximumLengthValidator"


@PRODUCTION_HASHERS
def test_make_password_produces_argon2id_at_owasp_parameters():
    # when
    encoded = make_password(PASSWORD)
    # then
    parts = argon2_parameters(encoded)
    assert parts["algorithm"] == "argon2"
    assert parts["variety"] == "argon2id"
    assert parts["version"] == "v=19"
    assert (parts["m"], parts["t"], parts["p"]) == OWASP_ROW
    assert parts["salt"]
    assert parts["digest"]
    assert PASSWORD not in encoded
    assert isinstance(identify_hasher(encoded), Argon2PasswordHasher)


@PRODUCTION_HASHERS
def test_argon2id_hash_verifies_the_right_password_only():
    encoded = make_password(PASSWORD)
    assert check_password(PASSWORD, encoded)
    assert not check_password(PASSWORD + "x", encoded)
    assert not check_password("", encoded)


@PRODUCTION_HASHERS
def test_argon2id_hashes_are_salted():
    assert make_password(PASSWORD) != make_password(PASSWORD)


@PRODUCTION_HASHERS
def test_a_fresh_argon2id_hash_needs_no_update():
    assert not Argon2idPasswordHasher().must_update(make_password(PASSWORD))


@PRODUCTION_HASHERS
def test_user_password_is_stored_as_argon2id(db):
    user = User.objects.create_user(username="bob", email="bob@example.com", password=PASSWORD)
    parts = argon2_parameters(User.objects.get(pk=user.pk).password)
    assert (parts["variety"], parts["m"], parts["t"], parts["p"]) == ("argon2id", 7168, 5, 1)


@PRODUCTION_HASHERS
def test_an_old_django_default_argon2_hash_verifies_and_is_upgraded_on_login(user):
    # given: a hash made with Django's default Argon2 parameters (100 MiB, 8 lanes)
    old = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())
    old_parts = argon2_parameters(old)
    assert (old_parts["m"], old_parts["t"], old_parts["p"]) != OWASP_ROW
    User.objects.filter(pk=user.pk).update(password=old)
    user.refresh_from_db()
    # when
    assert user.check_password(PASSWORD)
    # then: the stored hash was replaced by one at the new parameters
    stored = User.objects.get(pk=user.pk).password
    assert stored != old
    parts = argon2_parameters(stored)
    assert (parts["variety"], parts["m"], parts["t"], parts["p"]) == ("argon2id", 7168, 5, 1)
    assert check_password(PASSWORD, stored)


@PRODUCTION_HASHERS
def test_a_wrong_password_does_not_upgrade_an_old_hash(user):
    old = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())
    User.objects.filter(pk=user.pk).update(password=old)
    user.refresh_from_db()
    assert not user.check_password("wrong-password")
    assert User.objects.get(pk=user.pk).password == old


@PRODUCTION_HASHERS
def test_a_pbkdf2_hash_verifies_and_is_upgraded_to_argon2id_on_login(user):
    # given
    old = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    User.objects.filter(pk=user.pk).update(password=old)
    user.refresh_from_db()
    # when
    assert user.check_password(PASSWORD)
    # then
    parts = argon2_parameters(User.objects.get(pk=user.pk).password)
    assert (parts["variety"], parts["m"], parts["t"], parts["p"]) == ("argon2id", 7168, 5, 1)


@pytest.mark.parametrize("hasher", [Argon2idPasswordHasher, Argon2PasswordHasher])
def test_both_argon2_hashers_share_the_algorithm_name(hasher):
    # The shared name is what lets Django's hasher verify and the new one upgrade.
    assert hasher.algorithm == "argon2"


def test_the_production_parameters_are_an_owasp_argon2id_configuration():
    hasher = Argon2idPasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) in OWASP_ARGON2ID


@PRODUCTION_HASHERS
def test_the_hash_has_a_128_bit_salt_and_a_256_bit_digest():
    parts = argon2_parameters(make_password(PASSWORD))
    assert len(base64.b64decode(parts["salt"] + "==")) == 16
    assert len(base64.b64decode(parts["digest"] + "=")) == 32


def test_encoding_is_deterministic_for_a_salt_and_differs_between_salts():
    hasher = Argon2idPasswordHasher()
    assert hasher.encode(PASSWORD, "a" * 22) == hasher.encode(PASSWORD, "a" * 22)
    assert hasher.encode(PASSWORD, "a" * 22) != hasher.encode(PASSWORD, "b" * 22)


def test_libsodium_hashes_are_standard_argon2id_that_argon2_cffi_reads():
    # The stored form must outlive the library that wrote it.
    encoded = Argon2idPasswordHasher().encode(PASSWORD, Argon2idPasswordHasher().salt())
    assert argon2.PasswordHasher().verify("$" + encoded.split("$", 1)[1], PASSWORD)
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.PasswordHasher().verify("$" + encoded.split("$", 1)[1], PASSWORD + "x")


@PRODUCTION_HASHERS
@pytest.mark.parametrize(
    ("variety", "memory", "passes", "lanes"),
    [(argon2.Type.ID, 19456, 2, 1), (argon2.Type.ID, 8192, 1, 4), (argon2.Type.I, 8192, 2, 1)],
    ids=["argon2id-owasp-19mib", "argon2id-4-lanes", "argon2i"],
)
def test_argon2_cffi_hashes_verify_and_are_upgraded_on_login(user, variety, memory, passes, lanes):
    # given: a hash another tool (or an earlier Gatehouse) wrote with argon2-cffi
    old = "argon2" + argon2.PasswordHasher(time_cost=passes, memory_cost=memory, parallelism=lanes, type=variety).hash(
        PASSWORD
    )
    User.objects.filter(pk=user.pk).update(password=old)
    user.refresh_from_db()
    # then: a wrong password neither verifies nor upgrades it
    assert not user.check_password(PASSWORD + "x")
    assert User.objects.get(pk=user.pk).password == old
    # when
    assert user.check_password(PASSWORD)
    # then
    parts = argon2_parameters(User.objects.get(pk=user.pk).password)
    assert (parts["variety"], parts["m"], parts["t"], parts["p"]) == ("argon2id", *OWASP_ROW)


@pytest.mark.parametrize(
    "encoded",
    [
        "argon2$argon2id$v=19$m=7168,t=5,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
        "argon2$argon2id$v=19$m=7168,t=5,p=1$!!!$AAAA",
        "argon2$argon2id$v=19$m=1,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43,
        "argon2$argon2id$garbage",
    ],
    ids=["no digest", "bad base64", "impossible parameters", "garbage"],
)
def test_a_corrupt_stored_hash_never_verifies(encoded):
    assert Argon2idPasswordHasher().verify(PASSWORD, encoded) is False
