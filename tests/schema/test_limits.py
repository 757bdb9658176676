"""Document limits: over HTTP with the configured settings.GATEHOUSE values, and
schema.limits.check_document_limits on small documents at the exact boundaries."""

import pytest
from django.conf import settings
from django.test import override_settings
from graphql import parse

from accounts.models import User
from schema.errors import RequestErrorCode
from schema.limits import DocumentLimits, LimitExceeded, check_document_limits
from tests.conftest import PASSWORD, error_codes

LIMITS = settings.GATEHOUSE
MAX_DEPTH = LIMITS["MAX_DEPTH"]
MAX_ALIASES = LIMITS["MAX_ALIASES"]
MAX_DIRECTIVES = LIMITS["MAX_DIRECTIVES"]
MAX_OPERATIONS = LIMITS["MAX_OPERATIONS"]
MAX_ROOT_FIELDS = LIMITS["MAX_ROOT_FIELDS"]
MAX_QUERY_LENGTH = LIMITS["MAX_QUERY_LENGTH"]
MAX_TOKENS = LIMITS["MAX_TOKENS"]
MAX_SELECTIONS = LIMITS["MAX_SELECTIONS"]
MAX_SELECTIONS_PER_SET = LIMITS["MAX_SELECTIONS_PER_SET"]
MAX_FIELD_PAIRS = LIMITS["MAX_FIELD_PAIRS"]


def too_complex(body: dict) -> None:
    """Assert `body` is refused with exactly one QUERY_TOO_COMPLEX error and no data."""
    assert "data" not in body, body
    assert error_codes(body) == [RequestErrorCode.QUERY_TOO_COMPLEX.value]


def register_field(n: int, alias: str = "") -> str:
    prefix = f"{alias}: " if alias else ""
    return (
        f'{prefix}register(username: "user{n}", email: "user{n}@example.com", password: "{PASSWORD}")'
        " { token errors { field code } }"
    )


def token_auth_field(alias: str = "", password: str = PASSWORD) -> str:
    prefix = f"{alias}: " if alias else ""
    return f'{prefix}tokenAuth(email: "alice@example.com", password: "{password}") {{ token }}'


USER_FIELDS = ("id", "username", "email", "dateJoined", "lastLogin", "isEmailVerified")


def with_introspection():
    """Depth is tested on introspection queries: the schema's own types do not nest deeply."""
    return override_settings(GATEHOUSE={**LIMITS, "INTROSPECTION": True})


def introspection_of_depth(depth: int) -> str:
    """Return a valid introspection query whose deepest field with a selection is at `depth`.

    That field, `fields` under `ofType`, is off the standard introspection query's shape,
    so the depth limit applies to it (tests/schema/test_introspection.py has the shape).
    """
    # Depths: __schema 1, types 2, fields 3, type 4, then one per ofType, then `fields`.
    assert depth >= 5
    inner = "fields { name }"
    for _ in range(depth - 5):
        inner = f"ofType {{ {inner} }}"
    return f"{{ __schema {{ types {{ fields {{ type {{ {inner} }} }} }} }} }}"


# --- depth -----------------------------------------------------------------------------------


def test_a_query_at_the_maximum_depth_runs(gql, db):
    # when
    with with_introspection():
        body = gql(introspection_of_depth(MAX_DEPTH))
    # then
    assert "errors" not in body
    assert body["data"]["__schema"]["types"]


def test_a_query_one_level_deeper_than_the_maximum_is_too_complex(gql, db):
    # when
    with with_introspection():
        body = gql(introspection_of_depth(MAX_DEPTH + 1))
    # then
    too_complex(body)


def test_depth_is_counted_through_nested_inline_fragments(gql, db):
    # given: inline fragments add no depth, the fields inside them do
    query = "NODE"
    for _ in range(MAX_DEPTH * 3):
        query = query.replace("NODE", 'node(id: "x") { ... on User { NODE } }')
    query = "{ " + query.replace("NODE", "id") + " }"
    # when
    body = gql(query)
    # then
    too_complex(body)


