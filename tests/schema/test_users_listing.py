"""The staff-only `users` connection over HTTP: who may list, search, filters, ordering, pages and limits.

Every case goes through the real view and the real database; expected orders are computed from the
rows themselves, so a test compares what the API returns with what is stored.
"""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from graphql_relay import from_global_id, to_global_id

from accounts.error_codes import AuthErrorCode
from accounts.models import Session, User
from accounts.services import session_open
from accounts.tokens import access_token_verify
from schema.errors import RequestErrorCode
from tests.conftest import error_codes

pytestmark = pytest.mark.django_db

USERS = """
query Users(
  $search: String, $isActive: Boolean, $isStaff: Boolean, $isEmailVerified: Boolean,
  $joinedAfter: DateTime, $joinedBefore: DateTime, $orderBy: UserOrderBy,
  $first: Int, $last: Int, $after: String, $before: String
) {
  users(
    search: $search, isActive: $isActive, isStaff: $isStaff, isEmailVerified: $isEmailVerified,
    joinedAfter: $joinedAfter, joinedBefore: $joinedBefore, orderBy: $orderBy,
    first: $first, last: $last, after: $after, before: $before
  ) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id username email } }
  }
}
"""
ORDER_BY_VALUES = [
    "DATE_JOINED_ASC",
    "DATE_JOINED_DESC",
    "USERNAME_ASC",
    "USERNAME_DESC",
    "EMAIL_ASC",
    "EMAIL_DESC",
    "LAST_LOGIN_ASC",
    "LAST_LOGIN_DESC",
]
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def staff(make_user):
    # Joined long ago, so date filters around T0 do not catch the staff member.
    staff = make_user(username="staff", email="staff@example.com", is_staff=True)
    User.objects.filter(pk=staff.pk).update(date_joined=datetime(2000, 1, 1, tzinfo=UTC))
    staff.refresh_from_db()
    return staff


@pytest.fixture
def staff_token(staff):
    return session_open(user=staff).token


def list_users(gql, token, **variables) -> dict:
    """POST the `users` query with only the given variables (omitted ones take their defaults)."""
    return gql(USERS, variables, token=token)


def page(body) -> dict:
    assert "errors" not in body, body
    return body["data"]["users"]


def usernames(body) -> list[str]:
    return [edge["node"]["username"] for edge in page(body)["edges"]]


def pks(body) -> list[int]:
    return [int(from_global_id(edge["node"]["id"])[1]) for edge in page(body)["edges"]]


def assert_refused(body, code) -> None:
    assert error_codes(body) == [code], body
    assert body["data"] == {"users": None}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- who may list ---------------------------------------------------------------------------------------------


def test_anonymous_request_is_unauthenticated(gql, user):
    body = list_users(gql, None)

    assert_refused(body, AuthErrorCode.UNAUTHENTICATED.value)


def test_non_staff_user_is_forbidden_and_sees_nothing(gql, user, token, make_user):
    make_user(username="bob", email="bob@example.com")

    body = list_users(gql, token)

    assert_refused(body, AuthErrorCode.FORBIDDEN.value)
    # Nothing about other accounts leaks through the error either.
    assert "bob" not in str(body)


def test_staff_sees_every_account_including_inactive_ones(gql, staff_token, user, make_user):
    # given: an active, an inactive and an unverified account besides the staff member
    make_user(username="gone", email="gone@example.com", is_active=False)
    make_user(username="fresh", email="fresh@example.com")

    body = list_users(gql, staff_token)

    assert sorted(usernames(body)) == ["alice", "fresh", "gone", "staff"]
    assert page(body)["totalCount"] == 4


def test_a_revoked_staff_token_is_refused_as_revoked(gql, staff, staff_token):
    # given: the staff member's session was ended (logout everywhere, an admin, a replay)
    sid = access_token_verify(staff_token).session_id
    Session.objects.filter(pk=sid).update(revoked_at=timezone.now(), revoked_reason="logout")

    body = list_users(gql, staff_token)

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED.value)


