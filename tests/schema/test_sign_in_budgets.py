"""Sign-in budgets that stop guessing and cannot lock the owner out (OWASP device cookies).

Every password check counts before it is made: an unknown client's sign-ins against the
client's address and the account (across all of its identifiers); a device that signed
in before, with its device token, against that device's own budget; a signed-in user
confirming a password against the session's. Counts live in the database here (the
store production uses without Redis); tests/accounts/test_ratelimit.py covers the
stores and the sliding window themselves.
"""

import time

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client, override_settings

from accounts.devices import _SALT as DEVICE_SALT
from accounts.devices import device_token_issue
from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import AuthEvent, AuthEventKind, Session, User
from tests.conftest import PASSWORD, GraphQLClient, error_codes

TOKEN_AUTH = """
mutation($email: String, $username: String, $password: String!, $device: String) {
  tokenAuth(email: $email, username: $username, password: $password, deviceToken: $device) {
    token deviceToken user { username }
  }
}
"""
DELETE = "mutation($p: String!) { deleteAccount(password: $p) { success errors { field code } } }"
CHANGE = """
mutation($o: String!, $n: String!) {
  passwordChange(oldPassword: $o, newPassword: $n) { success errors { field code } }
}
"""
UPDATE_EMAIL = """
mutation($e: String!, $p: String!) { updateAccount(email: $e, password: $p) { success errors { field code } } }
"""
NEW_PASSWORD = "a-Brand-new-passphrase-42"


def budgets(**rates):
    return override_settings(GATEHOUSE={**settings.GATEHOUSE, **rates})


def sign_in(gql, password=PASSWORD, device=None, address="198.51.100.7", **identifier) -> dict:
    identifier = identifier or {"email": "alice@example.com"}
    return gql(TOKEN_AUTH, {"password": password, "device": device, **identifier}, headers={"REMOTE_ADDR": address})


def signed_in(body) -> dict:
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]


@pytest.fixture
def limited():
    with budgets(LOGIN_RATE_PER_ACCOUNT=(3, 360), LOGIN_RATE_PER_ADDRESS=(30, 60)):
        yield


def test_a_sign_in_returns_a_device_token_bound_to_the_account(gql, user):
    payload = signed_in(sign_in(gql))
    assert isinstance(payload["deviceToken"], str)
    assert 20 < len(payload["deviceToken"]) < 200


@pytest.mark.usefixtures("limited")
def test_guesses_from_elsewhere_never_lock_out_a_device_that_signed_in_before(gql, user):
    # given: the owner's phone signed in once and kept its device token
    device = signed_in(sign_in(gql))["deviceToken"]
    # when: an attacker spends the account's budget from many addresses
    for attempt in range(4):
        sign_in(gql, password=f"guess-{attempt}", address=f"203.0.113.{attempt + 1}")
    assert error_codes(sign_in(gql, address="203.0.113.99")) == [AuthErrorCode.RATE_LIMITED.value]
    # then: the owner, with the device token, still signs in (from the attacker's own address too)
    again = signed_in(sign_in(gql, device=device, address="203.0.113.1"))
    assert again["user"]["username"] == "alice"
    # and without it, like the attacker, is refused
    assert error_codes(sign_in(gql)) == [AuthErrorCode.RATE_LIMITED.value]


@pytest.mark.usefixtures("limited")
def test_a_stolen_device_token_gives_only_that_devices_budget(gql, user):
    # given: a thief holding the owner's device token, and the account's budget untouched
    device = signed_in(sign_in(gql))["deviceToken"]
    # when: the thief guesses with it until refused
    answers = [error_codes(sign_in(gql, password=f"guess-{n}", device=device)) for n in range(5)]
    # then: three guesses, then refused, as any budget
    assert answers[:3] == [[AuthErrorCode.INVALID_CREDENTIALS.value]] * 3
    assert answers[3:] == [[AuthErrorCode.RATE_LIMITED.value]] * 2
    # and the budget of clients without a device token is the account's own, still whole
    assert signed_in(sign_in(gql))["user"]["username"] == "alice"


