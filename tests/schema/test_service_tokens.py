"""Service tokens in GraphQL, over HTTP: who the caller is, what each scope allows, and what never works.

A request with a service token (OAuth 2.0 client credentials) has no viewer: `me` is null
and `serviceClient` names the client. `users:read` reads any user, as staff do;
`users:write` adds `revokeUserSessions` and `deactivateUser`. Every other mutation is
refused to a service token, and the walk below covers every mutation field of the schema,
so one added later cannot slip through. The session cache is off here (as by default in
tests): the client is read from the database once per request. The cache is in
tests/accounts/test_client_cache.py.
"""

import base64
import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from graphene.utils.str_converters import to_camel_case
from graphql import GraphQLNonNull, get_named_type
from graphql_relay import to_global_id

import accounts.authentication
from accounts.error_codes import AuthErrorCode, UserErrorCode
from accounts.models import AuthEvent, AuthEventKind, RefreshToken, ServiceClient, Session, SessionEndReason, User
from accounts.scopes import TOKENS_INTROSPECT, USERS_READ, USERS_WRITE
from accounts.services import client_disable, client_secret_rotate, service_token_issue, session_open
from accounts.tokens import jwt_encode
from schema.mutations import SERVICE_MUTATIONS
from schema.schema import schema
from tests.conftest import error_codes
from tests.oauth import fixed_settings, make_client

ME_AND_CLIENT = "{ me { id } serviceClient { clientId name scopes } }"
SERVICE_CLIENT = "{ serviceClient { clientId name scopes } }"
USERS = "{ users { totalCount edges { node { id username email } } } }"
NODE = "query Node($id: ID!) { node(id: $id) { __typename id ... on User { username email sessions { id } } } }"
REVOKE_USER_SESSIONS = """
mutation Revoke($id: ID!) { revokeUserSessions(id: $id) { success revokedSessions errors { field code } } }
"""
DEACTIVATE_USER = "mutation Deactivate($id: ID!) { deactivateUser(id: $id) { success errors { field code } } }"

FORBIDDEN = [AuthErrorCode.FORBIDDEN.value]
UNAUTHENTICATED = [AuthErrorCode.UNAUTHENTICATED.value]
REVOKED = [AuthErrorCode.TOKEN_REVOKED.value]
INVALID = [AuthErrorCode.TOKEN_INVALID.value]
MUTATIONS = schema.graphql_schema.mutation_type.fields
SERVICE_NAMES = {to_camel_case(name) for name in SERVICE_MUTATIONS}


@pytest.fixture(autouse=True)
def _fixed(settings):
    fixed_settings(settings)


def service_token(scope: str | None = None, *, name: str = "billing", scopes: str | None = None) -> tuple:
    """Return a new client with `scopes` (default: all) and a token of it for `scope` (default: all)."""
    client, _secret = make_client(name=name, **({"scopes": scopes} if scopes else {}))
    return client, service_token_issue(client=client, scope=scope).access_token


def user_id(user) -> str:
    return to_global_id("User", user.pk)


def state() -> tuple:
    """What a refused mutation must leave unchanged: accounts, sessions, refresh tokens, clients, audit trail."""
    return (
        list(User.objects.order_by("pk").values_list("pk", "is_active", "email", "username", "password")),
        list(Session.objects.order_by("pk").values_list("pk", "revoked_at")),
        RefreshToken.objects.count(),
        list(ServiceClient.objects.order_by("pk").values_list("pk", "is_active", "secret_digest")),
        AuthEvent.objects.count(),
    )


# --- who is calling -----------------------------------------------------------------------------


def test_a_service_token_names_its_client_and_has_no_viewer(gql, db):
    # given
    client, token = service_token(f"{USERS_READ} {TOKENS_INTROSPECT}")

    # when
    body = gql(ME_AND_CLIENT, token=token)

    # then: the token's scopes, in the canonical order, all held by the client
    assert "errors" not in body, body
    assert body["data"] == {
        "me": None,
        "serviceClient": {"clientId": client.client_id, "name": "billing", "scopes": [USERS_READ, TOKENS_INTROSPECT]},
    }


def test_service_client_is_null_for_a_user_token_and_without_a_token(gql, user, token):
    assert gql(ME_AND_CLIENT, token=token)["data"] == {"me": {"id": user_id(user)}, "serviceClient": None}
    assert gql(ME_AND_CLIENT)["data"] == {"me": None, "serviceClient": None}