def test_depth_is_counted_through_fragments(gql, db):
    # given: each level lives in its own fragment
    levels = MAX_DEPTH + 1 - 5
    fragments = [f"fragment T{n} on __Type {{ ofType {{ ...T{n + 1} }} }}" for n in range(levels)]
    fragments.append(f"fragment T{levels} on __Type {{ fields {{ name }} }}")
    query = "{ __schema { types { fields { type { ...T0 } } } } }\n" + "\n".join(fragments)
    # when
    with with_introspection():
        body = gql(query)
    # then
    too_complex(body)


def test_fragments_at_the_maximum_depth_run(gql, db):
    # given
    levels = MAX_DEPTH - 5
    fragments = [f"fragment T{n} on __Type {{ ofType {{ ...T{n + 1} }} }}" for n in range(levels)]
    fragments.append(f"fragment T{levels} on __Type {{ fields {{ name }} }}")
    query = "{ __schema { types { fields { type { ...T0 } } } } }\n" + "\n".join(fragments)
    # when
    with with_introspection():
        body = gql(query)
    # then
    assert "errors" not in body
    assert body["data"]["__schema"]["types"]


# --- aliases, directives, operations, root fields --------------------------------------------


def aliased_fields(count: int) -> str:
    return " ".join(f"a{n}: username" for n in range(count))


def test_the_maximum_number_of_aliases_runs(gql, user, token):
    # when
    body = gql(f"{{ me {{ {aliased_fields(MAX_ALIASES)} }} }}", token=token)
    # then
    assert "errors" not in body
    assert body["data"]["me"] == {f"a{n}": "alice" for n in range(MAX_ALIASES)}


def test_one_alias_too_many_is_too_complex(gql, user, token):
    # when
    body = gql(f"{{ me {{ {aliased_fields(MAX_ALIASES + 1)} }} }}", token=token)
    # then
    too_complex(body)


def test_aliases_in_a_fragment_count_once_per_spread(gql, user, token):
    # given: a fragment within the alias limit, spread twice
    per_spread = MAX_ALIASES // 2 + 1
    query = f"{{ me {{ ...F ... on User {{ ...F }} }} }} fragment F on User {{ {aliased_fields(per_spread)} }}"
    # when
    body = gql(query, token=token)
    # then
    too_complex(body)


def repeated_directives(count: int) -> str:
    return " ".join(["username @include(if: true)"] * count)


def test_the_maximum_number_of_directives_runs(gql, user, token):
    # when
    body = gql(f"{{ me {{ {repeated_directives(MAX_DIRECTIVES)} }} }}", token=token)
    # then
    assert body == {"data": {"me": {"username": "alice"}}}


def test_one_directive_too_many_is_too_complex(gql, user, token):
    # when
    body = gql(f"{{ me {{ {repeated_directives(MAX_DIRECTIVES + 1)} }} }}", token=token)
    # then
    too_complex(body)


def test_directives_in_fragments_count(gql, user, token):
    # given
    fragment = f"fragment F on User {{ {repeated_directives(MAX_DIRECTIVES // 2 + 1)} }}"
    # when
    body = gql(f"{{ me {{ ...F ...F @include(if: true) }} }} {fragment}", token=token)
    # then
    too_complex(body)


def operations(count: int) -> str:
    return " ".join(f"query Q{n} {{ __typename }}" for n in range(count))


def test_the_maximum_number_of_operations_runs(gql, db):
    # when
    body = gql(operations(MAX_OPERATIONS), operation_name=f"Q{MAX_OPERATIONS - 1}")
    # then
    assert body == {"data": {"__typename": "Query"}}


def test_one_operation_too_many_is_too_complex(gql, db):
    # when
    body = gql(operations(MAX_OPERATIONS + 1), operation_name="Q0")
    # then
    too_complex(body)


def test_the_maximum_number_of_root_fields_runs(gql, db):
    # when
    body = gql("{ " + " ".join(["__typename"] * MAX_ROOT_FIELDS) + " }")
    # then
    assert body == {"data": {"__typename": "Query"}}


