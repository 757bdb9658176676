"""`tokenAuth` over HTTP: sign-in, identical failures, document limits and rate limits."""

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from graphql_relay import from_global_id

from accounts.error_codes import AuthErrorCode
from accounts.models import User
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

TOKEN_AUTH = """
mutation TokenAuth($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) {
    token
    payload
    refreshExpiresIn
    user { id username email lastLogin }
  }
}
"""


def login(gql, password=PASSWORD, **identifier) -> dict:
    """Post tokenAuth with `email=` and/or `username=`; headers= goes to the request."""
    headers = identifier.pop("headers", None)
    return gql(TOKEN_AUTH, {"password": password, **identifier}, headers=headers)


def assert_signed_in(body: dict, user: User) -> dict:
    assert "errors" not in body, body
    payload = body["data"]["tokenAuth"]
    assert payload["user"]["username"] == user.username
    assert from_global_id(payload["user"]["id"]) == ("User", str(user.pk))
    return payload


def assert_invalid_credentials(body: dict) -> None:
    assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert body["data"] == {"tokenAuth": None}


def rate(name: str, value):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, name: value})


# --- success ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.Com", " alice@example.com "]
)
def test_sign_in_by_email_in_any_case(gql, user, email):
    body = login(gql, email=email)

    assert_signed_in(body, user)


@pytest.mark.parametrize("username", ["alice", "ALICE", "aLiCe"])
def test_sign_in_by_username_in_any_case(gql, user, username):
    body = login(gql, username=username)

    assert_signed_in(body, user)


def test_sign_in_returns_a_token_and_its_claims(gql, user):
    # when
    payload = assert_signed_in(login(gql, email="alice@example.com"), user)

    # then
    claims = payload["payload"]
    assert claims["sub"] == str(user.pk)
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == settings.JWT_ACCESS_TOKEN_LIFETIME
    assert isinstance(payload["refreshExpiresIn"], int)
    assert payload["refreshExpiresIn"] > claims["exp"]
    assert payload["user"]["email"] == "alice@example.com"
    me = gql("{ me { username } }", token=payload["token"])
    assert me == {"data": {"me": {"username": "alice"}}}


def test_sign_in_updates_last_login(gql, user):
    # given
    assert user.last_login is None
    before = timezone.now()

    # when
    payload = assert_signed_in(login(gql, email="alice@example.com"), user)

    # then
    user.refresh_from_db()
    assert user.last_login is not None
    assert user.last_login >= before.replace(microsecond=0)
    assert payload["user"]["lastLogin"] is not None


def test_password_of_exactly_the_maximum_length_signs_in(gql, make_user):
    password = ("a1B-" * settings.PASSWORD_MAX_LENGTH)[: settings.PASSWORD_MAX_LENGTH]
    user = make_user(username="long", email="long@example.com", password=password)

    body = login(gql, email="long@example.com", password=password)

    assert_signed_in(body, user)


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"email": "nobody@example.com", "password": PASSWORD}, id="unknown-email"),
        pytest.param({"username": "nobody", "password": PASSWORD}, id="unknown-username"),
        pytest.param({"email": "alice@example.com", "password": "wrong-Horse-battery-staple"}, id="wrong-password"),
        pytest.param({"username": "alice", "password": "wrong-Horse-battery-staple"}, id="wrong-password-username"),
        pytest.param({"email": "alice@example.com", "password": ""}, id="empty-password"),
        pytest.param({"email": "not an email", "password": PASSWORD}, id="malformed-email"),
        pytest.param({"email": "alice\u0000@example.com", "password": PASSWORD}, id="nul-in-email"),
        pytest.param({"email": "", "password": PASSWORD}, id="empty-email"),
        pytest.param({"username": "alice smith", "password": PASSWORD}, id="malformed-username"),
        pytest.param({"email": "a" * 300 + "@example.com", "password": PASSWORD}, id="oversized-email"),
        pytest.param(
            {"email": "alice@example.com", "password": PASSWORD + "x" * settings.PASSWORD_MAX_LENGTH},
            id="password-over-max",
        ),
    ],
)
def test_failed_sign_in_is_invalid_credentials(gql, user, variables):
    # when
    body = gql(TOKEN_AUTH, variables)

    # then
    assert_invalid_credentials(body)
    user.refresh_from_db()
    assert user.last_login is None


def test_inactive_user_cannot_sign_in(gql, make_user):
    user = make_user(username="gone", email="gone@example.com", is_active=False)

    body = login(gql, email="gone@example.com")

    assert_invalid_credentials(body)
    user.refresh_from_db()
    assert user.last_login is None