def test_staff_status_is_read_on_every_request(gql, staff, staff_token):
    # A token issued while the account was staff must not keep the listing open after demotion.
    assert page(list_users(gql, staff_token))["totalCount"] == 1
    User.objects.filter(pk=staff.pk).update(is_staff=False)

    body = list_users(gql, staff_token)

    assert_refused(body, AuthErrorCode.FORBIDDEN.value)


def test_a_deactivated_staff_member_is_refused(gql, staff, staff_token):
    User.objects.filter(pk=staff.pk).update(is_active=False)

    body = list_users(gql, staff_token)

    assert_refused(body, AuthErrorCode.TOKEN_REVOKED.value)


# --- search ---------------------------------------------------------------------------------------------------


@pytest.fixture
def searchable(make_user):
    make_user(username="alice", email="alice@wonderland.org")
    make_user(username="Bob", email="robert@builders.net")
    make_user(username="carol", email="c.smith@example.com")


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("ALI", ["alice"]),  # username, other case
        ("bOb", ["Bob"]),  # username stored with a capital
        ("WONDERLAND", ["alice"]),  # email, other case
        ("robert@", ["Bob"]),  # email local part
        ("smith@EXAMPLE", ["carol"]),  # substring across the @
        ("er", ["alice", "Bob"]),  # substring of several: wondERland, robERt
        ("builders.net", ["Bob"]),
        ("nobody", []),
    ],
)
def test_search_matches_username_or_email_ignoring_case(gql, staff_token, searchable, search, expected):
    body = list_users(gql, staff_token, search=search, orderBy="USERNAME_DESC")

    assert sorted(usernames(body)) == sorted(expected)
    assert page(body)["totalCount"] == len(expected)


def test_empty_search_lists_everyone(gql, staff_token, searchable):
    body = list_users(gql, staff_token, search="")

    assert sorted(usernames(body)) == ["Bob", "alice", "carol", "staff"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("%", ["percent"]),  # not "match anything"
        ("r%c", ["percent"]),
        ("a_b", ["a_b"]),  # `_` is not "any one character": axb must not match
        ("_", ["a_b"]),
        ("\\", []),  # an escape character is just a character
    ],
)
def test_search_wildcards_are_literal(gql, staff_token, make_user, search, expected):
    # given: accounts that a LIKE wildcard would wrongly match
    # (`%` is refused in new addresses, a relay may route on it; an older row may hold one)
    percent = make_user(username="percent", email="percent@example.com")
    User.objects.filter(pk=percent.pk).update(email="per%cent@example.com")
    make_user(username="perxcent", email="perxcent@example.com")
    make_user(username="a_b", email="ab@example.com")
    make_user(username="axb", email="axb@example.com")

    body = list_users(gql, staff_token, search=search)

    assert sorted(usernames(body)) == expected


def test_search_of_the_maximum_length_is_accepted(gql, staff_token):
    body = list_users(gql, staff_token, search="a" * 254)

    assert page(body) == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
        "edges": [],
    }


@pytest.mark.parametrize(
    "search",
    [
        "a" * 255,
        "x" * 5_000,
        "ali\x00ce",  # NUL: Postgres refuses it in a query
        "\x00",
        "ali\nce",
        "ali\x1bce",
        "ali\u200bce",  # zero-width space (a format character)
    ],
    ids=["255", "huge", "nul-inside", "nul", "newline", "escape", "zero-width"],
)
def test_oversized_or_control_character_search_is_bad_user_input(gql, staff_token, user, search):
    response = gql.post(USERS, {"search": search}, token=staff_token)

    assert response.status_code == 200
    assert_refused(response.json(), RequestErrorCode.BAD_USER_INPUT.value)


# --- filters --------------------------------------------------------------------------------------------------