def test_one_root_field_too_many_is_too_complex(gql, db):
    # when
    body = gql("{ " + " ".join(["__typename"] * (MAX_ROOT_FIELDS + 1)) + " }")
    # then
    too_complex(body)


def test_root_fields_are_counted_through_fragments(gql, db):
    # given
    half = MAX_ROOT_FIELDS // 2 + 1
    query = "{ ...F ... on Query { ...F } } fragment F on Query { " + " ".join(["__typename"] * half) + " }"
    # when
    body = gql(query)
    # then
    too_complex(body)


# --- sensitive root fields: once per operation -----------------------------------------------


def test_token_auth_once_signs_in(gql, user):
    # when
    body = gql(f"mutation {{ {token_auth_field()} }}")
    # then
    assert "errors" not in body
    assert body["data"]["tokenAuth"]["token"]
    user.refresh_from_db()
    assert user.last_login is not None


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"mutation {{ a: {token_auth_field()} b: {token_auth_field()} }}", id="aliases"),
        pytest.param(
            f"mutation {{ {token_auth_field('a', 'wrong-1')} {token_auth_field('b')} }}", id="guess-then-right"
        ),
        pytest.param(
            f"mutation {{ {token_auth_field()} ...F }} fragment F on Mutation {{ {token_auth_field('b')} }}",
            id="direct-and-fragment",
        ),
        pytest.param(
            f"mutation {{ {token_auth_field()} ... on Mutation {{ {token_auth_field('b')} }} }}",
            id="direct-and-inline-fragment",
        ),
        pytest.param(
            f"mutation {{ ...F ...F }} fragment F on Mutation {{ {token_auth_field()} }}", id="fragment-twice"
        ),
    ],
)
def test_token_auth_twice_in_one_operation_is_too_complex(gql, user, query):
    # when
    response = gql.post(query)
    # then
    body = response.json()
    too_complex(body)
    assert "eyJ" not in response.content.decode()
    user.refresh_from_db()
    assert user.last_login is None


def test_token_auth_many_times_is_too_complex(gql, user):
    # given: a password-guessing batch hidden in aliases
    guesses = " ".join(token_auth_field(f"g{n}", f"guess-{n}") for n in range(MAX_ALIASES))
    # when
    body = gql(f"mutation {{ {guesses} }}")
    # then
    too_complex(body)
    user.refresh_from_db()
    assert user.last_login is None


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"mutation {{ {register_field(1, 'a')} {register_field(2, 'b')} }}", id="aliases"),
        pytest.param(
            f"mutation {{ {register_field(1)} ...F }} fragment F on Mutation {{ {register_field(2, 'b')} }}",
            id="direct-and-fragment",
        ),
        pytest.param(
            f"mutation {{ {register_field(1)} ... on Mutation {{ {register_field(2, 'b')} }} }}",
            id="direct-and-inline-fragment",
        ),
    ],
)
def test_register_twice_in_one_operation_is_too_complex(gql, db, query):
    # when
    body = gql(query)
    # then
    too_complex(body)
    assert not User.objects.exists()


def test_register_and_token_auth_once_each_is_allowed(gql, user):
    # when
    body = gql(f"mutation {{ {register_field(1)} {token_auth_field()} }}")
    # then
    assert "errors" not in body
    assert body["data"]["register"]["errors"] == []
    assert body["data"]["tokenAuth"]["token"]
    assert User.objects.filter(username="user1").exists()


# --- size: characters and tokens -------------------------------------------------------------


def padded(query: str, length: int) -> str:
    """Return `query` followed by a comment, `length` characters in all (comments are no tokens)."""
    query += "\n#"
    return query + "x" * (length - len(query))


def test_a_query_of_the_maximum_length_runs(gql, db):
    # given
    query = padded("{ __typename }", MAX_QUERY_LENGTH)
    assert len(query) == MAX_QUERY_LENGTH
    # when
    body = gql(query)
    # then
    assert body == {"data": {"__typename": "Query"}}


