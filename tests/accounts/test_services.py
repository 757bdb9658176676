"""The writing services, called directly: user_register and user_authenticate."""

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import RequestFactory, override_settings
from django.utils import timezone

from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.exceptions import InvalidCredentials, RateLimited
from accounts.models import User
from accounts.services import user_authenticate, user_register
from accounts.tokens import access_token_verify
from tests.conftest import PASSWORD


@pytest.fixture
def request_():
    return RequestFactory().post("/graphql", REMOTE_ADDR="192.0.2.10")


def field_codes(exc: ValidationError) -> list[tuple[str, str]]:
    """Return (field, code) of each error of a field-keyed ValidationError, sorted."""
    return sorted((field, error.code) for field, errors in exc.error_dict.items() for error in errors)


def gatehouse(**changes):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, **changes})


# --- user_register ---------------------------------------------------------------------------


def test_register_creates_an_active_signed_in_user(db, request_):
    # when
    user, tokens = user_register(request=request_, username="Bob", email=" Bob@Example.COM ", password=PASSWORD)

    # then
    stored = User.objects.get()
    assert stored.pk == user.pk
    assert stored.username == "Bob"
    assert stored.email == "bob@example.com"
    assert stored.password != PASSWORD
    assert stored.check_password(PASSWORD)
    assert stored.is_active is True
    assert stored.is_staff is False
    assert stored.is_superuser is False
    assert stored.is_email_verified is False
    assert stored.last_login is not None
    assert stored.last_login == user.last_login
    claims = access_token_verify(tokens.token)
    assert int(claims.subject) == user.pk
    assert tokens.payload["sub"] == str(user.pk)
    assert tokens.refresh_expires_in > tokens.payload["exp"]


def test_register_normalises_a_fullwidth_username(db, request_):
    user, _ = user_register(request=request_, username="\uff42\uff4f\uff42", email="b@example.com", password=PASSWORD)

    assert User.objects.get(pk=user.pk).username == "bob"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({"username": ""}, [("username", UserErrorCode.REQUIRED.value)], id="blank-username"),
        pytest.param({"username": " \t "}, [("username", UserErrorCode.REQUIRED.value)], id="space-username"),
        pytest.param({"email": ""}, [("email", UserErrorCode.REQUIRED.value)], id="blank-email"),
        pytest.param({"password": ""}, [("password", UserErrorCode.REQUIRED.value)], id="blank-password"),
        pytest.param({"password": "   "}, [("password", UserErrorCode.REQUIRED.value)], id="space-password"),
        pytest.param({"email": "a@b@c"}, [("email", UserErrorCode.INVALID.value)], id="two-at-signs"),
        pytest.param({"email": "a\x00@b.com"}, [("email", UserErrorCode.INVALID.value)], id="nul-email"),
        pytest.param({"email": "a" * 250 + "@b.com"}, [("email", UserErrorCode.TOO_LONG.value)], id="long-email"),
        pytest.param({"username": "bob\x00"}, [("username", UserErrorCode.INVALID.value)], id="nul-username"),
        pytest.param({"username": "\u0430lice"}, [("username", UserErrorCode.INVALID.value)], id="cyrillic"),
        pytest.param({"username": "b" * 151}, [("username", UserErrorCode.TOO_LONG.value)], id="long-username"),
        pytest.param({"password": "Xy7$kq"}, [("password", UserErrorCode.PASSWORD_TOO_SHORT.value)], id="short"),
        pytest.param({"password": "iloveyou12"}, [("password", UserErrorCode.PASSWORD_TOO_COMMON.value)], id="common"),
        pytest.param(
            {"password": "8675309123456"}, [("password", UserErrorCode.PASSWORD_ENTIRELY_NUMERIC.value)], id="numeric"
        ),
        pytest.param(
            {"username": "marguerite", "password": "marguerite99"},
            [("password", UserErrorCode.PASSWORD_TOO_SIMILAR.value)],
            id="similar",
        ),
        pytest.param(
            {"password": "x" * (settings.PASSWORD_MAX_LENGTH + 1)},
            [("password", UserErrorCode.PASSWORD_TOO_LONG.value)],
            id="too-long-password",
        ),
    ],
)
def test_register_refuses_bad_input_keyed_by_field(db, request_, values, expected):
    # given
    arguments = {"username": "bob", "email": "bob@example.com", "password": PASSWORD, **values}

    # when
    with pytest.raises(ValidationError) as refused:
        user_register(request=request_, **arguments)

    # then
    assert field_codes(refused.value) == expected
    assert User.objects.count() == 0


def test_register_refuses_duplicates_ignoring_case(user, request_):
    with pytest.raises(ValidationError) as refused:
        user_register(request=request_, username="ALICE", email="Alice@EXAMPLE.com", password=PASSWORD)

    assert field_codes(refused.value) == [
        ("email", UserErrorCode.UNIQUE.value),
        ("username", UserErrorCode.UNIQUE.value),
    ]
    assert User.objects.count() == 1


