"""`register` over HTTP: success, every refused input, mass assignment and rate limiting."""

import json

import pytest
from django.conf import settings
from django.test import override_settings
from graphql_relay import from_global_id

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import User
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

REGISTER = """
mutation Register($username: String!, $email: String!, $password: String!) {
  register(username: $username, email: $email, password: $password) {
    user { id username email }
    token
    errors { field message code }
  }
}
"""

ME = "{ me { id username email } }"


def register(gql, username="bob", email="bob@example.com", password=PASSWORD, **kwargs) -> dict:
    return gql(REGISTER, {"username": username, "email": email, "password": password}, **kwargs)


def refused(body: dict) -> list[tuple[str | None, str]]:
    """Return (field, code) of each payload error, asserting nothing else came back."""
    assert "errors" not in body, body
    payload = body["data"]["register"]
    assert payload["user"] is None
    assert payload["token"] is None
    for error in payload["errors"]:
        assert isinstance(error["message"], str)
        assert error["message"]
    return [(error["field"], error["code"]) for error in payload["errors"]]


# --- success ---------------------------------------------------------------------------------


def test_register_creates_a_signed_in_user(gql, db):
    # when
    before = User.objects.count()
    body = register(gql, username="Bob", email="Bob@Example.COM")

    # then
    assert "errors" not in body
    payload = body["data"]["register"]
    assert payload["errors"] == []
    assert payload["user"]["username"] == "Bob"
    assert payload["user"]["email"] == "bob@example.com"
    assert isinstance(payload["token"], str)
    assert payload["token"]
    assert User.objects.count() == before + 1
    user = User.objects.get()
    assert from_global_id(payload["user"]["id"]) == ("User", str(user.pk))
    assert user.username == "Bob"
    assert user.email == "bob@example.com"
    assert user.password != PASSWORD
    assert user.check_password(PASSWORD)
    assert user.is_active is True
    assert user.is_staff is False
    assert user.is_superuser is False
    assert user.is_email_verified is False
    assert user.last_login is not None


def test_the_register_token_authenticates_me(gql, db):
    # given
    payload = register(gql)["data"]["register"]

    # when
    body = gql(ME, token=payload["token"])

    # then
    assert body == {"data": {"me": payload["user"]}}


def test_register_trims_and_lowercases_the_whole_email(gql, db):
    body = register(gql, email="  MiXeD.Case+Tag@Example.ORG ")

    assert body["data"]["register"]["errors"] == []
    assert User.objects.get().email == "mixed.case+tag@example.org"


def test_register_never_maps_an_idn_domain_onto_another_domain(gql, db):
    # given: `straße.de` (xn--strae-oqa.de) and `strasse.de` are different domains with
    # different owners; IDNA 2003 (Python's `idna` codec) folds ß to "ss", which would hand
    # this account's mail (activation, password reset) to the owner of strasse.de.
    body = register(gql, email="hans@stra\u00dfe.de")

    # then: either refused, or stored under its own domain
    payload = body["data"]["register"]
    if payload["errors"]:
        assert refused(body) == [("email", UserErrorCode.INVALID.name)]
        assert User.objects.count() == 0
    else:
        assert User.objects.get().email == "hans@xn--strae-oqa.de"


def test_fullwidth_username_is_stored_as_ascii(gql, db):
    # given: fullwidth letters, which NFKC folds to ASCII
    body = register(gql, username="\uff42\uff4f\uff42")

    assert body["data"]["register"]["errors"] == []
    assert body["data"]["register"]["user"]["username"] == "bob"
    assert User.objects.get().username == "bob"


def test_fullwidth_username_collides_with_its_ascii_form(gql, user):
    # given: `alice` exists; its fullwidth form normalises to it
    body = register(gql, username="\uff41\uff4c\uff49\uff43\uff45")

    assert refused(body) == [("username", UserErrorCode.UNIQUE.name)]
    assert User.objects.count() == 1


def test_password_of_exactly_the_maximum_length_is_accepted(gql, db):
    password = ("a1B-" * settings.PASSWORD_MAX_LENGTH)[: settings.PASSWORD_MAX_LENGTH]

    body = register(gql, password=password)

    assert body["data"]["register"]["errors"] == []
    assert User.objects.get().check_password(password)


