"""Introspection: the standard queries that GraphiQL, codegen, Apollo Sandbox, Postman and
Insomnia send pass the document limits when introspection is on, and are refused by the
validator when it is off; introspection used to build deep or wide documents is still
refused (schema.limits, _INTROSPECTION_SHAPE)."""

import itertools
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from graphql import get_introspection_query

from schema.errors import RequestErrorCode
from schema.views import current_policy, prepare
from tests.conftest import error_codes

LIMITS = settings.GATEHOUSE
# graphql-core's keyword arguments (the same options as graphql-js's, plus directive deprecation).
OPTIONS = (
    "descriptions",
    "specified_by_url",
    "directive_is_repeatable",
    "schema_description",
    "input_value_deprecation",
    "input_object_one_of",
    "experimental_directive_deprecation",
)
COMBINATIONS = [dict(zip(OPTIONS, flags, strict=True)) for flags in itertools.product((False, True), repeat=7)]
# getIntrospectionQuery() of graphql-js 16 and 17 for every combination of its options.
GRAPHQL_JS = json.loads((Path(__file__).parent / "fixtures" / "graphql_js_introspection.json").read_text())["queries"]
ALL_ON = get_introspection_query(**dict.fromkeys(OPTIONS, True))


def introspection(enabled: bool):
    return override_settings(GATEHOUSE={**LIMITS, "INTROSPECTION": enabled})


def option_names(options: dict) -> str:
    return "-".join(name for name, on in options.items() if on) or "none"


def assert_full_schema(body: dict) -> None:
    assert "errors" not in body, body.get("errors")
    schema = body["data"]["__schema"]
    assert schema["queryType"]["name"] == "Query"
    types = {t["name"]: t for t in schema["types"]}
    user = {field["name"]: field for field in types["User"]["fields"]}
    assert user["id"]["type"]["kind"] == "NON_NULL"
    assert user["id"]["type"]["ofType"]["kind"] == "SCALAR"
    assert user["id"]["type"]["ofType"]["name"] == "ID"
    assert {"__Schema", "__Type", "Mutation"} <= set(types)


def too_complex(body: dict) -> None:
    assert "data" not in body, body
    assert error_codes(body) == [RequestErrorCode.QUERY_TOO_COMPLEX.value]


# --- the standard queries pass when introspection is on ----------------------------------------


@pytest.mark.parametrize("options", COMBINATIONS, ids=[option_names(o) for o in COMBINATIONS])
def test_every_graphql_core_introspection_query_is_prepared(db, options):
    # given
    query = get_introspection_query(**options)
    # when: the view's own preparation, with the standard validation rules
    with introspection(True):
        prepared = prepare(query, current_policy())
    # then
    assert prepared.errors == ()
    assert prepared.document is not None


@pytest.mark.parametrize(
    "entry", GRAPHQL_JS, ids=["+".join(option_names(o) for o in entry["options"]) for entry in GRAPHQL_JS]
)
def test_every_graphql_js_introspection_query_loads_the_schema(gql, db, entry):
    # when
    with introspection(True):
        body = gql(entry["query"])
    # then
    assert_full_schema(body)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(get_introspection_query(), id="graphql-core-default"),
        pytest.param(ALL_ON, id="graphql-core-all-options"),
    ],
)
def test_the_graphql_core_introspection_query_loads_the_schema(gql, db, query):
    # when
    with introspection(True):
        body = gql(query)
    # then
    assert_full_schema(body)


def test_the_full_type_of_one_type_loads_through_dunder_type(gql, db):
    # given: the standard fragments under `__type`, as a docs explorer asks for one type
    fragments = ALL_ON[ALL_ON.index("fragment FullType") :]
    query = '{ __type(name: "User") { ...FullType } }\n' + fragments
    # when
    with introspection(True):
        body = gql(query)
    # then
    assert "errors" not in body
    assert body["data"]["__type"]["name"] == "User"


# --- with introspection off, the validator refuses them --------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(get_introspection_query(), id="graphql-core-default"),
        pytest.param(ALL_ON, id="graphql-core-all-options"),
        pytest.param(GRAPHQL_JS[-1]["query"], id="graphql-js-all-options"),
    ],
)
def test_introspection_off_refuses_the_standard_queries(gql, db, query):
    # when
    with introspection(False):
        body = gql(query)
    # then: refused as introspection (NoSchemaIntrospectionCustomRule), not as a deep document
    assert "data" not in body
    assert set(error_codes(body)) == {RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value}
    assert all("introspection" in error["message"].lower() for error in body["errors"])