def test_a_service_request_reads_its_client_in_one_query_however_many_fields_ask(gql, db):
    _client, token = service_token()
    with CaptureQueriesContext(connection) as queries:
        body = gql("{ a: serviceClient { clientId } b: serviceClient { name } me { id } }", token=token)
    assert "errors" not in body, body
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_a_forged_service_token_is_token_invalid(gql, db):
    _client, token = service_token()
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    body = gql(SERVICE_CLIENT, token=forged)
    assert error_codes(body) == INVALID
    assert (body.get("data") or {}).get("serviceClient") is None


def test_a_token_claiming_to_be_a_service_token_without_its_claims_is_token_invalid(gql, user):
    # given: correctly signed, typed "service", but naming a user and a session like a user's token
    now = int(time.time())
    session_id = session_open(user=user).payload["sid"]
    token = jwt_encode(
        {
            "sub": str(user.pk),
            "sid": session_id,
            "iat": now,
            "exp": now + 60,
            "jti": "a" * 22,
            "iss": "gatehouse",
            "aud": "gatehouse",
            "token_type": "service",
            "scope": USERS_READ,
        }
    )
    # then: neither a user nor a client
    assert set(error_codes(gql(ME_AND_CLIENT, token=token))) == set(INVALID)


def test_an_expired_service_token_is_token_expired(gql, db, settings):
    client, _ = service_token()
    now = int(time.time())
    token = jwt_encode(
        {
            "iss": settings.GRAPHQL_JWT["JWT_ISSUER"],
            "aud": settings.GRAPHQL_JWT["JWT_AUDIENCE"],
            "sub": client.client_id,
            "client_id": client.client_id,
            "iat": now - 300,
            "exp": now - 200,
            "jti": "b" * 22,
            "scope": USERS_READ,
            "token_type": "service",
        }
    )
    assert error_codes(gql(SERVICE_CLIENT, token=token)) == [AuthErrorCode.TOKEN_EXPIRED.value]


def test_a_user_token_is_never_a_service_token(gql, user, token, make_user):
    # given: even staff
    staff = make_user(is_staff=True)
    staff_token = session_open(user=staff).token
    for bearer in (token, staff_token):
        assert gql(SERVICE_CLIENT, token=bearer)["data"] == {"serviceClient": None}
        body = gql(REVOKE_USER_SESSIONS, {"id": user_id(user)}, token=bearer)
        assert error_codes(body) == FORBIDDEN
    assert Session.objects.filter(user=user, revoked_at__isnull=True).count() == 1


# --- users:read ----------------------------------------------------------------------------------


def test_users_read_lists_every_account_as_staff_would(gql, user, make_user):
    # given
    make_user(username="carol", email="carol@example.com", is_active=False)
    _client, token = service_token(USERS_READ)

    # when
    body = gql(USERS, token=token)

    # then
    assert "errors" not in body, body
    assert body["data"]["users"]["totalCount"] == 2
    assert {edge["node"]["username"] for edge in body["data"]["users"]["edges"]} == {"alice", "carol"}


def test_users_read_fetches_any_user_by_node_but_never_their_sessions(gql, user, token):
    _client, service = service_token(USERS_READ)

    body = gql(NODE, {"id": user_id(user)}, token=service)

    assert "errors" not in body, body
    assert body["data"]["node"] == {
        "__typename": "User",
        "id": user_id(user),
        "username": "alice",
        "email": "alice@example.com",
        "sessions": None,
    }


def test_users_read_gets_null_for_a_session_node_and_an_unknown_user(gql, user, token):
    _client, service = service_token(USERS_READ)
    session = Session.objects.get(user=user)
    for global_id in (to_global_id("Session", session.id.hex), to_global_id("User", 987654)):
        body = gql(NODE, {"id": global_id}, token=service)
        assert "errors" not in body, body
        assert body["data"]["node"] is None


@pytest.mark.parametrize("scope", [USERS_WRITE, TOKENS_INTROSPECT, f"{USERS_WRITE} {TOKENS_INTROSPECT}"])
def test_without_users_read_users_and_node_are_forbidden(gql, user, scope):
    _client, token = service_token(scope)

    listing = gql(USERS, token=token)
    node = gql(NODE, {"id": user_id(user)}, token=token)

    assert error_codes(listing) == FORBIDDEN
    assert listing["data"] == {"users": None}
    assert error_codes(node) == FORBIDDEN
    assert node["data"] == {"node": None}