@pytest.mark.usefixtures("limited")
def test_a_device_token_of_another_account_counts_as_no_device(gql, user, make_user):
    # given: bob's own device token, and alice's budget spent
    make_user(username="bob", email="bob@example.com")
    bobs = signed_in(sign_in(gql, email="bob@example.com"))["deviceToken"]
    for attempt in range(3):
        sign_in(gql, password=f"guess-{attempt}")
    # when: bob's token is presented for alice's account
    body = sign_in(gql, device=bobs)
    # then: it is not alice's device, so alice's spent budget applies
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]


@pytest.mark.usefixtures("limited")
@pytest.mark.parametrize(
    "token",
    ["", "garbage", "x" * 5000, "1.abc:def:ghi", "eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    ids=["empty", "garbage", "oversized", "forged-shape", "a-jwt"],
)
def test_a_malformed_device_token_is_no_device_and_no_error(gql, user, token):
    for attempt in range(3):
        sign_in(gql, password=f"guess-{attempt}")
    assert error_codes(sign_in(gql, device=token)) == [AuthErrorCode.RATE_LIMITED.value]


@pytest.mark.usefixtures("limited")
def test_a_tampered_device_token_is_no_device(gql, user):
    device = device_token_issue(user=user)
    tampered = device[:-2] + ("AA" if not device.endswith("AA") else "BB")
    for attempt in range(3):
        sign_in(gql, password=f"guess-{attempt}")
    assert error_codes(sign_in(gql, device=tampered)) == [AuthErrorCode.RATE_LIMITED.value]
    assert signed_in(sign_in(gql, device=device))["user"]["username"] == "alice"


def test_an_expired_device_token_is_no_device(gql, user, settings):
    # given: a genuine device token signed an hour ago, with a lifetime of one minute
    value = signing.TimestampSigner(salt=DEVICE_SALT).unsign(device_token_issue(user=user))
    signer = signing.TimestampSigner(salt=DEVICE_SALT)
    signer.timestamp = lambda: signing.b62_encode(int(time.time()) - 3600)
    expired = signer.sign(value)
    settings.DEVICE_TOKEN_LIFETIME = 60
    settings.GATEHOUSE = {**settings.GATEHOUSE, "LOGIN_RATE_PER_ACCOUNT": (1, 360)}
    sign_in(gql, password="guess")
    # when / then: it is no device; a fresh one still is
    assert error_codes(sign_in(gql, device=expired)) == [AuthErrorCode.RATE_LIMITED.value]
    assert signed_in(sign_in(gql, device=device_token_issue(user=user)))["user"]["username"] == "alice"


@pytest.mark.usefixtures("limited")
def test_the_account_budget_counts_every_identifier(gql, user):
    sign_in(gql, password="guess-1", email="ALICE@example.com")
    sign_in(gql, password="guess-2", username="alice")
    sign_in(gql, password="guess-3", username="\uff41lice")  # NFKC folds it to alice
    assert error_codes(sign_in(gql, email="alice@example.com")) == [AuthErrorCode.RATE_LIMITED.value]
    assert error_codes(sign_in(gql, username="Alice")) == [AuthErrorCode.RATE_LIMITED.value]


def test_the_address_budget_stops_one_client_spraying_many_accounts(gql, make_user):
    users = [make_user(email=f"spray{n}@example.com") for n in range(4)]
    with budgets(LOGIN_RATE_PER_ACCOUNT=(10, 360), LOGIN_RATE_PER_ADDRESS=(3, 60)):
        answers = [error_codes(sign_in(gql, password="guess", email=u.email)) for u in users]
        elsewhere = sign_in(gql, email=users[3].email, address="198.51.100.99")
    assert answers[:3] == [[AuthErrorCode.INVALID_CREDENTIALS.value]] * 3
    assert answers[3] == [AuthErrorCode.RATE_LIMITED.value]
    assert signed_in(elsewhere)["user"]["username"] == users[3].username


# --- every password check counts -------------------------------------------------------------


def test_delete_account_with_the_right_password_is_refused_once_the_sessions_budget_is_spent(gql, user):
    # The probe: without Redis, the 11th check through deleteAccount, with the right
    # password, deleted the account.
    with budgets(LOGIN_RATE_PER_ACCOUNT=(10, 360)):
        token = signed_in(sign_in(gql))["token"]
        for attempt in range(10):
            body = gql(DELETE, {"p": f"guess-{attempt}"}, token=token)
            assert body["data"]["deleteAccount"]["errors"][0]["code"] == UserErrorCode.INVALID_PASSWORD.name
        body = gql(DELETE, {"p": PASSWORD}, token=token)
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert User.objects.filter(pk=user.pk).exists()


def test_password_checks_of_change_delete_and_email_change_share_the_sessions_budget(gql, user):
    with budgets(LOGIN_RATE_PER_ACCOUNT=(3, 360)):
        token = signed_in(sign_in(gql))["token"]
        gql(CHANGE, {"o": "guess-1", "n": NEW_PASSWORD}, token=token)
        gql(DELETE, {"p": "guess-2"}, token=token)
        gql(UPDATE_EMAIL, {"e": "new@example.com", "p": "guess-3"}, token=token)
        answers = [
            error_codes(gql(CHANGE, {"o": PASSWORD, "n": NEW_PASSWORD}, token=token)),
            error_codes(gql(DELETE, {"p": PASSWORD}, token=token)),
            error_codes(gql(UPDATE_EMAIL, {"e": "new@example.com", "p": PASSWORD}, token=token)),
        ]
    assert answers == [[AuthErrorCode.RATE_LIMITED.value]] * 3
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert user.email == "alice@example.com"


def test_the_admin_login_counts_against_the_accounts_budget(user):
    # given: a staff account whose budget was spent through tokenAuth
    User.objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    gql = GraphQLClient(Client(HTTP_HOST="localhost"))
    browser = Client(HTTP_HOST="localhost")
    with budgets(LOGIN_RATE_PER_ACCOUNT=(2, 360)):
        for attempt in range(2):
            sign_in(gql, password=f"guess-{attempt}")
        # when: the right password through the admin's login form
        response = browser.post("/admin/login/?next=/admin/", {"username": "alice@example.com", "password": PASSWORD})
    # then: refused like a wrong password, and recorded as rate limited
    assert response.status_code == 200
    assert "_auth_user_id" not in browser.session
    event = AuthEvent.objects.filter(kind=AuthEventKind.LOGIN_FAILED, detail__startswith="admin").get()
    assert event.detail == "admin, rate limited"


def test_refused_attempts_cost_no_password_hash_and_open_no_session(gql, user):
    with budgets(LOGIN_RATE_PER_ACCOUNT=(1, 360)):
        sign_in(gql, password="guess")
        body = sign_in(gql)
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]
    assert 1 <= body["errors"][0]["extensions"]["retryAfter"] <= 360
    assert not Session.objects.filter(user=user).exists()


