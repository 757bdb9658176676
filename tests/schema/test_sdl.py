"""The schema snapshot (schema.graphql) and the names clients depend on."""

from pathlib import Path

from django.conf import settings
from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
    print_schema,
)

from accounts.error_codes import UserErrorCode
from schema.schema import schema

SNAPSHOT = Path(settings.BASE_DIR) / "schema.graphql"
GRAPHQL_SCHEMA = schema.graphql_schema


def test_schema_matches_the_committed_snapshot():
    printed = print_schema(GRAPHQL_SCHEMA).strip()
    committed = SNAPSHOT.read_text(encoding="utf-8").strip()

    assert printed == committed, (
        "The schema differs from schema.graphql. If the change is intended, run `make schema` and commit the result."
    )


def test_str_of_the_schema_is_the_same_sdl():
    assert str(schema).strip() == print_schema(GRAPHQL_SCHEMA).strip()


def test_root_fields_of_the_contract_exist():
    query = GRAPHQL_SCHEMA.query_type
    mutation = GRAPHQL_SCHEMA.mutation_type

    assert {"me", "node"} <= set(query.fields)
    assert {"register", "tokenAuth"} <= set(mutation.fields)
    assert get_named_type(query.fields["me"].type).name == "User"
    assert not isinstance(query.fields["me"].type, GraphQLNonNull)
    assert get_named_type(query.fields["node"].type).name == "Node"
    assert isinstance(query.fields["node"].args["id"].type, GraphQLNonNull)


def test_register_arguments_and_payload():
    field = GRAPHQL_SCHEMA.mutation_type.fields["register"]

    assert set(field.args) == {"username", "email", "password"}
    assert all(isinstance(arg.type, GraphQLNonNull) for arg in field.args.values())
    payload = get_named_type(field.type)
    assert {"user", "token", "errors"} <= set(payload.fields)
    assert str(payload.fields["errors"].type) == "[UserError!]!"


def test_token_auth_arguments_and_payload():
    field = GRAPHQL_SCHEMA.mutation_type.fields["tokenAuth"]

    assert set(field.args) == {"email", "username", "password", "deviceToken"}
    assert isinstance(field.args["password"].type, GraphQLNonNull)
    for optional in ("email", "username", "deviceToken"):
        assert not isinstance(field.args[optional].type, GraphQLNonNull)
    payload = get_named_type(field.type)
    assert {"token", "payload", "refreshExpiresIn", "refreshExpiresAt", "deviceToken", "user"} <= set(payload.fields)
    # django-graphql-jwt's Int field stays, nullable (it cannot hold Unix time after 2038) and deprecated
    assert str(payload.fields["refreshExpiresIn"].type) == "Int"
    assert payload.fields["refreshExpiresIn"].deprecation_reason
    assert str(payload.fields["refreshExpiresAt"].type) == "DateTime!"


def test_user_implements_node_with_allow_listed_fields_only():
    user = GRAPHQL_SCHEMA.get_type("User")

    assert isinstance(user, GraphQLObjectType)
    assert [interface.name for interface in user.interfaces] == ["Node"]
    assert isinstance(GRAPHQL_SCHEMA.get_type("Node"), GraphQLInterfaceType)
    assert set(user.fields) == {"id", "username", "email", "dateJoined", "lastLogin", "isEmailVerified", "sessions"}
    assert str(user.fields["id"].type) == "ID!"


def test_user_error_has_field_message_and_code():
    user_error = GRAPHQL_SCHEMA.get_type("UserError")

    assert set(user_error.fields) == {"field", "message", "code"}
    assert str(user_error.fields["field"].type) == "String"
    assert str(user_error.fields["message"].type) == "String!"
    assert str(user_error.fields["code"].type) == "UserErrorCode!"


def test_user_error_code_enum_has_every_member():
    enum = GRAPHQL_SCHEMA.get_type("UserErrorCode")

    assert isinstance(enum, GraphQLEnumType)
    assert set(enum.values) == {code.name for code in UserErrorCode}


def test_every_type_field_and_argument_is_described():
    # The schema is the API documentation (root operation types excepted: their fields are).
    roots = {GRAPHQL_SCHEMA.query_type.name, GRAPHQL_SCHEMA.mutation_type.name}
    undocumented = []
    for name, graphql_type in GRAPHQL_SCHEMA.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not graphql_type.description and name not in roots:
            undocumented.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                undocumented.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    undocumented.append(f"{name}.{field_name}({arg_name})")

    assert undocumented == []