def test_a_token_asking_for_fewer_scopes_gets_only_those(gql, user):
    # given: the client holds users:read, its token asked only for users:write
    _client, token = service_token(USERS_WRITE, scopes=f"{USERS_READ} {USERS_WRITE}")
    assert gql(SERVICE_CLIENT, token=token)["data"]["serviceClient"]["scopes"] == [USERS_WRITE]
    assert error_codes(gql(USERS, token=token)) == FORBIDDEN


# --- users:write ---------------------------------------------------------------------------------


def test_revoke_user_sessions_ends_every_session_at_once(gql, user, make_user):
    # given: two sessions of alice, one of bob
    first, second = session_open(user=user).token, session_open(user=user).token
    bob = make_user(username="bob", email="bob@example.com")
    bobs = session_open(user=bob).token
    client, token = service_token(USERS_WRITE)

    # when
    body = gql(REVOKE_USER_SESSIONS, {"id": user_id(user)}, token=token)

    # then
    assert body == {"data": {"revokeUserSessions": {"success": True, "revokedSessions": 2, "errors": []}}}
    assert set(Session.objects.filter(user=user).values_list("revoked_reason", flat=True)) == {SessionEndReason.ADMIN}
    for old in (first, second):
        assert error_codes(gql("{ me { id } }", token=old)) == REVOKED
    assert gql("{ me { username } }", token=bobs)["data"] == {"me": {"username": "bob"}}
    # audited with the client as the actor
    event = AuthEvent.objects.get(identifier=f"client:{client.client_id}", kind=AuthEventKind.SESSIONS_ENDED)
    assert (event.kind, event.user_id, event.detail) == (AuthEventKind.SESSIONS_ENDED, user.pk, "admin by client: 2")
    assert User.objects.get(pk=user.pk).is_active is True


def test_revoke_user_sessions_of_a_user_without_sessions_succeeds_with_zero(gql, user):
    _client, token = service_token(USERS_WRITE)
    body = gql(REVOKE_USER_SESSIONS, {"id": user_id(user)}, token=token)
    assert body == {"data": {"revokeUserSessions": {"success": True, "revokedSessions": 0, "errors": []}}}


def test_deactivate_user_deactivates_and_ends_every_session(gql, user):
    # given
    old = session_open(user=user).token
    client, token = service_token(USERS_WRITE)

    # when
    body = gql(DEACTIVATE_USER, {"id": user_id(user)}, token=token)

    # then
    assert body == {"data": {"deactivateUser": {"success": True, "errors": []}}}
    assert User.objects.get(pk=user.pk).is_active is False
    assert set(Session.objects.filter(user=user).values_list("revoked_reason", flat=True)) == {
        SessionEndReason.DEACTIVATED
    }
    assert error_codes(gql("{ me { id } }", token=old)) == REVOKED
    event = AuthEvent.objects.get(identifier=f"client:{client.client_id}", kind=AuthEventKind.SESSIONS_ENDED)
    assert (event.kind, event.user_id, event.detail) == (
        AuthEventKind.SESSIONS_ENDED,
        user.pk,
        "deactivated by client: 1",
    )
    # a second call changes nothing and succeeds
    again = gql(DEACTIVATE_USER, {"id": user_id(user)}, token=token)
    assert again == {"data": {"deactivateUser": {"success": True, "errors": []}}}


@pytest.mark.parametrize("mutation", [REVOKE_USER_SESSIONS, DEACTIVATE_USER])
@pytest.mark.parametrize(
    "global_id",
    [
        to_global_id("User", 987654),
        to_global_id("User", 0),
        to_global_id("User", 2**70),
        to_global_id("User", "abc"),
        to_global_id("Session", "1"),
        "not base64 at all!",
        "",
    ],
)
def test_an_unknown_or_malformed_id_is_not_found_and_changes_nothing(gql, user, token, mutation, global_id):
    # given
    _client, service = service_token(USERS_WRITE)
    before = state()

    # when
    body = gql(mutation, {"id": global_id}, token=service)

    # then
    assert "errors" not in body, body
    payload = next(iter(body["data"].values()))
    assert payload["success"] is False
    assert payload["errors"] == [{"field": "id", "code": UserErrorCode.NOT_FOUND.name}]
    assert state() == before