# --- refused input ---------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize("field", ["username", "email", "password"])
def test_blank_input_is_required(gql, db, field, blank):
    # given
    values = {"username": "bob", "email": "bob@example.com", "password": PASSWORD, field: blank}

    # when
    body = gql(REGISTER, values)

    # then
    assert refused(body) == [(field, UserErrorCode.REQUIRED.name)]
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "a@",
        "@b.com",
        "a b@c.com",
        "a@b@c",
        "a\u0000@b.com",
        "a\u0007@b.com",
        "a@b.com\u200b",
        "a\n@b.com",
        "bob@exa mple.com",
    ],
)
def test_invalid_email_is_refused(gql, db, email):
    body = register(gql, email=email)

    assert refused(body) == [("email", UserErrorCode.INVALID.name)]
    assert User.objects.count() == 0


def test_email_longer_than_254_characters_is_too_long(gql, db):
    email = "a" * 243 + "@example.com"  # 255 characters
    assert len(email) == 255

    body = register(gql, email=email)

    assert refused(body) == [("email", UserErrorCode.TOO_LONG.name)]
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "username",
    [
        "bob smith",
        "bob\u0000",
        "<script>",
        "\u0430lice",  # Cyrillic a
        "bob\u200b",  # zero-width space
        "bob/../etc",
        "bob'; DROP TABLE accounts_user; --",
    ],
)
def test_invalid_username_is_refused(gql, db, username):
    body = register(gql, username=username)

    assert refused(body) == [("username", UserErrorCode.INVALID.name)]
    assert User.objects.count() == 0


def test_username_of_151_characters_is_too_long(gql, db):
    body = register(gql, username="b" * 151)

    assert refused(body) == [("username", UserErrorCode.TOO_LONG.name)]
    assert User.objects.count() == 0


def test_username_of_150_characters_is_accepted(gql, db):
    body = register(gql, username="b" * 150)

    assert body["data"]["register"]["errors"] == []
    assert User.objects.get().username == "b" * 150


def test_duplicate_email_in_another_case_is_unique(gql, user):
    body = register(gql, username="bob", email="ALICE@Example.com")

    assert refused(body) == [("email", UserErrorCode.UNIQUE.name)]
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


def test_duplicate_username_in_another_case_is_unique(gql, user):
    body = register(gql, username="ALICE", email="other@example.com")

    assert refused(body) == [("username", UserErrorCode.UNIQUE.name)]
    assert list(User.objects.values_list("email", flat=True)) == ["alice@example.com"]


def test_duplicate_username_and_email_are_both_reported(gql, user):
    body = register(gql, username="Alice", email="Alice@Example.com")

    assert sorted(refused(body)) == [("email", UserErrorCode.UNIQUE.name), ("username", UserErrorCode.UNIQUE.name)]
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("username", "email", "password", "code"),
    [
        ("bob", "bob@example.com", "Xy7$kq", UserErrorCode.PASSWORD_TOO_SHORT),
        ("bob", "bob@example.com", "password123", UserErrorCode.PASSWORD_TOO_COMMON),
        ("bob", "bob@example.com", "iloveyou12", UserErrorCode.PASSWORD_TOO_COMMON),
        ("bob", "bob@example.com", "8675309123456", UserErrorCode.PASSWORD_ENTIRELY_NUMERIC),
        ("marguerite", "m@example.com", "marguerite99", UserErrorCode.PASSWORD_TOO_SIMILAR),
        ("bob", "bartholomew@example.com", "bartholomew7", UserErrorCode.PASSWORD_TOO_SIMILAR),
    ],
)
def test_each_password_validator_is_applied(gql, db, username, email, password, code):
    body = register(gql, username=username, email=email, password=password)

    assert refused(body) == [("password", code.name)]
    assert User.objects.count() == 0


def test_password_longer_than_the_maximum_is_too_long(gql, db):
    password = ("a1B-" * settings.PASSWORD_MAX_LENGTH)[: settings.PASSWORD_MAX_LENGTH + 1]

    body = register(gql, password=password)

    assert refused(body) == [("password", UserErrorCode.PASSWORD_TOO_LONG.name)]
    assert User.objects.count() == 0


