from accounts.error_codes import AuthErrorCode
from tests.conftest import error_codes


def test_me_is_null_without_a_token(gql, db):
    # when
    body = gql("{ me { id } }")
    # then
    assert body == {"data": {"me": None}}


def test_me_is_the_viewer_with_a_token(gql, user, token):
    body = gql("{ me { username email } }", token=token)
    assert body == {"data": {"me": {"username": "alice", "email": "alice@example.com"}}}


def test_a_garbage_token_is_token_invalid(gql, db):
    body = gql("{ me { id } }", token="garbage")
    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    assert body["data"] == {"me": None}