def test_unknown_wrong_and_inactive_fail_identically(gql, user, make_user):
    # given
    make_user(username="gone", email="gone@example.com", is_active=False)

    # when: the same document, variables of the same shape
    unknown = login(gql, email="nobody@example.com")
    wrong = login(gql, email="alice@example.com", password="wrong-Horse-battery-staple")
    inactive = login(gql, email="gone@example.com")

    # then: the whole bodies are equal, message, locations, path and extensions included
    assert_invalid_credentials(unknown)
    assert unknown == wrong == inactive
    assert set(unknown["errors"][0]["extensions"]) == {"code"}
    assert User.objects.filter(last_login__isnull=False).count() == 0


def test_sign_in_failures_by_username_match_those_by_email(gql, user):
    by_email = login(gql, email="nobody@example.com")
    by_username = login(gql, username="alice", password="wrong-Horse-battery-staple")

    assert_invalid_credentials(by_email)
    assert by_email["errors"][0]["message"] == by_username["errors"][0]["message"]
    assert by_email["errors"][0]["extensions"] == by_username["errors"][0]["extensions"]


@pytest.mark.parametrize(
    "identifier",
    [
        pytest.param({}, id="neither"),
        pytest.param({"email": None, "username": None}, id="both-null"),
        pytest.param({"email": "alice@example.com", "username": "alice"}, id="both"),
    ],
)
def test_sign_in_needs_exactly_one_identifier(gql, user, identifier):
    body = login(gql, **identifier)

    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert body["data"] == {"tokenAuth": None}
    user.refresh_from_db()
    assert user.last_login is None


def test_token_auth_twice_in_one_document_is_too_complex(gql, user):
    # given: two sign-ins hidden behind aliases
    query = f"""
      mutation {{
        a: tokenAuth(email: "alice@example.com", password: "{PASSWORD}") {{ token }}
        b: tokenAuth(email: "alice@example.com", password: "{PASSWORD}") {{ token }}
      }}
    """

    # when
    body = gql(query)

    # then
    assert error_codes(body) == [RequestErrorCode.QUERY_TOO_COMPLEX.value]
    assert "data" not in body
    user.refresh_from_db()
    assert user.last_login is None


def test_token_auth_twice_through_fragments_is_too_complex(gql, user):
    query = f"""
      mutation {{ ...A ...B }}
      fragment A on Mutation {{ a: tokenAuth(email: "alice@example.com", password: "{PASSWORD}") {{ token }} }}
      fragment B on Mutation {{ b: tokenAuth(email: "alice@example.com", password: "x") {{ token }} }}
    """

    body = gql(query)

    assert error_codes(body) == [RequestErrorCode.QUERY_TOO_COMPLEX.value]
    assert "data" not in body
    user.refresh_from_db()
    assert user.last_login is None


# --- rate limits -----------------------------------------------------------------------------


def test_fourth_attempt_on_an_account_is_rate_limited_even_with_the_right_password(gql, user):
    # given: 3 attempts per account and minute, spent on a success and two failures
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        assert_signed_in(login(gql, email="alice@example.com"), user)
        assert_invalid_credentials(login(gql, email="alice@example.com", password="wrong-1"))
        assert_invalid_credentials(login(gql, email="ALICE@example.com", password="wrong-2"))
        user.refresh_from_db()
        last_login = user.last_login

        # when
        body = login(gql, email="alice@example.com")

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert body["data"] == {"tokenAuth": None}
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    assert isinstance(retry_after, int)
    assert not isinstance(retry_after, bool)
    assert 1 <= retry_after <= 60
    user.refresh_from_db()
    assert user.last_login == last_login


def test_successes_count_toward_the_account_limit(gql, user):
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(3):
            assert_signed_in(login(gql, email="alice@example.com"), user)

        body = login(gql, email="alice@example.com")

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]


def test_account_limit_does_not_affect_another_account(gql, user, make_user):
    # given
    bob = make_user(username="bob", email="bob@example.com")
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(4):
            login(gql, email="alice@example.com", password="wrong")
        assert error_codes(login(gql, email="alice@example.com")) == [AuthErrorCode.RATE_LIMITED.value]

        # when
        body = login(gql, email="bob@example.com")

    # then
    assert_signed_in(body, bob)


def test_account_limit_applies_to_unknown_accounts(gql, db):
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(3):
            assert_invalid_credentials(login(gql, email="nobody@example.com"))

        body = login(gql, email="NOBODY@example.com")

    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]


