"""Every failed login costs one password hash, whatever the cause: equal work, equal timing.

Wall-clock timing would flake on a shared machine, so the work is counted instead: a
real hasher that counts the hashes it computes.
"""

import pytest
from django.test import override_settings

from accounts.error_codes import AuthErrorCode
from accounts.models import User
from tests.conftest import PASSWORD, error_codes
from tests.hashers import CountingMD5PasswordHasher

LOGIN = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"


@pytest.fixture
def counting_hasher():
    with override_settings(PASSWORD_HASHERS=["tests.hashers.CountingMD5PasswordHasher"]):
        yield CountingMD5PasswordHasher


def attempt(gql, hasher, email, password):
    """Return (error codes, hashes computed) of one tokenAuth."""
    before = hasher.computed
    body = gql(LOGIN, {"e": email, "p": password})
    return error_codes(body), hasher.computed - before


def test_every_kind_of_failed_login_computes_exactly_one_hash(gql, make_user, counting_hasher):
    # given
    make_user(email="wrong@example.com")
    make_user(email="inactive@example.com", is_active=False)
    no_password = make_user(email="nopass@example.com")
    no_password.set_unusable_password()
    no_password.save()
    # when
    outcomes = {
        "unknown": attempt(gql, counting_hasher, "nobody@example.com", PASSWORD),
        "wrong password": attempt(gql, counting_hasher, "wrong@example.com", "not-the-password"),
        "inactive": attempt(gql, counting_hasher, "inactive@example.com", PASSWORD),
        "unusable password": attempt(gql, counting_hasher, "nopass@example.com", PASSWORD),
        "malformed email": attempt(gql, counting_hasher, "not an email", PASSWORD),
    }
    # then
    for cause, (codes, hashes) in outcomes.items():
        assert codes == [AuthErrorCode.INVALID_CREDENTIALS.value], cause
        assert hashes == 1, cause


def test_a_successful_login_computes_one_hash_too(gql, make_user, counting_hasher):
    make_user(email="ok@example.com")
    codes, hashes = attempt(gql, counting_hasher, "ok@example.com", PASSWORD)
    assert codes == []
    assert hashes == 1
    assert User.objects.get(email="ok@example.com").last_login is not None


def test_an_oversized_password_is_refused_without_hashing(gql, make_user, counting_hasher, settings):
    # given: an account, and a password one character over the cap
    make_user(email="long@example.com")
    oversized = "x" * (settings.PASSWORD_MAX_LENGTH + 1)
    # when
    codes, hashes = attempt(gql, counting_hasher, "long@example.com", oversized)
    # then: the same answer as any failure, but no hash of a huge input was computed
    assert codes == [AuthErrorCode.INVALID_CREDENTIALS.value]
    assert hashes == 0


def test_a_password_at_the_cap_is_still_checked(gql, make_user, counting_hasher, settings):
    at_cap = "x" * settings.PASSWORD_MAX_LENGTH
    make_user(email="cap@example.com", password=at_cap)
    codes, hashes = attempt(gql, counting_hasher, "cap@example.com", at_cap)
    assert codes == []
    assert hashes == 1


def test_an_oversized_password_costs_no_hash_and_reads_known_and_unknown_accounts_alike(gql, make_user, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_user(email="long@example.com")
    shapes = []
    for email in ("long@example.com", "nobody@example.com"):
        with CaptureQueriesContext(connection) as queries:
            body = gql(LOGIN, {"e": email, "p": "x" * (settings.PASSWORD_MAX_LENGTH + 1)})
        assert error_codes(body) == [AuthErrorCode.INVALID_CREDENTIALS.value]
        # The account is looked up once (its budget is the same as for any attempt), never
        # locked, and the only write is the audit-trail entry of the failure.
        reads = [q["sql"] for q in queries.captured_queries if "accounts_user" in q["sql"]]
        assert len(reads) == 1
        assert "FOR" not in reads[0].split("WHERE")[-1]
        writes = [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].split()[0] not in {"SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK"}
        ]
        assert len(writes) == 1
        assert writes[0].startswith('INSERT INTO "accounts_authevent"')
        shapes.append([q["sql"].split()[0] for q in queries.captured_queries])
    assert shapes[0] == shapes[1]