@pytest.fixture
def population(make_user, staff):
    """Accounts in every combination of the flags, joined one day apart from T0 on."""
    rows = [
        ("active_verified", {"is_active": True, "is_email_verified": True}),
        ("active_unverified", {"is_active": True, "is_email_verified": False}),
        ("inactive_verified", {"is_active": False, "is_email_verified": True}),
        ("inactive_unverified", {"is_active": False, "is_email_verified": False}),
        ("staff_verified", {"is_active": True, "is_staff": True, "is_email_verified": True}),
        ("staff_inactive", {"is_active": False, "is_staff": True}),
    ]
    for day, (name, flags) in enumerate(rows):
        created = make_user(username=name, email=f"{name}@example.com", **flags)
        User.objects.filter(pk=created.pk).update(date_joined=T0 + timedelta(days=day))
    return [name for name, _ in rows]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"isActive": True}, {"active_verified", "active_unverified", "staff_verified", "staff"}),
        ({"isActive": False}, {"inactive_verified", "inactive_unverified", "staff_inactive"}),
        ({"isStaff": True}, {"staff_verified", "staff_inactive", "staff"}),
        ({"isStaff": False}, {"active_verified", "active_unverified", "inactive_verified", "inactive_unverified"}),
        ({"isEmailVerified": True}, {"active_verified", "inactive_verified", "staff_verified"}),
        (
            {"isEmailVerified": False},
            {"active_unverified", "inactive_unverified", "staff_inactive", "staff"},
        ),
        ({"isActive": True, "isStaff": False}, {"active_verified", "active_unverified"}),
        ({"isActive": False, "isEmailVerified": True}, {"inactive_verified"}),
        ({"isActive": True, "isStaff": True, "isEmailVerified": True}, {"staff_verified"}),
        ({"isStaff": False, "search": "INACTIVE"}, {"inactive_verified", "inactive_unverified"}),
        ({"isActive": False, "isStaff": True, "isEmailVerified": True}, set()),
    ],
)
def test_flag_filters_and_their_combinations(gql, staff_token, population, filters, expected):
    body = list_users(gql, staff_token, **filters)

    assert set(usernames(body)) == expected
    assert page(body)["totalCount"] == len(expected)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # joinedAfter is inclusive: the account that joined exactly at T0 + 2 days is in
        (
            {"joinedAfter": iso(T0 + timedelta(days=2))},
            {"inactive_verified", "inactive_unverified", "staff_verified", "staff_inactive"},
        ),
        # joinedBefore is exclusive: the account that joined exactly at T0 + 2 days is out
        ({"joinedBefore": iso(T0 + timedelta(days=2))}, {"staff", "active_verified", "active_unverified"}),
        (
            {"joinedAfter": iso(T0 + timedelta(days=1)), "joinedBefore": iso(T0 + timedelta(days=3))},
            {"active_unverified", "inactive_verified"},
        ),
        # a one-microsecond window around a join time holds exactly that account
        (
            {"joinedAfter": iso(T0 + timedelta(days=1)), "joinedBefore": iso(T0 + timedelta(days=1, microseconds=1))},
            {"active_unverified"},
        ),
        ({"joinedAfter": iso(T0 + timedelta(days=3)), "joinedBefore": iso(T0 + timedelta(days=3))}, set()),
        (
            {"joinedAfter": iso(T0 + timedelta(days=1)), "isActive": False},
            {"inactive_verified", "inactive_unverified", "staff_inactive"},
        ),
        # another time zone names the same instant
        (
            {"joinedAfter": (T0 + timedelta(days=4)).astimezone(timezone.get_fixed_timezone(-300)).isoformat()},
            {"staff_verified", "staff_inactive"},
        ),
    ],
    ids=["after-inclusive", "before-exclusive", "window", "one-microsecond", "empty-window", "with-flag", "tz"],
)
def test_join_date_filters(gql, staff_token, population, filters, expected):
    body = list_users(gql, staff_token, **filters)

    assert set(usernames(body)) == expected
    assert page(body)["totalCount"] == len(expected)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45T00:00:00+00:00", ""])