# --- cookie mode -----------------------------------------------------------------------------


def test_in_cookie_mode_the_device_token_is_a_cookie_and_keeps_the_device_signed_in(user):
    # given: cookie mode, and a browser that signed in once (it keeps its cookies)
    browser = GraphQLClient(Client(HTTP_HOST="localhost"))
    attacker = GraphQLClient(Client(HTTP_HOST="localhost"))
    with budgets(REFRESH_TOKEN_COOKIE=True, LOGIN_RATE_PER_ACCOUNT=(2, 360)):
        response = browser.post(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD})
        # then: the token is an HttpOnly, Secure cookie on the GraphQL path, not in the body
        assert response.json()["data"]["tokenAuth"]["deviceToken"] is None
        morsel = response.cookies["__Secure-gatehouse_device"]
        assert (morsel["httponly"], morsel["secure"], morsel["path"], morsel["samesite"]) == (
            True,
            True,
            "/graphql",
            "Lax",
        )
        assert int(morsel["max-age"]) == settings.DEVICE_TOKEN_LIFETIME
        # when: someone else spends the account's budget
        for attempt in range(3):
            sign_in(attacker, password=f"guess-{attempt}")
        # then: the browser, sending its cookie, still signs in; the attacker does not
        again = browser(TOKEN_AUTH, {"email": "alice@example.com", "password": PASSWORD})
        assert signed_in(again)["user"]["username"] == "alice"
        assert error_codes(sign_in(attacker)) == [AuthErrorCode.RATE_LIMITED.value]


