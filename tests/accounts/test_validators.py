"""Canonical forms of emails and usernames, and the password length cap."""

import email.headerregistry
import email.utils

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import get_default_password_validators, validate_password
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.error_codes import UserErrorCode
from accounts.mail import mail_recipient
from accounts.validators import (
    DELETED_EMAIL_DOMAIN,
    EMAIL_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    MaximumLengthValidator,
    canonical_email,
    canonical_username,
)
from tests.test_settings import PRODUCTION, start_django

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


# --- canonical_email: only what the mail layer reads as stored ----------------------------

# Each is refused with INVALID: Python's mail layer (or a mail client, or a relay) would read
# another mailbox, or a list of them, out of it.
MISREAD = [
    "=?utf-8?q?victim?=@example.com",  # RFC 2047 encoded-words, decoded by email.headerregistry
    "=?UTF-8?B?dmljdGlt?=@example.com",
    "a.=?utf-8?q?victim?=@example.com",
    "victim=?utf-8?q??=@example.com",
    "=?victim@example.com",
    '"=?utf-8?q?victim?="@example.com',  # decoded inside a quoted string too
    '"victim"@example.com',  # quoted local parts: unquoted on the envelope
    '"victim@example.com"@example.org',
    '"vic\\tim"@example.com',
    "vic\\tim@example.com",  # backslash
    "Victim <victim@example.com>",  # display name, angle brackets
    "<victim@example.com>",
    "victim@example.com (Victim)",  # comments
    "victim(x)@example.com",
    "victim@example.com, attacker@example.org",  # two recipients
    "victim@example.com;attacker@example.org",
    "victim@example.com attacker@example.org",
    "vic tim@example.com",  # whitespace inside
    "victim @example.com",
    "victim@ example.com",
    "victim\t@example.com",
    "victim.@example.com",  # dots
    ".victim@example.com",
    "vic..tim@example.com",
    "victim@example.com.",
    "victim@.example.com",
    "victim@example..com",
    "victim%example.org@example.com",  # source routes a relay may follow
    "example.org!victim@example.com",
    "victim@example.com:25",
    "victim@exam_ple.com",
    "victim@xn--a.com",  # not the encoding of any name
    "victim@xn--zz.example",
]


@pytest.mark.parametrize("typed", MISREAD)
def test_canonical_email_refuses_what_the_mail_layer_would_read_otherwise(typed):
    assert refused_code(canonical_email, typed) == UserErrorCode.INVALID.value


LOCAL_DOMAINS = [
    ("a@localhost", "a@localhost"),
    ("a@LocalHost", "a@localhost"),
    ("a@mailpit", "a@mailpit"),
    ("a@[127.0.0.1]", "a@[127.0.0.1]"),
    ("a@[10.0.0.25]", "a@[10.0.0.25]"),
    ("a@[IPv6:::1]", "a@[ipv6:::1]"),
    ("a@[ipv6:0:0:0:0:0:0:0:1]", "a@[ipv6:::1]"),
    ("a@[IPv6:FE80::1]", "a@[ipv6:fe80::1]"),
]


@pytest.mark.parametrize(("typed", "stored"), LOCAL_DOMAINS)
def test_canonical_email_refuses_local_domains_and_ip_literals_by_default(settings, typed, stored):
    settings.EMAIL_ALLOW_LOCAL_DOMAINS = False
    assert refused_code(canonical_email, typed) == UserErrorCode.INVALID.value


@pytest.mark.parametrize(("typed", "stored"), LOCAL_DOMAINS)
def test_canonical_email_accepts_local_domains_and_ip_literals_when_allowed(settings, typed, stored):
    settings.EMAIL_ALLOW_LOCAL_DOMAINS = True
    assert canonical_email(typed) == stored
    assert canonical_email(stored) == stored