def test_a_malformed_join_date_is_refused_without_a_server_error(gql, staff_token, value):
    response = gql.post(USERS, {"joinedAfter": value}, token=staff_token)

    assert response.status_code < 500
    codes = error_codes(response.json())
    assert codes
    assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in codes


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("joinedAfter", "9999-12-31T23:59:59-12:00"),  # past the end of the calendar in UTC
        ("joinedBefore", "0001-01-01T00:00:00+14:00"),  # before its start
    ],
)
def test_a_join_date_outside_the_calendar_is_bad_user_input(gql, staff_token, argument, value):
    # Valid ISO times that no database can compare once converted to UTC (SQLite overflowed).
    body = gql(USERS, {argument: value}, token=staff_token)

    assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert body["data"] == {"users": None}


def test_a_join_date_without_a_time_zone_is_taken_as_utc(gql, staff_token, make_user):
    from datetime import UTC, datetime

    early = make_user(username="early", date_joined=datetime(2020, 1, 1, 12, 0, tzinfo=UTC))
    make_user(username="late", date_joined=datetime(2020, 1, 1, 12, 0, 1, tzinfo=UTC))

    body = gql(USERS, {"joinedBefore": "2020-01-01T12:00:01"}, token=staff_token)

    names = [edge["node"]["username"] for edge in body["data"]["users"]["edges"]]
    assert early.username in names
    assert "late" not in names


def test_a_negative_cursor_is_bad_user_input(gql, staff_token):
    from graphql_relay import offset_to_cursor

    for argument in ("after", "before"):
        body = gql(USERS, {argument: offset_to_cursor(-5)}, token=staff_token)
        assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]
        assert body["data"] == {"users": None}


def test_an_explicit_null_order_is_the_default_order(gql, staff_token, make_user):
    from datetime import UTC, datetime, timedelta

    base = datetime(2024, 1, 1, tzinfo=UTC)
    for day in range(3):
        make_user(username=f"day{day}", date_joined=base + timedelta(days=day))

    default = gql(USERS, {"search": "day"}, token=staff_token)
    explicit_null = gql(USERS, {"search": "day", "orderBy": None}, token=staff_token)

    names = [edge["node"]["username"] for edge in explicit_null["data"]["users"]["edges"]]
    assert names == ["day2", "day1", "day0"]  # newest first
    assert explicit_null == default


# --- ordering -------------------------------------------------------------------------------------------------


@pytest.fixture
def ordered_population(make_user, staff):
    """Accounts with tied join times and tied or missing last logins, so ties must be broken by id."""
    specs = [
        # username, email, date_joined offset (days), last_login offset (hours) or None
        ("delta", "z-delta@example.com", 0, 5),
        ("alpha", "m-alpha@example.com", 1, None),
        ("charlie", "a-charlie@example.com", 1, 5),
        ("echo", "k-echo@example.com", 1, 2),
        ("bravo", "b-bravo@example.com", 2, None),
        ("foxtrot", "f-foxtrot@example.com", 0, 9),
    ]
    for username, email, joined, login in specs:
        created = make_user(username=username, email=email)
        User.objects.filter(pk=created.pk).update(
            date_joined=T0 + timedelta(days=joined),
            last_login=None if login is None else T0 + timedelta(hours=login),
        )


def expected_order(order_by: str) -> list[int]:
    """The order the contract promises, computed in Python from the stored rows (ties broken by id)."""
    field, direction = order_by.rsplit("_", 1)
    field = field.lower()
    rows = list(User.objects.values("pk", field))
    if field == "last_login":
        # Most recent sign-in first; accounts that never signed in come last; ASC is the exact reverse.
        signed_in = sorted((row for row in rows if row[field] is not None), key=lambda r: (r[field], r["pk"]))
        never = sorted((row for row in rows if row[field] is None), key=lambda r: r["pk"])
        ascending = never + signed_in
    else:
        ascending = sorted(rows, key=lambda r: (r[field], r["pk"]))
    order = [row["pk"] for row in ascending]
    return order if direction == "ASC" else order[::-1]


@pytest.mark.parametrize("order_by", ORDER_BY_VALUES)
def test_every_order_is_right_and_breaks_ties_by_id(gql, staff_token, ordered_population, order_by):
    body = list_users(gql, staff_token, orderBy=order_by)

    assert pks(body) == expected_order(order_by)