def test_a_query_one_character_too_long_is_too_complex(gql, db):
    # given
    query = padded(f"mutation {{ {register_field(1)} }}", MAX_QUERY_LENGTH + 1)
    # when
    body = gql(query)
    # then
    too_complex(body)
    assert not User.objects.exists()


def query_of_tokens(count: int) -> str:
    """Return a valid `me` query of exactly `count` tokens, within every other limit.

    `{ me {` and `} }` are 5 tokens; a run of k nested `... on User {` around one field is
    5k + 1 (the parser refuses deep nesting, so runs stay short); a lone field is 1.
    """
    parts, left, n = [], count - 5, 0
    while left >= 6:
        depth = min(20, (left - 1) // 5)
        parts.append("... on User { " * depth + USER_FIELDS[n % len(USER_FIELDS)] + " }" * depth)
        left -= 5 * depth + 1
        n += 1
    parts.extend(USER_FIELDS[(n + i) % len(USER_FIELDS)] for i in range(left))
    return "{ me { " + " ".join(parts) + " } }"


def test_a_query_of_the_maximum_number_of_tokens_runs(gql, user, token):
    # when
    body = gql(query_of_tokens(MAX_TOKENS), token=token)
    # then
    assert "errors" not in body
    assert body["data"]["me"]["username"] == "alice"


def test_one_token_too_many_is_a_parse_failure(gql, user, token):
    # when: graphql-core's parser stops at max_tokens, so this is a syntax error, not a limit error
    body = gql(query_of_tokens(MAX_TOKENS + 1), token=token)
    # then
    assert "data" not in body
    assert error_codes(body) == [RequestErrorCode.GRAPHQL_PARSE_FAILED.value]


def test_comments_and_commas_do_not_count_as_tokens(gql, db):
    # given: only `{` `__typename` `}` are tokens
    query = "{ " + ", " * 1_500 + "__typename # " + "x" * 3_000 + "\n}"
    # when
    body = gql(query)
    # then
    assert body == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ " + "a { " * 300 + "b" + " }" * 300 + " }", id="selections"),
        pytest.param("{ node(id: " + "[" * 450 + '"x"' + "]" * 450 + ") { id } }", id="list-value"),
        pytest.param("{ node(id: " + "{a: " * 240 + '"x"' + "}" * 240 + ") { id } }", id="object-value"),
        pytest.param("query($v: " + "[" * 450 + "String" + "]" * 450 + ") { __typename }", id="variable-type"),
    ],
)
def test_a_document_nested_too_deeply_for_the_parser_is_a_parse_failure(gql, db, query):
    # given: within the length and token limits
    assert len(query) <= MAX_QUERY_LENGTH
    # when
    response = gql.post(query)
    # then: the parser refuses it (it would otherwise exhaust Python's recursion limit)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert error_codes(body) == [RequestErrorCode.GRAPHQL_PARSE_FAILED.value]


# --- fan-out and duplicated fields -----------------------------------------------------------