@pytest.mark.parametrize("module", ["config.settings.production", "config.settings.local"])
def test_local_domains_are_refused_unless_the_environment_allows_them(monkeypatch, module):
    # given: settings loaded in a fresh interpreter, without the variable and then with it
    monkeypatch.delenv("EMAIL_ALLOW_LOCAL_DOMAINS", raising=False)
    code = "import django; django.setup(); from django.conf import settings; print(settings.EMAIL_ALLOW_LOCAL_DOMAINS)"
    variables = {**PRODUCTION, "DJANGO_SETTINGS_MODULE": module}

    # when
    unset = start_django(variables, code)
    allowed = start_django({**variables, "EMAIL_ALLOW_LOCAL_DOMAINS": "true"}, code)

    # then
    assert (unset.returncode, unset.stdout.split()) == (0, ["False"]), unset.stderr
    assert (allowed.returncode, allowed.stdout.split()) == (0, ["True"]), allowed.stderr


@pytest.mark.parametrize(
    "typed",
    [
        "a@127.0.0.1",  # a bare IP is no domain: RFC 5321 writes it as [127.0.0.1]
        "a@10.0.0.25",
        "a@0x7f.0.0.1",
        "a@2130706433",  # single labels a resolver reads as an IP
        "a@0x7f000001",
        "a@[::1]",  # an IPv6 literal needs its IPv6: tag
        "a@[IPv6:::1%eth0]",  # no zone
        "a@[127.0.0.01]",
        "a@[256.0.0.1]",
        "a@[IPv6:127.0.0.1]",
        "a@[ipv4:127.0.0.1]",
        "a@[example.com]",
        "a@[127.0.0.1",
        f"deleted-1@{DELETED_EMAIL_DOMAIN}",  # ACCOUNT_DELETION=deactivate's placeholder
    ],
)
def test_canonical_email_refuses_bare_ips_and_the_deletion_placeholder_even_when_local_domains_are_allowed(
    settings, typed
):
    settings.EMAIL_ALLOW_LOCAL_DOMAINS = True
    assert refused_code(canonical_email, typed) == UserErrorCode.INVALID.value


@pytest.mark.parametrize(
    "typed",
    ["o'brien@example.com", "a_b-c=d?e@example.com", "x+y/z{1}|~^`#$&*@example.com", "a.b.c@example.museum"],
)
def test_canonical_email_keeps_the_rest_of_the_dot_atom(typed):
    assert canonical_email(typed) == typed


# A mix of atext and of everything that means something to an address parser.
ADDRESS_PIECES = st.one_of(
    st.sampled_from(["=?utf-8?q?victim?=", '"victim"', "=?", "?=", ".", '"', "\\", "(", ")", "<", ">", ",", ";"]),
    st.sampled_from([":", " ", "\t", "@", "%", "!", "[", "]", "\u00e9", "\uff21", "\u200b", "\x00", "\r\n"]),
    st.text(alphabet="abcXYZ019!#$%&'*+-/=?^_`{|}~.", min_size=1, max_size=6),
    st.text(alphabet="abcXYZ019#$&'*+-/=?^_`{|}~", min_size=1, max_size=6),  # accepted more often
)
ADDRESSES = st.builds(
    "{}@{}".format,
    st.lists(ADDRESS_PIECES, min_size=1, max_size=6).map("".join),
    st.sampled_from(["example.com", "Example.COM", "bücher.example", "localhost", "[127.0.0.1]", "[IPv6:::1]", "a.b"]),
)


@pytest.mark.parametrize("allow_local", [False, True])
def test_every_accepted_address_is_one_plain_addr_spec_to_every_python_parser(settings, allow_local):
    """Property: what canonical_email accepts is read as itself alone by each of Python's parsers."""
    settings.EMAIL_ALLOW_LOCAL_DOMAINS = allow_local
    accepted = []

    @hypothesis_settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(ADDRESSES)
    def check(typed):
        try:
            stored = canonical_email(typed)
        except ValidationError:
            return
        accepted.append(stored)
        assert stored.isascii()
        assert stored == stored.lower()
        assert "=?" not in stored
        assert canonical_email(stored) == stored
        assert email.utils.parseaddr(stored) == ("", stored)
        assert email.utils.getaddresses([stored]) == [("", stored)]
        assert email.headerregistry.Address(addr_spec=stored).addr_spec == stored
        header = email.headerregistry.HeaderRegistry()("To", stored)
        assert [address.addr_spec for address in header.addresses] == [stored]
        assert header.addresses[0].display_name == ""
        assert mail_recipient(stored) == (stored, stored)

    check()
    # The generator must reach the accepting branch, or the property says nothing.
    assert len(accepted) >= 10


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