def test_address_limit_spans_accounts(gql, make_user):
    # given: three different accounts tried from one address
    users = [make_user() for _ in range(4)]
    address = {"REMOTE_ADDR": "198.51.100.4"}
    with rate("LOGIN_RATE_PER_ADDRESS", (3, 60)):
        for user in users[:3]:
            assert_signed_in(login(gql, email=user.email, headers=address), user)

        # when
        body = login(gql, email=users[3].email, headers=address)
        elsewhere = login(gql, email=users[3].email, headers={"REMOTE_ADDR": "198.51.100.5"})

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert 1 <= body["errors"][0]["extensions"]["retryAfter"] <= 60
    assert_signed_in(elsewhere, users[3])


def test_with_one_trusted_proxy_the_last_forwarded_address_is_the_client(gql, make_user):
    # given: the client forges different left-hand entries; the proxy appended 9.9.9.9
    users = [make_user() for _ in range(3)]
    settings_ = {**settings.GATEHOUSE, "TRUSTED_PROXY_COUNT": 1, "LOGIN_RATE_PER_ADDRESS": (2, 60)}
    with override_settings(GATEHOUSE=settings_):
        proxy = {"REMOTE_ADDR": "10.0.0.1"}
        first = login(gql, email=users[0].email, headers={**proxy, "HTTP_X_FORWARDED_FOR": "1.2.3.4, 9.9.9.9"})
        second = login(gql, email=users[1].email, headers={**proxy, "HTTP_X_FORWARDED_FOR": "5.6.7.8, 9.9.9.9"})

        # when
        third = login(gql, email=users[2].email, headers={**proxy, "HTTP_X_FORWARDED_FOR": "7.7.7.7,9.9.9.9"})
        other_client = login(gql, email=users[2].email, headers={**proxy, "HTTP_X_FORWARDED_FOR": "9.9.9.9, 8.8.8.8"})

    # then
    assert_signed_in(first, users[0])
    assert_signed_in(second, users[1])
    assert error_codes(third) == [AuthErrorCode.RATE_LIMITED.value]
    assert_signed_in(other_client, users[2])


def test_without_trusted_proxies_forwarded_for_is_ignored(gql, make_user):
    # given: each request claims another address; the socket address is the same
    users = [make_user() for _ in range(3)]
    settings_ = {**settings.GATEHOUSE, "TRUSTED_PROXY_COUNT": 0, "LOGIN_RATE_PER_ADDRESS": (2, 60)}
    with override_settings(GATEHOUSE=settings_):
        for n, user in enumerate(users[:2]):
            headers = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": f"203.0.113.{n}"}
            assert_signed_in(login(gql, email=user.email, headers=headers), user)

        # when
        body = login(
            gql, email=users[2].email, headers={"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "203.0.113.99"}
        )

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    users[2].refresh_from_db()
    assert users[2].last_login is None


def test_an_accounts_email_and_username_share_one_budget(gql, user):
    # given: alice's budget spent through her email
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(3):
            assert_invalid_credentials(login(gql, email="alice@example.com", password="wrong"))
            assert_invalid_credentials(login(gql, email="someone.else@example.com", password="wrong"))
        assert error_codes(login(gql, email="alice@example.com")) == [AuthErrorCode.RATE_LIMITED.value]

        # when: her username is tried, even with the right password
        body = login(gql, username="alice")
        # and another identifier's budget is its own
        other = login(gql, email="someone.else@example.com", password="wrong")

    # then: one budget per account, whatever names it (guessing cannot be doubled by
    # alternating identifiers); an identifier with no account has a budget of its own
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert error_codes(other) == [AuthErrorCode.RATE_LIMITED.value]
    user.refresh_from_db()
    assert user.last_login is None


def test_account_limit_cannot_be_escaped_with_unicode_forms_of_the_username(gql, user):
    # given: the account's budget spent by username
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(3):
            assert_invalid_credentials(login(gql, username="alice", password="wrong"))

        # when: fullwidth letters, which NFKC folds to the same account
        body = login(gql, username="\uff41lice")

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    user.refresh_from_db()
    assert user.last_login is None


def test_account_limit_cannot_be_escaped_with_the_unicode_form_of_the_domain(gql, make_user):
    # given: an account on an internationalised domain, its budget spent with the ASCII form
    user = make_user(username="hans", email="hans@xn--bcher-kva.de")
    with rate("LOGIN_RATE_PER_ACCOUNT", (3, 60)):
        for _ in range(3):
            assert_invalid_credentials(login(gql, email="hans@xn--bcher-kva.de", password="wrong"))

        # when: the Unicode form of the same address
        body = login(gql, email="hans@b\u00fccher.de")

    # then
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    user.refresh_from_db()
    assert user.last_login is None