def test_default_order_is_newest_first(gql, staff_token, ordered_population):
    body = list_users(gql, staff_token)

    assert pks(body) == expected_order("DATE_JOINED_DESC")


def test_last_login_desc_puts_accounts_that_never_signed_in_last(gql, staff_token, ordered_population):
    # "Most recent sign-in first" must not open with accounts that never signed in (Postgres sorts
    # NULL first in a descending order unless told otherwise; SQLite sorts it last).
    body = list_users(gql, staff_token, orderBy="LAST_LOGIN_DESC")

    names = usernames(body)
    assert names[0] == "foxtrot"
    assert set(names[-3:]) == {"alpha", "bravo", "staff"}


def test_username_order_ignores_case(gql, staff_token, make_user):
    # Usernames are unique ignoring case; a staff directory sorted A-Z should not put every
    # capitalised name before every lowercase one.
    for name in ("bob", "Carol", "alice", "Dave"):
        make_user(username=name, email=f"{name.lower()}@example.com")

    body = list_users(gql, staff_token, orderBy="USERNAME_ASC", search="@example.com")

    assert usernames(body) == ["alice", "bob", "Carol", "Dave", "staff"]


def test_explicit_null_order_is_not_a_server_error(gql, staff_token, user):
    # `orderBy: null` is valid GraphQL for a nullable argument; it must not reach the selector as None.
    response = gql.post(USERS, {"orderBy": None}, token=staff_token)

    assert response.status_code == 200
    body = response.json()
    assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in error_codes(body), body
    if "errors" not in body:
        assert sorted(usernames(body)) == ["alice", "staff"]
    else:
        assert error_codes(body) == [RequestErrorCode.BAD_USER_INPUT.value]


def test_an_unknown_order_is_refused_before_execution(gql, staff_token):
    as_variable = list_users(gql, staff_token, orderBy="PASSWORD_ASC")
    as_literal = gql("{ users(orderBy: PASSWORD_ASC) { totalCount } }", token=staff_token)

    assert error_codes(as_variable) == [RequestErrorCode.BAD_USER_INPUT.value]
    assert error_codes(as_literal) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]


# --- pagination -----------------------------------------------------------------------------------------------


@pytest.fixture
def twenty_five(make_user, staff):
    """25 accounts that all joined at the same instant: only the id tie-break keeps pages stable."""
    created = [make_user(username=f"member{n:02d}", email=f"member{n:02d}@example.com") for n in range(25)]
    User.objects.filter(pk__in=[u.pk for u in created]).update(date_joined=T0)
    return created


@pytest.mark.parametrize("order_by", ["DATE_JOINED_DESC", "DATE_JOINED_ASC", "USERNAME_ASC", "LAST_LOGIN_DESC"])
def test_forward_pages_walk_everything_once(gql, staff_token, twenty_five, order_by):
    everyone = pks(list_users(gql, staff_token, orderBy=order_by))
    assert len(everyone) == 26

    seen, after, pages = [], None, 0
    while True:
        variables = {"orderBy": order_by, "first": 7, **({"after": after} if after else {})}
        current = page(list_users(gql, staff_token, **variables))
        pages += 1
        assert current["totalCount"] == 26
        seen += [int(from_global_id(edge["node"]["id"])[1]) for edge in current["edges"]]
        assert current["pageInfo"]["endCursor"] == current["edges"][-1]["cursor"]
        if not current["pageInfo"]["hasNextPage"]:
            break
        after = current["pageInfo"]["endCursor"]
        assert pages < 10

    assert pages == 4  # 7 + 7 + 7 + 5
    assert seen == everyone  # no gap, no repeat, same order as one big page


@pytest.mark.parametrize("order_by", ["DATE_JOINED_DESC", "EMAIL_DESC"])
def test_backward_pages_walk_everything_once(gql, staff_token, twenty_five, order_by):
    everyone = pks(list_users(gql, staff_token, orderBy=order_by))

    seen, before, pages = [], None, 0
    while True:
        variables = {"orderBy": order_by, "last": 6, **({"before": before} if before else {})}
        current = page(list_users(gql, staff_token, **variables))
        pages += 1
        assert current["totalCount"] == 26
        seen = [int(from_global_id(edge["node"]["id"])[1]) for edge in current["edges"]] + seen
        assert current["pageInfo"]["startCursor"] == current["edges"][0]["cursor"]
        if not current["pageInfo"]["hasPreviousPage"]:
            break
        before = current["pageInfo"]["startCursor"]
        assert pages < 10

    assert pages == 5  # 6 + 6 + 6 + 6 + 2
    assert seen == everyone