@pytest.mark.parametrize("mutation", [REVOKE_USER_SESSIONS, DEACTIVATE_USER])
@pytest.mark.parametrize("scope", [USERS_READ, TOKENS_INTROSPECT, f"{USERS_READ} {TOKENS_INTROSPECT}"])
def test_without_users_write_the_service_mutations_are_forbidden(gql, user, token, mutation, scope):
    _client, service = service_token(scope)
    before = state()

    body = gql(mutation, {"id": user_id(user)}, token=service)

    assert error_codes(body) == FORBIDDEN
    assert next(iter(body["data"].values())) is None
    assert state() == before


@pytest.mark.parametrize("mutation", [REVOKE_USER_SESSIONS, DEACTIVATE_USER])
def test_the_service_mutations_are_unauthenticated_without_a_token(gql, user, token, mutation):
    before = state()
    body = gql(mutation, {"id": user_id(user)})
    assert error_codes(body) == UNAUTHENTICATED
    assert state() == before


# --- every other mutation is refused to a service token -------------------------------------------


def _placeholder(arg_type) -> str:
    named = get_named_type(arg_type).name
    return {"String": '"x"', "ID": '"VXNlcjox"', "Boolean": "true", "Int": "1"}[named]


def _document(name: str) -> str:
    """A call of the mutation with every required argument filled in, selecting its first scalar field."""
    field = MUTATIONS[name]
    arguments = ", ".join(
        f"{arg}: {_placeholder(spec.type)}" for arg, spec in field.args.items() if isinstance(spec.type, GraphQLNonNull)
    )
    payload = get_named_type(field.type)
    scalar = next(
        field_name
        for field_name, payload_field in payload.fields.items()
        if not hasattr(get_named_type(payload_field.type), "fields")
    )
    return f"mutation {{ {name}{f'({arguments})' if arguments else ''} {{ {scalar} }} }}"


@pytest.mark.parametrize("name", sorted(set(MUTATIONS) - SERVICE_NAMES))
def test_every_other_mutation_refuses_a_service_token_with_every_scope(gql, user, token, name):
    # given: a token with every scope
    _client, service = service_token()
    before = state()

    # when
    body = gql(_document(name), token=service)

    # then: refused, never a success
    assert error_codes(body) == FORBIDDEN, body
    assert body["data"] in (None, {name: None})
    assert state() == before


def test_the_walk_covers_every_mutation_of_the_schema():
    # Every field is either walked above or one of the two service mutations tested above.
    assert {"revokeUserSessions", "deactivateUser"} == SERVICE_NAMES
    assert set(MUTATIONS) > SERVICE_NAMES
    assert {"register", "tokenAuth", "logoutAll", "passwordChange", "revokeSession"} <= set(MUTATIONS) - SERVICE_NAMES


def test_a_revoked_service_token_on_another_mutation_is_token_revoked(gql, user):
    client, service = service_token()
    client_disable(client=client, via="tests")
    assert error_codes(
        gql('mutation { tokenAuth(email: "x@example.com", password: "x") { token } }', token=service)
    ) == (REVOKED)


# --- disabling, rotating and narrowing a client ---------------------------------------------------


def test_a_disabled_clients_token_is_revoked_on_the_next_request(gql, user):
    # given
    client, token = service_token(USERS_WRITE)
    assert gql(SERVICE_CLIENT, token=token)["data"]["serviceClient"]["clientId"] == client.client_id

    # when
    client_disable(client=client, via="tests")

    # then
    for document, variables in (
        (SERVICE_CLIENT, None),
        (ME_AND_CLIENT, None),
        (DEACTIVATE_USER, {"id": user_id(user)}),
    ):
        assert set(error_codes(gql(document, variables, token=token))) == set(REVOKED)
    assert User.objects.get(pk=user.pk).is_active is True


def test_a_rotated_secret_revokes_older_tokens_and_not_newer_ones(gql, db):
    # given: a token issued at once before the rotation, in the same second
    client, old = service_token()
    assert gql(SERVICE_CLIENT, token=old)["data"]["serviceClient"]["clientId"] == client.client_id
    # when
    client_secret_rotate(client=client, via="tests")
    new = service_token_issue(client=ServiceClient.objects.get(pk=client.pk)).access_token
    # then: the old token names the old secret's version; `iat` alone could not tell them apart
    assert json.loads(base64.urlsafe_b64decode(old.split(".")[1] + "=="))["iat"] >= int(time.time()) - 1
    assert error_codes(gql(SERVICE_CLIENT, token=old)) == REVOKED
    assert gql(SERVICE_CLIENT, token=new)["data"]["serviceClient"]["clientId"] == client.client_id