# --- devices cannot be multiplied, nor outlive the password -------------------------------------


@pytest.mark.usefixtures("limited")
def test_signing_in_with_a_device_token_renews_it_for_the_same_device(gql, user):
    # given: a device token, used to sign in twice more
    first = signed_in(sign_in(gql))["deviceToken"]
    second = signed_in(sign_in(gql, device=first))["deviceToken"]
    third = signed_in(sign_in(gql, device=second))["deviceToken"]
    # when: guesses go through the renewed tokens
    answers = [error_codes(sign_in(gql, password=f"guess-{n}", device=token)) for n, token in enumerate((third, first))]
    # then: one device, one budget: two sign-ins and one guess spent it (3 per 6 minutes)
    assert answers == [[AuthErrorCode.INVALID_CREDENTIALS.value], [AuthErrorCode.RATE_LIMITED.value]]
    devices = set(Session.objects.filter(user=user).values_list("device_id", flat=True))
    assert len(devices) == 1


@pytest.mark.usefixtures("limited")
def test_a_password_change_ends_every_device_token(gql, user):
    # given: a device token, then the password changed (through the API)
    signed = signed_in(sign_in(gql))
    body = gql(CHANGE, {"o": PASSWORD, "n": NEW_PASSWORD}, token=signed["token"])
    assert body["data"]["passwordChange"]["success"] is True
    # when: the account's budget is spent, and the old device token is presented
    for attempt in range(3):
        sign_in(gql, password=f"guess-{attempt}")
    body = sign_in(gql, password=NEW_PASSWORD, device=signed["deviceToken"])
    # then: it is no device any more
    assert error_codes(body) == [AuthErrorCode.RATE_LIMITED.value]


@pytest.mark.usefixtures("limited")
def test_a_devices_sign_ins_and_its_sessions_password_checks_share_one_budget(gql, user):
    # given: a device's first sign-in (counted as an unknown client's: it had no token yet)
    signed = signed_in(sign_in(gql))
    # when: its session checks three passwords
    gql(DELETE, {"p": "guess-1"}, token=signed["token"])
    gql(CHANGE, {"o": "guess-2", "n": NEW_PASSWORD}, token=signed["token"])
    gql(UPDATE_EMAIL, {"e": "new@example.com", "p": "guess-3"}, token=signed["token"])
    # then: the device's own next sign-in is its fourth check in the window
    assert error_codes(sign_in(gql, device=signed["deviceToken"])) == [AuthErrorCode.RATE_LIMITED.value]
    # while a client without a device token still has the account's budget
    assert signed_in(sign_in(gql))["user"]["username"] == "alice"


@pytest.mark.usefixtures("limited")
def test_oversized_passwords_spend_the_same_budget_for_accounts_and_non_accounts(gql, user):
    # An oversized password is refused unhashed, but counted against the budget any attempt
    # would be: a different key would tell which identifiers are accounts.
    oversized = "x" * (settings.PASSWORD_MAX_LENGTH + 1)
    answers = {}
    for identifier in ({"email": "alice@example.com"}, {"email": "nobody@example.com"}, {"username": "alice"}):
        for _ in range(3):
            sign_in(gql, password=oversized, **identifier)
        answers[str(identifier)] = error_codes(sign_in(gql, password="guess", **identifier))
    assert set(map(tuple, answers.values())) == {(AuthErrorCode.RATE_LIMITED.value,)}