def test_total_count_counts_the_matches_not_the_page(gql, staff_token, twenty_five):
    User.objects.filter(pk__in=[u.pk for u in twenty_five[:4]]).update(is_active=False)

    first_page = page(list_users(gql, staff_token, first=2, isActive=True))
    second_page = page(list_users(gql, staff_token, first=2, isActive=True, after=first_page["pageInfo"]["endCursor"]))

    assert len(first_page["edges"]) == len(second_page["edges"]) == 2
    assert first_page["totalCount"] == second_page["totalCount"] == 22  # 21 members + staff


def test_without_first_or_last_a_page_holds_100(gql, staff_token, staff):
    # given: 106 accounts
    User.objects.bulk_create(
        [User(username=f"bulk{n:03d}", email=f"bulk{n:03d}@example.com", password="!") for n in range(105)]
    )

    first_page = page(list_users(gql, staff_token))

    assert len(first_page["edges"]) == 100
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert first_page["totalCount"] == 106
    # and the rest follows on the next page
    rest = page(list_users(gql, staff_token, after=first_page["pageInfo"]["endCursor"]))
    assert len(rest["edges"]) == 6
    assert rest["pageInfo"]["hasNextPage"] is False
    listed = {edge["node"]["id"] for edge in first_page["edges"] + rest["edges"]}
    assert listed == {to_global_id("User", pk) for pk in User.objects.values_list("pk", flat=True)}


def test_first_100_is_accepted(gql, staff_token, staff):
    User.objects.bulk_create(
        [User(username=f"bulk{n:03d}", email=f"bulk{n:03d}@example.com", password="!") for n in range(101)]
    )

    body = list_users(gql, staff_token, first=100)

    assert len(page(body)["edges"]) == 100
    assert page(body)["pageInfo"]["hasNextPage"] is True


def test_last_100_is_accepted(gql, staff_token, twenty_five):
    body = list_users(gql, staff_token, last=100)

    assert len(page(body)["edges"]) == 26


def test_first_0_is_an_empty_page_with_the_count(gql, staff_token, twenty_five):
    body = list_users(gql, staff_token, first=0)

    assert page(body)["edges"] == []
    assert page(body)["totalCount"] == 26


@pytest.mark.parametrize(
    "variables",
    [{"first": 101}, {"last": 101}, {"first": -1}, {"last": -1}, {"first": 2**31 - 1}, {"first": 10, "last": 101}],
    ids=["first-101", "last-101", "first-negative", "last-negative", "first-huge", "last-101-with-first"],
)
def test_page_size_outside_0_to_100_is_bad_user_input(gql, staff_token, twenty_five, variables):
    response = gql.post(USERS, variables, token=staff_token)

    assert response.status_code == 200
    assert_refused(response.json(), RequestErrorCode.BAD_USER_INPUT.value)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        "!!!not base64!!!",
        "é",
        b64("arrayconnection:abc"),
        b64("arrayconnection:-5"),
        b64("arrayconnection:-1"),
        b64("arrayconnection:99999999"),
        b64("arrayconnection:" + "9" * 5000),
        b64("otherprefix:3"),
        "x" * 5000,
    ],
    ids=[
        "garbage",
        "empty",
        "not-base64",
        "non-ascii",
        "not-a-number",
        "negative",
        "minus-one",
        "past-the-end",
        "huge-number",
        "other-prefix",
        "long",
    ],
)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_garbage_cursors_are_never_a_server_error(gql, staff_token, twenty_five, cursor, direction):
    response = gql.post(USERS, {direction: cursor, ("first" if direction == "after" else "last"): 5}, token=staff_token)

    assert response.status_code == 200, response.content[:300]
    body = response.json()
    codes = error_codes(body)
    assert RequestErrorCode.INTERNAL_SERVER_ERROR.value not in codes, body
    if codes:
        assert_refused(body, RequestErrorCode.BAD_USER_INPUT.value)
    else:
        # Taken as "no cursor" or "past the end": a valid page of real accounts, at most 5.
        listed = page(body)["edges"]
        assert len(listed) <= 5
        assert page(body)["totalCount"] == 26


