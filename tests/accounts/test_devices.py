"""Device tokens (OWASP's device cookie): bound to one account, signed, checked without a query."""

import time

import pytest
from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from accounts.cookies import (
    device_cookie_apply,
    device_cookie_name,
    device_token_deliver,
    device_token_from_request,
)
from accounts.devices import device_id_for, device_token_issue
from accounts.middleware import JSONWebTokenMiddleware
from accounts.models import User


@pytest.fixture
def other(make_user):
    return make_user(username="mallory", email="mallory@example.com")


def test_a_token_names_its_device_for_its_account(user, django_assert_num_queries):
    # given
    token = device_token_issue(user=user)
    # when
    with django_assert_num_queries(0):
        device_id = device_id_for(token, user=user)
    # then
    assert device_id
    assert device_id not in (str(user.pk), user.email)
    assert user.email not in token


def test_each_token_is_a_new_device(user):
    first, second = device_token_issue(user=user), device_token_issue(user=user)
    assert first != second
    assert device_id_for(first, user=user) != device_id_for(second, user=user)


def test_another_accounts_token_is_nothing(user, other, django_assert_num_queries):
    token = device_token_issue(user=other)
    with django_assert_num_queries(0):
        assert device_id_for(token, user=user) is None
    assert device_id_for(token, user=other) is not None


def tampered(token: str) -> list[str]:
    value, timestamp, signature = token.rsplit(":", 2)
    account, device = value.split(".", 1)
    flipped = "A" if signature[0] != "A" else "B"
    later = timestamp[:-1] + ("1" if timestamp[-1] == "0" else "0")
    return [
        f"{value}:{timestamp}:{flipped}{signature[1:]}",  # signature changed
        f"{int(account) + 1}.{device}:{timestamp}:{signature}",  # another account's number
        f"{account}.{device}x:{timestamp}:{signature}",  # another device
        f"{value}:{later}:{signature}",  # another time
        f"{value}:{signature}",  # no time
        token + " ",
    ]


def test_tampered_tokens_are_nothing(user, django_assert_num_queries):
    token = device_token_issue(user=user)
    with django_assert_num_queries(0):
        assert [device_id_for(bad, user=user) for bad in tampered(token)] == [None] * 6


def test_tokens_signed_otherwise_are_nothing(user):
    device = "a-device-id"
    assert device_id_for(signing.TimestampSigner().sign(f"{user.pk}.{device}"), user=user) is None
    assert device_id_for(signing.TimestampSigner(salt="other").sign(f"{user.pk}.{device}"), user=user) is None
    with override_settings(SECRET_KEY="another-secret-key-" + "x" * 40):
        foreign = device_token_issue(user=user)
    assert device_id_for(foreign, user=user) is None


