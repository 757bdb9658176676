"""`refreshExpiresAt` beside django-graphql-jwt's `refreshExpiresIn`, which a GraphQL Int
(32 bits) can hold only until 2038-01-19; no committed sign-in is answered with an error."""

from datetime import UTC, datetime

import pytest

from accounts.models import Session
from tests.conftest import PASSWORD, error_codes
from tests.test_settings import PRODUCTION, start_django

TOKEN_AUTH = """
mutation($e: String!, $p: String!) {
  tokenAuth(email: $e, password: $p) { token refreshToken refreshExpiresIn refreshExpiresAt }
}
"""
REGISTER = """
mutation($u: String!, $e: String!, $p: String!) {
  register(username: $u, email: $e, password: $p) { token refreshExpiresIn refreshExpiresAt errors { code } }
}
"""
REFRESH = "mutation($r: String!) { refreshToken(refreshToken: $r) { token refreshExpiresIn refreshExpiresAt } }"
TWENTY_YEARS = 20 * 365 * 24 * 3600


def parsed(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_refresh_expires_at_is_the_sessions_end_and_matches_refresh_expires_in(gql, user):
    payload = gql(TOKEN_AUTH, {"e": user.email, "p": PASSWORD})["data"]["tokenAuth"]
    session = Session.objects.get(user=user)
    assert parsed(payload["refreshExpiresAt"]) == session.ends_at()
    assert payload["refreshExpiresIn"] == int(session.ends_at().timestamp())


@pytest.mark.django_db(transaction=True)
def test_a_session_ending_after_2038_is_answered_without_an_error(gql, user, settings):
    # given: sessions that last twenty years (their end does not fit a 32-bit Int)
    settings.JWT_REFRESH_TOKEN_LIFETIME = TWENTY_YEARS
    settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME = TWENTY_YEARS
    # when: signing in, registering and refreshing
    signed_in = gql(TOKEN_AUTH, {"e": user.email, "p": PASSWORD})
    registered = gql(REGISTER, {"u": "bob", "e": "bob@example.com", "p": "a-Long-passphrase-1"})
    refreshed = gql(REFRESH, {"r": signed_in["data"]["tokenAuth"]["refreshToken"]})
    # then: every answer is whole; refreshExpiresIn is null, refreshExpiresAt the real date
    for body, field in ((signed_in, "tokenAuth"), (registered, "register"), (refreshed, "refreshToken")):
        assert error_codes(body) == [], body
        payload = body["data"][field]
        assert payload["token"]
        assert payload["refreshExpiresIn"] is None
        assert parsed(payload["refreshExpiresAt"]).year >= datetime.now(UTC).year + 19
    assert Session.objects.count() == 2


@pytest.mark.parametrize(
    "name", ["JWT_REFRESH_TOKEN_LIFETIME", "JWT_REFRESH_TOKEN_IDLE_LIFETIME", "DEVICE_TOKEN_LIFETIME"]
)
def test_production_refuses_to_start_with_a_duration_whose_deadlines_cannot_be_represented(name):
    # 10**12 seconds is past the year 9999, where Python's dates end. (Every duration
    # setting goes through config.env.env_seconds; tests/test_settings.py covers it.)
    refused = start_django({**PRODUCTION, name: str(10**12)})
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert f"{name} must be at most" in refused.stderr


def test_production_starts_with_sessions_of_a_hundred_years():
    century = str(100 * 365 * 24 * 3600)
    started = start_django(
        {**PRODUCTION, "JWT_REFRESH_TOKEN_LIFETIME": century, "JWT_REFRESH_TOKEN_IDLE_LIFETIME": century}
    )
    assert started.returncode == 0, started.stderr