def test_a_service_token_without_a_secret_version_is_token_invalid(gql, db):
    client, _ = service_token()
    claims = _claims(client.client_id)
    del claims["secret_version"]
    assert error_codes(gql(SERVICE_CLIENT, token=jwt_encode(claims))) == INVALID
    claims["secret_version"] = "1"
    assert error_codes(gql(SERVICE_CLIENT, token=jwt_encode(claims))) == INVALID


def test_a_token_with_a_scope_the_client_no_longer_holds_is_revoked(gql, user):
    client, token = service_token(f"{USERS_READ} {USERS_WRITE}")
    ServiceClient.objects.filter(pk=client.pk).update(scopes=USERS_READ)
    assert error_codes(gql(USERS, token=token)) == REVOKED


def test_a_renamed_client_is_named_anew_on_the_next_request(gql, db):
    client, token = service_token()
    client.name = "invoicing"
    client.save()
    assert gql(SERVICE_CLIENT, token=token)["data"]["serviceClient"]["name"] == "invoicing"


# --- hostile tokens that say they are service tokens ---------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(subject: str, **extra) -> dict:
    now = int(time.time())
    return {
        "iss": "gatehouse",
        "aud": "gatehouse",
        "sub": subject,
        "client_id": subject,
        "iat": now,
        "exp": now + 60,
        "jti": "d" * 22,
        "scope": USERS_READ,
        "token_type": "service",
        "secret_version": 1,
        **extra,
    }


NONE_HEADER = _b64(b'{"alg":"none"}')
HS256_HEADER = _b64(b'{"alg":"HS256"}')


@pytest.mark.parametrize(
    "forge",
    [
        # alg none, no signature
        lambda c: f"{NONE_HEADER}.{_b64(json.dumps(_claims(c)).encode())}.",
        # a payload that is not JSON, or JSON that is not an object
        lambda c: f"{HS256_HEADER}.{_b64(b'service')}.{_b64(b'sig')}",
        lambda c: f"{HS256_HEADER}.{_b64(json.dumps(['service']).encode())}.{_b64(b'sig')}",
        # signed by us, but with a scope we do not know, a client id we could not have issued, or a session
        lambda c: jwt_encode(_claims(c, scope="users:read admin")),
        lambda c: jwt_encode(_claims("svc_" + "A" * 23)),
        lambda c: jwt_encode(_claims(c, sid="0" * 32)),
        lambda c: jwt_encode(_claims(c, client_id="svc_" + "B" * 24)),
        # a lifetime longer than any service token's
        lambda c: jwt_encode(_claims(c, exp=int(time.time()) + 86_400)),
    ],
)
def test_a_hostile_token_that_says_it_is_a_service_token_is_token_invalid(gql, user, forge):
    client, _ = service_token()
    before = state()

    body = gql(ME_AND_CLIENT, token=forge(client.client_id))

    assert set(error_codes(body)) == set(INVALID), body
    assert body["data"] == {"me": None, "serviceClient": None}
    assert state() == before


def test_a_service_token_of_an_unknown_client_is_token_revoked(gql, db):
    body = gql(SERVICE_CLIENT, token=jwt_encode(_claims("svc_" + "C" * 24)))
    assert error_codes(body) == REVOKED


def test_a_broken_token_is_verified_once_and_a_service_token_as_one(gql, db, user, token, monkeypatch):
    # The second verification (as a service token) runs only for a token we signed as one.
    verified = []
    real = accounts.authentication.service_token_verify
    monkeypatch.setattr(accounts.authentication, "service_token_verify", lambda t: verified.append(t) or real(t))
    head, payload, signature = token.split(".")
    broken = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    assert error_codes(gql("{ me { id } }", token=broken)) == [AuthErrorCode.TOKEN_INVALID.value]
    assert gql("{ me { id } }", token=token)["data"]["me"]["id"]
    assert verified == []
    _client, service = service_token("users:read")
    head, payload, signature = service.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    assert error_codes(gql("{ serviceClient { clientId } }", token=forged)) == [AuthErrorCode.TOKEN_INVALID.value]
    assert verified == []
    assert gql("{ serviceClient { clientId } }", token=service)["data"]["serviceClient"]
    assert verified == [service]
