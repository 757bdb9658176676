"""django-graphql-jwt's own helpers, configured through GRAPHQL_JWT, agree with Gatehouse."""

import pytest
from graphql_jwt.exceptions import JSONWebTokenError
from graphql_jwt.shortcuts import get_token, get_user_by_token

from accounts.error_codes import AuthErrorCode
from accounts.exceptions import TokenInvalid
from accounts.services import session_open
from tests.conftest import error_codes


def test_a_token_from_the_library_shortcut_is_refused_for_naming_no_session(gql, user):
    # given: graphql_jwt.shortcuts.get_token goes through our payload and encode handlers,
    # but opens no session, and a token outside a session could never be revoked
    token = get_token(user)
    # when
    body = gql("{ me { username } }", token=token)
    # then
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    assert body["data"] == {"me": None}


def test_the_library_resolves_our_tokens_to_the_same_account(user):
    assert get_user_by_token(session_open(user=user).token) == user


def test_the_library_refuses_what_we_refuse(user):
    forged = session_open(user=user).token[:-2] + "xx"
    with pytest.raises((TokenInvalid, JSONWebTokenError)):
        get_user_by_token(forged)


def test_the_library_helpers_never_accept_the_jwt_prefix(gql, user):
    body = gql("{ me { username } }", headers={"HTTP_AUTHORIZATION": f"JWT {get_token(user)}"})
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