def test_an_expired_token_is_nothing(user, monkeypatch):
    # given: a token issued just over a lifetime ago
    issued_at = time.time() - settings.DEVICE_TOKEN_LIFETIME - 5
    monkeypatch.setattr(signing.time, "time", lambda: issued_at)
    old = device_token_issue(user=user)
    monkeypatch.undo()
    # then
    assert device_id_for(old, user=user) is None
    with override_settings(DEVICE_TOKEN_LIFETIME=settings.DEVICE_TOKEN_LIFETIME + 60):
        assert device_id_for(old, user=user) is not None


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        "x",
        "a:b:c",
        "1.x:1:2",
        ":::",
        "é" * 40,
        "\x00" * 40,
        "1." + "a" * 10_000,
        12345,
        b"bytes",
        ["list"],
    ],
)
def test_garbage_is_nothing_and_never_an_exception(user, garbage, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert device_id_for(garbage, user=user) is None


def test_an_oversized_token_is_refused_unread(user):
    token = device_token_issue(user=user)
    assert device_id_for(token + "=" * 300, user=user) is None


def test_no_account_means_no_device(user):
    token = device_token_issue(user=user)
    assert device_id_for(token, user=None) is None
    assert device_id_for(token, user=User(username="unsaved", email="unsaved@example.com")) is None


# --- cookie mode --------------------------------------------------------------------------


def cookie_mode(enabled: bool = True, path: str = "/graphql"):
    return override_settings(
        GATEHOUSE={**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE": enabled, "REFRESH_TOKEN_COOKIE_PATH": path}
    )


def test_without_cookie_mode_the_token_travels_in_the_body():
    request = RequestFactory().post("/graphql")
    response = HttpResponse()
    # when
    body = device_token_deliver(request, "the-token")
    device_cookie_apply(request, response)
    # then
    assert body == "the-token"
    assert not response.cookies


def test_without_cookie_mode_only_the_argument_is_read():
    request = RequestFactory().post("/graphql")
    request.COOKIES[device_cookie_name()] = "from-cookie"
    assert device_token_from_request(request, None) is None
    assert device_token_from_request(request, "from-argument") == "from-argument"


@pytest.mark.parametrize(
    ("path", "name"), [("/graphql", "__Secure-gatehouse_device"), ("/", "__Host-gatehouse_device")]
)
def test_in_cookie_mode_the_middleware_sets_the_device_cookie(path, name):
    # given: a view that delivers a device token, behind the GraphQL middleware
    def view(request):
        assert device_token_deliver(request, "the-token") is None
        return HttpResponse()

    with cookie_mode(path=path):
        # when
        response = JSONWebTokenMiddleware(view)(RequestFactory().post("/graphql"))

    # then: its own cookie, with the refresh cookie's attributes, as long-lived as the token
    cookie = response.cookies[name]
    assert cookie.value == "the-token"
    assert cookie["path"] == path
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == settings.DEVICE_TOKEN_LIFETIME
    assert not cookie["domain"]
    assert not any(key.endswith("gatehouse_refresh") for key in response.cookies)


def test_in_cookie_mode_the_cookie_is_read_without_an_origin_check():
    # given: a cookie-mode request with no Origin at all
    request = RequestFactory().post("/graphql")
    with cookie_mode():
        request.COOKIES[device_cookie_name()] = "from-cookie"
        # then: the argument wins, else the cookie
        assert device_token_from_request(request, "from-argument") == "from-argument"
        assert device_token_from_request(request, None) == "from-cookie"
        del request.COOKIES[device_cookie_name()]
        assert device_token_from_request(request, None) is None


def test_the_strict_same_site_setting_applies_to_the_device_cookie():
    request = RequestFactory().post("/graphql")
    response = HttpResponse()
    config = {**settings.GATEHOUSE, "REFRESH_TOKEN_COOKIE": True, "REFRESH_TOKEN_COOKIE_SAMESITE": "Strict"}
    with override_settings(GATEHOUSE=config):
        device_token_deliver(request, "the-token")
        device_cookie_apply(request, response)
    assert response.cookies["__Secure-gatehouse_device"]["samesite"] == "Strict"


def test_a_password_change_kills_every_device_token(user, django_assert_num_queries):
    # given: two devices of the account
    first, second = device_token_issue(user=user), device_token_issue(user=user)
    # when: the password changes (by any path: the hash changes)
    user.set_password("a-Brand-new-passphrase-42")
    # then: neither is a device any more; a token issued now is
    with django_assert_num_queries(0):
        assert [device_id_for(token, user=user) for token in (first, second)] == [None, None]
    assert device_id_for(device_token_issue(user=user), user=user) is not None


def test_a_token_can_be_renewed_for_the_same_device(user):
    token = device_token_issue(user=user)
    device = device_id_for(token, user=user)
    renewed = device_token_issue(user=user, device_id=device)
    assert renewed != token or device_id_for(renewed, user=user) == device
    assert device_id_for(renewed, user=user) == device


def test_the_token_does_not_carry_the_password_hash(user):
    value = signing.TimestampSigner(salt="gatehouse.accounts.device-token").unsign(device_token_issue(user=user))
    assert user.password not in value
    assert user.password.rsplit("$", 1)[-1] not in value
