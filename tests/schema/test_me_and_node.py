"""`me` and `node(id:)` over HTTP: the allow-listed User type and who may see whom."""

import base64
from datetime import datetime

import pytest
from graphql_relay import from_global_id, to_global_id

from accounts.error_codes import AuthErrorCode
from accounts.services import session_open
from schema.errors import RequestErrorCode
from tests.conftest import PASSWORD, error_codes

ME = "{ me { id username email dateJoined lastLogin isEmailVerified } }"
NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on User { username email }
  }
}
"""


def sign_in(gql, email: str) -> str:
    body = gql(
        "mutation($email: String!, $password: String!) { tokenAuth(email: $email, password: $password) { token } }",
        {"email": email, "password": PASSWORD},
    )
    assert "errors" not in body, body
    return body["data"]["tokenAuth"]["token"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- me --------------------------------------------------------------------------------------


def test_me_returns_the_viewers_fields(gql, user):
    # given: a real sign-in, so lastLogin is set
    token = sign_in(gql, "alice@example.com")
    user.refresh_from_db()

    # when
    body = gql(ME, token=token)

    # then
    assert "errors" not in body
    me = body["data"]["me"]
    assert from_global_id(me["id"]) == ("User", str(user.pk))
    assert me["username"] == "alice"
    assert me["email"] == "alice@example.com"
    assert me["isEmailVerified"] is False
    assert datetime.fromisoformat(me["dateJoined"]) == user.date_joined
    assert datetime.fromisoformat(me["lastLogin"]) == user.last_login


def test_me_last_login_is_null_before_any_sign_in(gql, user, token):
    body = gql("{ me { lastLogin } }", token=token)

    assert body == {"data": {"me": {"lastLogin": None}}}


def test_me_reports_a_verified_email(gql, make_user):
    verified = make_user(is_email_verified=True)

    body = gql("{ me { isEmailVerified } }", token=session_open(user=verified).token)

    assert body == {"data": {"me": {"isEmailVerified": True}}}


def test_me_is_null_when_anonymous(gql, user):
    assert gql(ME) == {"data": {"me": None}}


@pytest.mark.parametrize(
    "field",
    [
        "password",
        "isStaff",
        "isSuperuser",
        "isActive",
        "groups",
        "userPermissions",
        "pk",
        "refreshTokens",
        "authEvents",
    ],
)
def test_private_fields_are_not_in_the_user_type(gql, user, token, field):
    body = gql(f"{{ me {{ id {field} }} }}", token=token)

    assert error_codes(body) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]
    assert "data" not in body
    assert PASSWORD not in str(body)


# --- node ------------------------------------------------------------------------------------


def test_node_of_own_id_is_the_viewer(gql, user, token):
    own_id = to_global_id("User", user.pk)

    body = gql(NODE, {"id": own_id}, token=token)

    assert body == {
        "data": {"node": {"__typename": "User", "id": own_id, "username": "alice", "email": "alice@example.com"}}
    }


def test_node_of_someone_else_is_null_for_a_regular_user(gql, user, token, make_user):
    other = make_user(username="bob", email="bob@example.com")

    body = gql(NODE, {"id": to_global_id("User", other.pk)}, token=token)

    assert body == {"data": {"node": None}}


def test_staff_sees_anyone_by_node(gql, user, make_user):
    # given
    staff = make_user(username="root", email="root@example.com", is_staff=True)
    alice_id = to_global_id("User", user.pk)

    # when
    body = gql(NODE, {"id": alice_id}, token=session_open(user=staff).token)

    # then
    assert body == {
        "data": {"node": {"__typename": "User", "id": alice_id, "username": "alice", "email": "alice@example.com"}}
    }


def test_staff_gets_null_for_a_user_that_does_not_exist(gql, make_user):
    staff = make_user(is_staff=True)

    body = gql(NODE, {"id": to_global_id("User", staff.pk + 1000)}, token=session_open(user=staff).token)

    assert body == {"data": {"node": None}}


def test_anonymous_node_is_null(gql, user):
    body = gql(NODE, {"id": to_global_id("User", user.pk)})

    assert body == {"data": {"node": None}}


@pytest.mark.parametrize(
    "global_id",
    [
        pytest.param("not-base64!!", id="not-base64"),
        pytest.param(b64("User:"), id="no-pk"),
        pytest.param(b64(":1"), id="no-type"),
        pytest.param(b64("User"), id="no-colon"),
        pytest.param("", id="empty"),
        pytest.param(base64.b64encode(b"\xff\xfe:1").decode(), id="not-utf8"),
    ],
)
def test_malformed_node_id_is_bad_user_input(gql, user, token, global_id):
    body = gql(NODE, {"id": global_id}, token=token)

    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert body["data"] == {"node": None}


@pytest.mark.parametrize(
    "global_id",
    [
        pytest.param(b64("User:abc"), id="non-numeric-pk"),
        pytest.param(b64("User:-1"), id="negative-pk"),
        pytest.param(b64("User:0"), id="zero-pk"),
        pytest.param(b64("User:1.5"), id="fractional-pk"),
        pytest.param(b64("User:99999999999999999999999"), id="pk-beyond-bigint"),
        pytest.param(b64("User:9223372036854775808"), id="pk-just-beyond-bigint"),
        pytest.param(b64("User:1\u0000"), id="nul-in-pk"),
        pytest.param(b64("UserError:1"), id="not-a-node-type"),
        pytest.param(b64("Query:1"), id="root-type"),
        pytest.param(b64("Node:1"), id="interface"),
        pytest.param(b64("NoSuchType:1"), id="unknown-type"),
    ],
)
def test_unresolvable_node_id_is_null(gql, user, token, global_id):
    body = gql(NODE, {"id": global_id}, token=token)

    assert body == {"data": {"node": None}}


def test_node_with_a_user_fragment_spread(gql, user, token):
    query = """
      query($id: ID!) { node(id: $id) { ...Card } }
      fragment Card on User { username email isEmailVerified }
    """

    body = gql(query, {"id": to_global_id("User", user.pk)}, token=token)

    assert body == {"data": {"node": {"username": "alice", "email": "alice@example.com", "isEmailVerified": False}}}


def test_node_with_an_invalid_token_is_token_invalid_not_anonymous(gql, user):
    body = gql(NODE, {"id": to_global_id("User", user.pk)}, token="not.a.token")

    assert error_codes(body) == [AuthErrorCode.TOKEN_INVALID.value]
    assert body["data"] == {"node": None}


def test_staff_never_see_another_users_sessions(gql, user, make_user):
    # given: alice signed in on a device; a staff member looking her up by node
    session_open(user=user)
    staff = make_user(username="staffer", is_staff=True)
    query = "query($id: ID!) { node(id: $id) { ... on User { username sessions { id } } } }"
    # when
    body = gql(query, {"id": to_global_id("User", user.pk)}, token=session_open(user=staff).token)
    # then: the account is visible to staff, its devices and addresses are not
    assert body == {"data": {"node": {"username": "alice", "sessions": None}}}