def test_register_reports_every_field_at_once(db, request_):
    with pytest.raises(ValidationError) as refused:
        user_register(request=request_, username="", email="nope", password="Xy7$kq")

    assert field_codes(refused.value) == [
        ("email", UserErrorCode.INVALID.value),
        ("password", UserErrorCode.PASSWORD_TOO_SHORT.value),
        ("username", UserErrorCode.REQUIRED.value),
    ]
    assert User.objects.count() == 0


def test_register_is_rate_limited_per_address_before_validation(db):
    # given: one registration per address
    request = RequestFactory().post("/graphql", REMOTE_ADDR="192.0.2.20")
    with gatehouse(REGISTER_RATE_PER_ADDRESS=(1, 60)):
        user_register(request=request, username="bob", email="bob@example.com", password=PASSWORD)

        # when / then
        with pytest.raises(RateLimited) as refused:
            user_register(request=request, username="eve", email="eve@example.com", password=PASSWORD)

    assert refused.value.code is AuthErrorCode.RATE_LIMITED
    assert 1 <= refused.value.retry_after <= 60
    assert list(User.objects.values_list("username", flat=True)) == ["bob"]


# --- user_authenticate -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    [
        {"email": "alice@example.com"},
        {"email": "ALICE@Example.COM"},
        {"email": "  alice@example.com"},
        {"username": "alice"},
        {"username": "Alice"},
    ],
)
def test_authenticate_signs_in_by_email_or_username_in_any_case(user, request_, identifier):
    # given
    before = timezone.now()

    # when
    signed_in, tokens = user_authenticate(request=request_, password=PASSWORD, **identifier)

    # then
    assert signed_in.pk == user.pk
    assert access_token_verify(tokens.token).subject == str(user.pk)
    assert tokens.payload["exp"] - tokens.payload["iat"] == settings.JWT_ACCESS_TOKEN_LIFETIME
    user.refresh_from_db()
    assert user.last_login is not None
    assert user.last_login >= before.replace(microsecond=0)


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"email": "nobody@example.com", "password": PASSWORD}, id="unknown"),
        pytest.param({"email": "alice@example.com", "password": "wrong"}, id="wrong-password"),
        pytest.param({"username": "alice", "password": "wrong"}, id="wrong-password-by-username"),
        pytest.param({"email": "not an email", "password": PASSWORD}, id="malformed-email"),
        pytest.param({"username": "bad name\x00", "password": PASSWORD}, id="malformed-username"),
        pytest.param({"email": "alice@example.com", "password": "x" * 100_000}, id="huge-password"),
    ],
)
def test_authenticate_failures_are_invalid_credentials(user, request_, arguments):
    with pytest.raises(InvalidCredentials) as refused:
        user_authenticate(request=request_, **arguments)

    assert refused.value.code is AuthErrorCode.INVALID_CREDENTIALS
    user.refresh_from_db()
    assert user.last_login is None


def test_authenticate_refuses_an_inactive_user_with_the_same_error(make_user, request_):
    # given
    make_user(username="alice", email="alice@example.com")
    inactive = make_user(username="gone", email="gone@example.com", is_active=False)

    # when
    failures = []
    for email, password in [
        ("nobody@example.com", PASSWORD),
        ("alice@example.com", "wrong"),
        ("gone@example.com", PASSWORD),
    ]:
        with pytest.raises(InvalidCredentials) as refused:
            user_authenticate(request=request_, email=email, password=password)
        failures.append((type(refused.value), refused.value.message, refused.value.extensions))

    # then
    assert failures[0] == failures[1] == failures[2]
    inactive.refresh_from_db()
    assert inactive.last_login is None


def test_authenticate_counts_every_attempt_per_account(user, request_):
    # given: 2 attempts per account; one failure and one success spend them
    with gatehouse(LOGIN_RATE_PER_ACCOUNT=(2, 60)):
        with pytest.raises(InvalidCredentials):
            user_authenticate(request=request_, email="alice@example.com", password="wrong")
        user_authenticate(request=request_, email="Alice@Example.com", password=PASSWORD)
        user.refresh_from_db()
        last_login = user.last_login

        # when / then: even the right password is refused now
        with pytest.raises(RateLimited):
            user_authenticate(request=request_, email="alice@example.com", password=PASSWORD)
        # another account is unaffected
        with pytest.raises(InvalidCredentials):
            user_authenticate(request=request_, email="bob@example.com", password=PASSWORD)

    user.refresh_from_db()
    assert user.last_login == last_login


def test_authenticate_counts_every_attempt_per_address(make_user):
    # given
    users = [make_user() for _ in range(3)]
    same_address = RequestFactory().post("/graphql", REMOTE_ADDR="192.0.2.30")
    with gatehouse(LOGIN_RATE_PER_ADDRESS=(2, 60)):
        for user in users[:2]:
            user_authenticate(request=same_address, email=user.email, password=PASSWORD)

        # when / then
        with pytest.raises(RateLimited):
            user_authenticate(request=same_address, email=users[2].email, password=PASSWORD)
        other_address = RequestFactory().post("/graphql", REMOTE_ADDR="192.0.2.31")
        user_authenticate(request=other_address, email=users[2].email, password=PASSWORD)