def test_several_refusals_come_back_together(gql, db):
    body = register(gql, username="bob smith", email="not-an-email", password="4093718")

    assert sorted(refused(body)) == sorted(
        [
            ("username", UserErrorCode.INVALID.name),
            ("email", UserErrorCode.INVALID.name),
            ("password", UserErrorCode.PASSWORD_TOO_SHORT.name),
            ("password", UserErrorCode.PASSWORD_ENTIRELY_NUMERIC.name),
        ]
    )
    assert User.objects.count() == 0


def test_refused_messages_never_echo_the_password(gql, db):
    # given: a password that the validators refuse (too similar to the username)
    password = "bobsmith-quantum"

    body = register(gql, username="bobsmith-quantum", email="nope", password=password)

    assert ("password", UserErrorCode.PASSWORD_TOO_SIMILAR.name) in refused(body)
    assert password not in json.dumps(body)
    assert User.objects.count() == 0


# --- mass assignment and variable types ------------------------------------------------------


@pytest.mark.parametrize("argument", ["isStaff", "isSuperuser", "isActive", "isEmailVerified"])
def test_privileged_flags_cannot_be_set(gql, db, argument):
    # given
    query = f"""
      mutation {{
        register(username: "bob", email: "bob@example.com", password: "{PASSWORD}", {argument}: true) {{
          user {{ id }}
          errors {{ field code }}
        }}
      }}
    """

    # when
    body = gql(query)

    # then
    assert error_codes(body) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]
    assert "data" not in body
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "variables",
    [
        {"username": "bob", "email": "bob@example.com", "password": 987654321},
        {"username": "bob", "email": "bob@example.com", "password": ["987654321"]},
        {"username": "bob", "email": {"x": "987654321"}, "password": PASSWORD},
        {"username": 987654321, "email": "bob@example.com", "password": PASSWORD},
        {"username": "bob", "email": "bob@example.com", "password": None},
    ],
)
def test_wrong_variable_types_are_bad_user_input_without_echo(gql, db, variables):
    body = gql(REGISTER, variables)

    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert "data" not in body
    assert "987654321" not in json.dumps(body)
    assert User.objects.count() == 0


def test_a_missing_variable_is_bad_user_input(gql, db):
    body = gql(REGISTER, {"username": "bob", "email": "bob@example.com"})

    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert User.objects.count() == 0


def test_register_twice_in_one_document_is_too_complex(gql, db):
    query = """
      mutation {
        a: register(username: "bob", email: "bob@example.com", password: "correct-Horse-battery-staple") { token }
        b: register(username: "eve", email: "eve@example.com", password: "correct-Horse-battery-staple") { token }
      }
    """

    body = gql(query)

    assert error_codes(body) == [RequestErrorCode.QUERY_TOO_COMPLEX.value]
    assert "data" not in body
    assert User.objects.count() == 0


# --- rate limit ------------------------------------------------------------------------------


def test_register_is_rate_limited_per_address(gql, db):
    # given: two registrations allowed per address and window
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REGISTER_RATE_PER_ADDRESS": (2, 60)}):
        address = {"REMOTE_ADDR": "203.0.113.7"}
        assert register(gql, "bob", "bob@example.com", headers=address)["data"]["register"]["errors"] == []
        assert register(gql, "eve", "eve@example.com", headers=address)["data"]["register"]["errors"] == []

        # when
        body = register(gql, "mallory", "mallory@example.com", headers=address)
        other = register(gql, "trent", "trent@example.com", headers={"REMOTE_ADDR": "203.0.113.8"})

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(retry_after, int)
    assert 1 <= retry_after <= 60
    assert body["data"] == {"register": None}
    assert other["data"]["register"]["errors"] == []
    assert sorted(User.objects.values_list("username", flat=True)) == ["bob", "eve", "trent"]


def test_refused_registrations_count_toward_the_address_limit(gql, db):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "REGISTER_RATE_PER_ADDRESS": (2, 60)}):
        # given: two attempts refused for their input
        assert len(refused(register(gql, "bob smith"))) == 1
        assert len(refused(register(gql, "bob", "nope"))) == 1

        # when: a valid one
        body = register(gql)

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert User.objects.count() == 0