# --- introspection that is not the standard shape is still limited ---------------------------


def off_shape_repeated(times: int) -> str:
    """`type { ofType { ofType { fields { … } } } }` repeated: a walk the standard query never makes."""
    inner = "name"
    for _ in range(times):
        inner = f"type {{ ofType {{ ofType {{ fields {{ {inner} }} }} }} }}"
    return f"{{ __schema {{ types {{ fields {{ {inner} }} }} }} }}"


TYPE_REF = "kind name"
for _ in range(9):
    TYPE_REF = f"kind name ofType {{ {TYPE_REF} }}"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(off_shape_repeated(3), id="fields-under-ofType-repeated"),
        pytest.param(
            "{ __schema { types { fields { args { type { " + "ofType { " * 10 + "name" + " }" * 10 + " } } } } } }",
            id="ofType-chain-longer-than-the-standard",
        ),
        pytest.param(
            "{ __schema { types { fields { args { type { ofType { ofType { ofType { ofType { ofType { ofType { "
            "fields { name } } } } } } } } } } } } }",
            id="off-shape-field-below-the-shape",
        ),
        pytest.param(
            "{ __schema { types { interfaces { fields { type { fields { type { fields { type { fields { type { "
            "fields { name } } } } } } } } } } } } }",
            id="interfaces-fan-out",
        ),
        pytest.param(
            "{ __schema { types { fields { type { possibleTypes { fields { type { possibleTypes { fields { type { "
            "possibleTypes { name } } } } } } } } } } } }",
            id="possibleTypes-fan-out",
        ),
        pytest.param(
            '{ __type(name: "User") { fields { type { fields { type { fields { type { fields { type { fields { '
            "type { name } } } } } } } } } } } }",
            id="dunder-type-fan-out",
        ),
    ],
)
def test_deep_introspection_off_the_standard_shape_is_too_complex(gql, db, query):
    # when
    with introspection(True):
        body = gql(query)
    # then
    too_complex(body)


def test_the_standard_type_ref_chain_is_allowed_at_its_full_length(gql, db):
    # given: the deepest path of the standard query, 14 levels
    query = f"{{ __schema {{ types {{ fields {{ args {{ type {{ {TYPE_REF} }} }} }} }} }} }}"
    # when
    with introspection(True):
        body = gql(query)
    # then
    assert "errors" not in body


def aliased(query: str, count: int) -> str:
    """Alias `count` of the standard query's leaf `name` fields (inside FullType)."""
    return query.replace(
        "fragment FullType on __Type {\n  kind\n  name",
        "fragment FullType on __Type {\n  kind\n  " + " ".join(f"a{n}: name" for n in range(count)),
        1,
    )


def test_aliases_inside_the_standard_query_are_counted(gql, db):
    # given
    within = aliased(ALL_ON, LIMITS["MAX_ALIASES"])
    beyond = aliased(ALL_ON, LIMITS["MAX_ALIASES"] + 1)
    assert within != ALL_ON
    # when
    with introspection(True):
        allowed, refused = gql(within), gql(beyond)
    # then
    assert "errors" not in allowed
    too_complex(refused)


@pytest.mark.parametrize(
    "field",
    [
        pytest.param("__schema { types { name } }", id="dunder-schema"),
        pytest.param('__type(name: "User") { name }', id="dunder-type"),
    ],
)
def test_root_fields_inside_introspection_are_counted(gql, db, field):
    # when
    with introspection(True):
        body = gql("{ " + " ".join([field] * (LIMITS["MAX_ROOT_FIELDS"] + 1)) + " }")
    # then
    too_complex(body)


def test_the_standard_fragments_spread_many_times_are_too_complex(gql, db):
    # given: FullType spread into `types` over and over, each time within the depth allowance
    fragments = ALL_ON[ALL_ON.index("fragment FullType") :]
    query = "{ __schema { types { " + "...FullType " * 20 + "} } }\n" + fragments
    # when
    with introspection(True):
        body = gql(query)
    # then
    too_complex(body)