def fan_out(type_name: str, leaf: str, levels: int = 20) -> str:
    fragments = [f"fragment F{n} on {type_name} {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)]
    fragments.append(f"fragment F{levels} on {type_name} {{ {leaf} }}")
    return "\n".join(fragments)


def test_exponential_fragment_fan_out_is_too_complex(gql, user, token):
    # given: 2**20 copies of `id` once expanded, in a few hundred bytes
    query = "{ me { ...F0 } }\n" + fan_out("User", "id")
    assert len(query) < 2_000
    # when
    body = gql(query, token=token)
    # then
    too_complex(body)


def test_exponential_fragment_fan_out_at_the_root_is_too_complex(gql, db):
    # when
    body = gql("{ ...F0 }\n" + fan_out("Query", "__typename"))
    # then
    too_complex(body)


def test_exponential_fan_out_of_sensitive_fields_writes_nothing(gql, db):
    # when
    body = gql("mutation { ...F0 }\n" + fan_out("Mutation", register_field(1)))
    # then
    too_complex(body)
    assert not User.objects.exists()


def test_five_thousand_copies_of_a_field_are_refused(gql, db):
    # given
    query = "{me{" + "id " * 5_000 + "}}"
    # when
    body = gql(query)
    # then
    too_complex(body)


def test_five_thousand_copies_of_a_field_are_refused_even_with_size_limits_raised(gql, db):
    # given: only the document limits stand in the way
    query = "{me{" + "id " * 5_000 + "}}"
    # when
    with override_settings(GATEHOUSE={**LIMITS, "MAX_QUERY_LENGTH": 100_000, "MAX_TOKENS": 100_000}):
        body = gql(query)
    # then
    too_complex(body)


def test_many_copies_of_a_field_within_the_size_limits_are_refused_without_running(gql, user, token):
    # given: 800 copies fit the length and token limits; graphql-core's overlap validation would
    # compare each pair of them (quadratic) for up to a second
    query = "{ me { " + "id " * 800 + "} }"
    assert len(query) <= MAX_QUERY_LENGTH
    # when
    response = gql.post(query, token=token)
    # then: refused by the limits, not by graphql-core's abort ("Validation aborted.")
    assert response.status_code == 200
    too_complex(response.json())


def never_validate(*args, **kwargs):
    raise AssertionError("the standard validation rules ran")


def varying(query: str, n: int) -> str:
    """Return `query` behind a comment of its own: the prepared-document cache never hits."""
    return f"# {n}\n{query}"


def within_token_limit(head: str, unit: str, tail: str, unit_tokens: int, fixed_tokens: int) -> str:
    count = (MAX_TOKENS - 1 - fixed_tokens) // unit_tokens  # the comment of `varying` is a token
    return head + unit * count + tail


QUADRATIC = {
    "duplicate-fields": within_token_limit("{ me { ", "id ", "} }", 1, 5),
    "distinct-unknown-fields": "{ me { " + " ".join(f"f{n}" for n in range(MAX_TOKENS - 6)) + " } }",
    "fragment-spread-many-times": within_token_limit(
        "{ me { ", "...F ", "} } fragment F on User { id username }", 2, 12
    ),
    "inline-fragments": within_token_limit("{ me { ", "... on User { id } ", "} }", 6, 5),
    "nested-duplicates": "{ " + ("me { sessions { " + "id " * 93 + "} } ") * 10 + "}",
    "fragments-of-duplicates": "{ me { ...A ...B ...C } }"
    + "".join(f" fragment {name} on User {{ " + "id " * 315 + "}" for name in "ABC"),
    "duplicates-with-arguments": within_token_limit(
        "{ __schema { types { ", "fields(includeDeprecated: true) { name } ", "} } }", 9, 9
    ),
}


@pytest.mark.parametrize("query", list(QUADRATIC.values()), ids=list(QUADRATIC))
def test_documents_that_make_validation_quadratic_are_refused_before_it_runs(gql, db, monkeypatch, query):
    # given: the worst documents under the size limits (bench/validation_cost.py times them)
    document = varying(query, 1)
    assert len(document) <= MAX_QUERY_LENGTH
    parse(document, max_tokens=MAX_TOKENS)
    monkeypatch.setattr("schema.views.validate", never_validate)
    # when
    body = gql(document)
    # then
    too_complex(body)


HIDDEN_FROM_THE_OPERATIONS = {
    "an-unused-fragment-of-duplicates": within_token_limit("{ me { id } } fragment X on User { ", "id ", "}", 1, 14),
    "two-unused-fragments": "{ me { id } }"
    + "".join(f" fragment {name} on User {{ " + "id " * 480 + "}" for name in "XY"),
    "a-second-fragment-of-the-same-name": "{ me { ...X } } fragment X on User { id } fragment X on User { "
    + "id " * 960
    + "}",
}


@pytest.mark.parametrize("query", list(HIDDEN_FROM_THE_OPERATIONS.values()), ids=list(HIDDEN_FROM_THE_OPERATIONS))
def test_fragments_no_operation_reaches_are_refused_before_the_standard_rules_run(gql, db, monkeypatch, query):
    # given: selections the limits would not see (they walk what operations select), which
    # the standard overlap rule would still compare pairwise
    document = varying(query, 2)
    assert len(document) <= MAX_QUERY_LENGTH
    parse(document, max_tokens=MAX_TOKENS)
    monkeypatch.setattr("schema.views.validate", never_validate)
    # when
    body = gql(document)
    # then: refused by name, with graphql-core's messages, before anything else runs
    assert [error["extensions"]["code"] for error in body["errors"]] == [
        RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value
    ] * len(body["errors"])
    assert "data" not in body


def test_a_varying_comment_does_not_make_a_refused_document_run(gql, user, token, monkeypatch):
    # given: the cache is keyed by the text, so each of these is prepared anew
    monkeypatch.setattr("schema.views.validate", never_validate)
    query = QUADRATIC["duplicate-fields"]
    # when
    bodies = [gql(varying(query, n), token=token) for n in range(3)]
    # then
    for body in bodies:
        too_complex(body)


def copies(field: str, count: int) -> str:
    return " ".join([field] * count)


def largest_copies_within_the_pair_limit() -> int:
    count = 1
    while (count + 1) * count // 2 <= MAX_FIELD_PAIRS and count < MAX_SELECTIONS_PER_SET:
        count += 1
    return count


def test_a_selection_set_at_the_maximum_size_runs(gql, user, token):
    # given: the user's fields over and over, as many as one set may hold
    fields = [USER_FIELDS[n % len(USER_FIELDS)] for n in range(MAX_SELECTIONS_PER_SET)]
    # when
    body = gql("{ me { " + " ".join(fields) + " } }", token=token)
    # then
    assert "errors" not in body
    assert body["data"]["me"]["username"] == "alice"


def test_one_field_too_many_in_a_selection_set_is_too_complex(gql, db):
    # given: distinct unknown fields, which only the validator would refuse
    query = "{ me { " + " ".join(f"f{n}" for n in range(MAX_SELECTIONS_PER_SET + 1)) + " } }"
    # when
    body = gql(query)
    # then
    too_complex(body)


def test_fields_of_the_same_name_are_one_selection_set(gql, db):
    # given: every `me` holds few fields, all of them together one set too many
    per = MAX_SELECTIONS_PER_SET // 4 + 1
    query = "{ " + " ".join("me { " + " ".join(f"f{n}" for n in range(per)) + " }" for _ in range(4)) + " }"
    # when
    body = gql(query)
    # then
    too_complex(body)


def test_copies_of_a_field_up_to_the_pair_limit_run(gql, user, token):
    # given
    count = largest_copies_within_the_pair_limit()
    # when
    body = gql(f"{{ me {{ {copies('id', count)} }} }}", token=token)
    # then
    assert "errors" not in body
    assert body["data"]["me"]["id"]


def test_copies_of_a_field_over_the_pair_limit_are_too_complex(gql, user, token):
    # given: spread over sets so that no set is over its size
    count = largest_copies_within_the_pair_limit()
    sets = MAX_FIELD_PAIRS // (count * (count - 1) // 2) + 1
    query = "{ me { " + " ".join(f"s{n}: sessions {{ {copies('id', count)} }}" for n in range(sets)) + " } }"
    # when
    body = gql(query, token=token)
    # then
    too_complex(body)


SESSION_FIELDS = ("id", "createdAt", "lastUsedAt", "expiresAt", "userAgent", "ipAddress", "current", "__typename")


def test_the_total_number_of_selections_is_limited(gql, user, token):
    # given: a fragment spread into as many aliased sets as allowed, each within every other limit
    per_field = 4
    fragment = "fragment S on Session { " + " ".join(SESSION_FIELDS * per_field) + " }"
    sets = MAX_ALIASES
    selections = 1 + sets * (2 + per_field * len(SESSION_FIELDS))
    pairs = sets * len(SESSION_FIELDS) * per_field * (per_field - 1) // 2
    assert selections > MAX_SELECTIONS
    assert pairs <= MAX_FIELD_PAIRS
    assert per_field * len(SESSION_FIELDS) <= MAX_SELECTIONS_PER_SET
    query = "{ me { " + " ".join(f"s{n}: sessions {{ ...S }}" for n in range(sets)) + " } } " + fragment
    # when
    body = gql(query, token=token)
    # then
    too_complex(body)


@pytest.mark.parametrize(
    ("setting", "value", "query"),
    [
        pytest.param("MAX_SELECTIONS_PER_SET", 2, "{ me { id username email } }", id="per-set"),
        pytest.param("MAX_FIELD_PAIRS", 2, "{ me { id id id } }", id="pairs"),
        pytest.param("MAX_SELECTIONS", 3, "{ me { id username email } }", id="total"),
    ],
)
def test_the_selection_limits_are_settings(gql, user, token, setting, value, query):
    # when: within the defaults, over the setting
    default = gql(query, token=token)
    with override_settings(GATEHOUSE={**LIMITS, setting: value}):
        limited = gql(query, token=token)
    # then
    assert "errors" not in default
    too_complex(limited)


# --- check_document_limits on its own --------------------------------------------------------

SMALL = DocumentLimits(
    max_depth=3,
    max_aliases=2,
    max_directives=2,
    max_operations=2,
    max_root_fields=3,
    sensitive_root_fields=frozenset({"tokenAuth"}),
    max_selections=12,
    max_selections_per_set=5,
    max_field_pairs=2,
)


def check(document: str, limits: DocumentLimits = SMALL) -> None:
    check_document_limits(parse(document), limits)


@pytest.mark.parametrize(
    ("within", "beyond"),
    [
        pytest.param("{ a { b { c { d } } } }", "{ a { b { c { d { e } } } } }", id="depth"),
        pytest.param(
            "{ a { ... on A { b { ... on B { c { d } } } } } }",
            "{ a { ... on A { b { ... on B { c { ... on C { d { e } } } } } } } }",
            id="depth-inline-fragments",
        ),
        pytest.param(
            "{ a { ...B } } fragment B on A { b { ...C } } fragment C on B { c { d } }",
            "{ a { ...B } } fragment B on A { b { ...C } } fragment C on B { c { d { e } } }",
            id="depth-fragments",
        ),
        pytest.param("{ x: a y: b c }", "{ x: a y: b z: c }", id="aliases"),
        pytest.param("{ a { x: b } y: c }", "{ a { x: b } y: c { z: d } }", id="aliases-nested"),
        pytest.param("{ ...F } fragment F on Q { x: a }", "{ ...F ...F ...F } fragment F on Q { x: a }", id="al-fr"),
        pytest.param("{ a @skip(if: false) b @include(if: true) }", "{ a @skip(if: false) b @a @b }", id="directives"),
        pytest.param("query @a { b @b }", "query @a { b @b c @c }", id="directives-operation"),
        pytest.param("{ ...F @a } fragment F on Q { b @b }", "{ ...F @a } fragment F on Q @c { b @b }", id="di-fr"),
        pytest.param("query A { a } query B { b }", "query A { a } query B { b } query C { c }", id="operations"),
        pytest.param("{ a b c }", "{ a b c d }", id="root-fields"),
        pytest.param("{ a ... on Q { b c } }", "{ a ... on Q { b c d } }", id="root-fields-inline"),
        pytest.param("{ a ...F } fragment F on Q { b c }", "{ a ...F ...F } fragment F on Q { b c }", id="root-fr"),
        pytest.param("{ tokenAuth { t } other { tokenAuth } }", "{ tokenAuth { t } x: tokenAuth { t } }", id="sens"),
        pytest.param(
            "{ tokenAuth { t } ...F } fragment F on Q { a }",
            "{ tokenAuth { t } ...F } fragment F on Q { tokenAuth { u } }",
            id="sensitive-fragment",
        ),
        pytest.param(
            "query A { tokenAuth { t } } query B { tokenAuth { t } }",
            "query A { tokenAuth { t } tokenAuth { t } }",
            id="sensitive-per-operation",
        ),
        pytest.param("{ a { b c d e f } }", "{ a { b c d e f g } }", id="per-set"),
        pytest.param("{ a { b c d } a { e f } }", "{ a { b c d } a { e f g } }", id="per-set-merged"),
        pytest.param(
            "{ a { ...F } } fragment F on A { b c d e f }", "{ a { g ...F } } fragment F on A { b c d e f }", id="ps-fr"
        ),
        pytest.param("{ x: a { b c } a { b c } }", "{ x: a { b c } a { b c d e f g } }", id="per-set-aliases-apart"),
        pytest.param("{ a { b b c c } }", "{ a { b b b } }", id="pairs"),
        pytest.param("{ a { b } a { b } }", "{ a { b } a { b } a { b } }", id="pairs-nested"),
        pytest.param(
            "{ a { ...F } } fragment F on A { b c }", "{ a { ...F ...F ...F } } fragment F on A { b }", id="pa-fr"
        ),
        pytest.param("{ x: a { b b } y: a { c c } }", "{ x: a { b b } y: a { c c d d } }", id="pairs-in-all"),
        pytest.param(
            "{ a { b c } d { e f } g { h i } }",
            "{ a { b c } d { e f } g { h i } j { k l } }",
            id="selections",
        ),
        pytest.param(
            "{ a { ...F } } fragment F on A { b c d e f } fragment G on A { g h i j k l m n }",
            "{ a { ...F } d { ...F } } fragment F on A { b c d e f }",
            id="selections-fragments-expanded",
        ),
    ],
)
def test_check_document_limits_at_the_boundary(within, beyond):
    # when / then: the document at the limit passes, one step beyond is refused
    check(within)
    with pytest.raises(LimitExceeded):
        check(beyond)


def test_fragments_do_not_count_as_operations():
    # given
    document = "query A { ...F } query B { ...F } fragment F on Q { a } fragment G on Q { b } fragment H on Q { c }"
    # when / then
    check(document)


def test_unknown_fragments_are_left_to_the_validator():
    # when / then
    check("{ a { ...Missing } ...AlsoMissing }")


@pytest.mark.parametrize(
    "document",
    [
        "{ a { ...A } } fragment A on T { ...B } fragment B on T { ...A }",
        "{ a { ...A } } fragment A on T { b ...A }",
        "{ ...A } fragment A on Q { ...B } fragment B on Q { a ...A }",
    ],
)
def test_fragment_cycles_terminate(document):
    # when / then: no RecursionError, no LimitExceeded (the validator reports cycles)
    check(document)


def test_a_cycle_does_not_hide_depth_beyond_the_limit():
    # given
    document = "{ a { ...A } } fragment A on T { b { c { d { e } } } ...A }"
    # when / then
    with pytest.raises(LimitExceeded):
        check(document)


def test_exponential_fan_out_stops_early():
    # given: 2**30 leaves once expanded; no per-limit setting would stop it
    roomy = DocumentLimits(
        max_depth=100,
        max_aliases=100,
        max_directives=100,
        max_operations=10,
        max_root_fields=100,
        sensitive_root_fields=frozenset(),
        max_selections=5_000,
        max_selections_per_set=10**9,
        max_field_pairs=10**9,
    )
    # when / then
    with pytest.raises(LimitExceeded):
        check("{ a { ...F0 } }\n" + fan_out("T", "b", levels=30), roomy)
    with pytest.raises(LimitExceeded):
        check("{ ...F0 }\n" + fan_out("Q", "b", levels=30), roomy)


def test_the_message_names_the_limit():
    # when
    with pytest.raises(LimitExceeded) as depth:
        check("{ a { b { c { d { e } } } } }")
    with pytest.raises(LimitExceeded) as aliases:
        check("{ x: a y: b z: c }")
    # then
    assert str(depth.value) != str(aliases.value)
    assert "3" in str(depth.value)
    assert "2" in str(aliases.value)
