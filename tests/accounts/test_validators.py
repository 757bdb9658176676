"""Canonical forms of emails and usernames, and the password length cap."""

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import get_default_password_validators, validate_password
from django.core.exceptions import ValidationError

from accounts.error_codes import UserErrorCode
from accounts.validators import (
    EMAIL_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    MaximumLengthValidator,
    canonical_email,
    canonical_username,
)

# An address of exactly 254 characters that is otherwise valid (labels of at most 63).
EMAIL_254 = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 61])


def refused_code(function, value) -> str:
    """Return the code of the single ValidationError `function(value)` raises."""
    with pytest.raises(ValidationError) as excinfo:
        function(value)
    assert len(excinfo.value.error_list) == 1
    return excinfo.value.error_list[0].code


# --- canonical_email --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("bob@example.com", "bob@example.com"),
        ("Bob@Example.COM", "bob@example.com"),
        ("BOB@EXAMPLE.COM", "bob@example.com"),
        ("  bob@example.com  ", "bob@example.com"),
        ("\tBob@Example.com\n", "bob@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ],
)
def test_canonical_email_trims_and_lowercases_the_whole_address(typed, stored):
    assert canonical_email(typed) == stored


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("User@BÜCHER.Example", "user@xn--bcher-kva.example"),
        ("user@münchen.de", "user@xn--mnchen-3ya.de"),
    ],
)
def test_canonical_email_converts_an_internationalised_domain_to_punycode(typed, stored):
    assert canonical_email(typed) == stored
    assert canonical_email(typed).isascii()


def test_canonical_email_is_idempotent():
    once = canonical_email("User@BÜCHER.Example")
    assert canonical_email(once) == once


@pytest.mark.parametrize(
    "typed",
    [
        "bob.example.com",  # no @
        "@example.com",  # empty local part
        "bob@",  # empty domain
        "@",
        "",
        "   ",
        "bob\x00@example.com",  # NUL
        "bob@exam\x00ple.com",
        "bob\x07@example.com",  # BEL
        "bob\x1b@example.com",  # ESC
        "bob\u200b@example.com",  # zero-width space (a format character)
        "bob\u202e@example.com",  # right-to-left override
        "bob smith@example.com",  # space in the local part
        "bob@exa mple.com",  # space in the domain
        "bøb@example.com",  # non-ASCII local part
        "józef@example.com",
        "用户@example.com",
        "a@b@example.com",
        "bob@-example.com",
    ],
)
def test_canonical_email_refuses_what_is_not_an_address(typed):
    assert refused_code(canonical_email, typed) == UserErrorCode.INVALID.value


def test_canonical_email_accepts_exactly_254_characters():
    assert len(EMAIL_254) == EMAIL_MAX_LENGTH == 254
    assert canonical_email(EMAIL_254) == EMAIL_254


def test_canonical_email_refuses_255_characters_as_too_long():
    assert refused_code(canonical_email, EMAIL_254 + "d") == UserErrorCode.TOO_LONG.value


def test_canonical_email_refuses_a_huge_value_as_too_long():
    assert refused_code(canonical_email, "a" * 100_000 + "@example.com") == UserErrorCode.TOO_LONG.value


def test_canonical_email_measures_length_after_trimming():
    assert canonical_email("   " + EMAIL_254 + "   ") == EMAIL_254


# --- canonical_username ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("alice", "alice"),
        ("Alice", "Alice"),  # case is kept; uniqueness ignores it
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth letters, NFKC
        ("\uff21\uff2c\uff29\uff23\uff25", "ALICE"),
        ("  alice  ", "alice"),
        ("a.b+c-d_e@f", "a.b+c-d_e@f"),
        ("user123", "user123"),
    ],
)
def test_canonical_username_normalises_with_nfkc(typed, stored):
    assert canonical_username(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "\u0430lice",  # CYRILLIC SMALL LETTER A
        "alic\u0435",  # CYRILLIC SMALL LETTER IE
        "\u03b1lice",  # GREEK SMALL LETTER ALPHA
        "ali\x00ce",  # NUL
        "alice\x00",
        "ali\x07ce",  # BEL
        "ali\u200bce",  # zero-width space
        "alice\n",  # a control character is refused, not trimmed
        "ali ce",
        "ali\u3000ce",  # ideographic space becomes a space under NFKC
        "alice!",
        "élodie",
    ],
)
def test_canonical_username_refuses_lookalikes_controls_and_spaces(typed):
    assert refused_code(canonical_username, typed) == UserErrorCode.INVALID.value


@pytest.mark.parametrize("typed", ["", "   ", "\u3000"])
def test_canonical_username_refuses_an_empty_value_as_required(typed):
    assert refused_code(canonical_username, typed) == UserErrorCode.REQUIRED.value


def test_canonical_username_accepts_exactly_150_characters():
    assert USERNAME_MAX_LENGTH == 150
    assert canonical_username("x" * 150) == "x" * 150


def test_canonical_username_refuses_151_characters_as_too_long():
    assert refused_code(canonical_username, "x" * 151) == UserErrorCode.TOO_LONG.value


def test_canonical_username_measures_length_after_normalisation():
    # "ﬀ" (one character) becomes "ff" (two) under NFKC: 76 of them are 152 characters.
    assert refused_code(canonical_username, "\ufb00" * 76) == UserErrorCode.TOO_LONG.value
    assert canonical_username("\ufb00" * 75) == "f" * 150


# --- MaximumLengthValidator -----------------------------------------------------------


def test_maximum_length_validator_accepts_exactly_max_length():
    assert MaximumLengthValidator(max_length=10).validate("x" * 10) is None


def test_maximum_length_validator_refuses_one_more_than_max_length():
    with pytest.raises(ValidationError) as excinfo:
        MaximumLengthValidator(max_length=10).validate("x" * 11)
    assert len(excinfo.value.error_list) == 1
    assert excinfo.value.error_list[0].code == UserErrorCode.PASSWORD_TOO_LONG.value
    assert excinfo.value.error_list[0].params == {"max_length": 10}


def test_maximum_length_validator_defaults_to_1024():
    validator = MaximumLengthValidator()
    assert validator.validate("x" * 1024) is None
    with pytest.raises(ValidationError) as excinfo:
        validator.validate("x" * 1025)
    assert excinfo.value.error_list[0].code == UserErrorCode.PASSWORD_TOO_LONG.value


def test_maximum_length_validator_help_text_states_the_limit():
    assert "10" in MaximumLengthValidator(max_length=10).get_help_text()


def test_configured_validators_put_the_length_cap_first():
    validators = get_default_password_validators()
    assert isinstance(validators[0], MaximumLengthValidator)
    assert validators[0].max_length == settings.PASSWORD_MAX_LENGTH == 1024


def test_validate_password_refuses_an_overlong_password_with_password_too_long():
    # given: long, not numeric, not common, not similar: only the cap can refuse it
    password = "correct-Horse-" * 74  # 1036 characters
    # when
    with pytest.raises(ValidationError) as excinfo:
        validate_password(password)
    # then
    assert [error.code for error in excinfo.value.error_list] == [UserErrorCode.PASSWORD_TOO_LONG.value]


def test_validate_password_accepts_a_long_passphrase_at_the_cap():
    password = ("correct-Horse-" * 74)[:1024]
    assert validate_password(password) is None