# --- cost and exposure ----------------------------------------------------------------------------------------

FULL_PAGE = """
{
  users(first: 100) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id username email dateJoined lastLogin isEmailVerified } }
  }
}
"""


def test_the_listing_costs_the_same_few_queries_for_any_number_of_users(gql, staff_token, make_user):
    for _ in range(3):
        make_user()
    with CaptureQueriesContext(connection) as few:
        small = gql(FULL_PAGE, token=staff_token)
    for _ in range(40):
        make_user()
    with CaptureQueriesContext(connection) as many:
        large = gql(FULL_PAGE, token=staff_token)

    assert len(page(small)["edges"]) == 4
    assert len(page(large)["edges"]) == 44
    # the token's session and user, the count, the page
    assert len(many.captured_queries) == len(few.captured_queries) <= 3, [q["sql"] for q in many.captured_queries]


def test_user_type_exposes_only_the_allow_listed_fields(gql, staff_token):
    body = gql('{ __type(name: "User") { fields { name } } }', token=staff_token)

    names = {field["name"] for field in body["data"]["__type"]["fields"]}
    assert names == {"id", "username", "email", "dateJoined", "lastLogin", "isEmailVerified", "sessions"}


@pytest.mark.parametrize(
    "field",
    ["password", "isStaff", "isSuperuser", "isActive", "userPermissions", "groups", "authEvents", "accountTokens"],
)
def test_private_columns_cannot_be_queried_through_the_listing(gql, staff_token, user, field):
    body = gql(f"{{ users {{ edges {{ node {{ id {field} }} }} }} }}", token=staff_token)

    assert error_codes(body) == [RequestErrorCode.GRAPHQL_VALIDATION_FAILED.value]
    assert "data" not in body or body["data"] is None
    assert "md5$" not in str(body)


def test_staff_does_not_see_other_peoples_sessions_through_the_listing(gql, staff, staff_token, user):
    session_open(user=user)

    body = gql("{ users { edges { node { username sessions { id } } } } }", token=staff_token)

    by_name = {edge["node"]["username"]: edge["node"]["sessions"] for edge in page(body)["edges"]}
    assert by_name["alice"] is None
    assert len(by_name["staff"]) == 1  # the staff member's own, current session


# --- node(id:) keeps its rule ---------------------------------------------------------------------------------

NODE = "query Node($id: ID!) { node(id: $id) { __typename ... on User { username } } }"


def test_node_lets_a_user_see_only_themselves(gql, user, token, make_user):
    bob = make_user(username="bob", email="bob@example.com")

    own = gql(NODE, {"id": to_global_id("User", user.pk)}, token=token)
    other = gql(NODE, {"id": to_global_id("User", bob.pk)}, token=token)

    assert own == {"data": {"node": {"__typename": "User", "username": "alice"}}}
    assert other == {"data": {"node": None}}


def test_node_lets_staff_see_anyone_including_inactive_accounts(gql, staff_token, user, make_user):
    gone = make_user(username="gone", email="gone@example.com", is_active=False)

    alice = gql(NODE, {"id": to_global_id("User", user.pk)}, token=staff_token)
    inactive = gql(NODE, {"id": to_global_id("User", gone.pk)}, token=staff_token)

    assert alice == {"data": {"node": {"__typename": "User", "username": "alice"}}}
    assert inactive == {"data": {"node": {"__typename": "User", "username": "gone"}}}


def test_node_is_null_for_anonymous_requests(gql, user):
    body = gql(NODE, {"id": to_global_id("User", user.pk)})

    assert body == {"data": {"node": None}}
