"""Writes that travel together (accounts.batching): one round trip on Postgres, all or nothing."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.batching import row_insert, rows_update, writes_together
from accounts.models import AuthEvent, AuthEventKind, RefreshToken, Session, User
from tests.conftest import PASSWORD

POSTGRES = connection.vendor == "postgresql"
LOGIN = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token refreshToken } }"


def new_session(user, **fields):
    now = timezone.now()
    return Session(user=user, created_at=now, last_used_at=now, expires_at=now + timedelta(days=1), **fields)


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))]


@pytest.mark.django_db(transaction=True)
def test_the_block_sends_its_rows_at_its_end_and_in_one_statement_on_postgres(user):
    session = new_session(user)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with writes_together():
            row_insert(session)
            row_insert(RefreshToken(session=session, token_hash="a" * 64, created_at=timezone.now()))
            rows_update(User.objects.filter(pk=user.pk), is_email_verified=True)
            # Nothing is sent before the block ends.
            assert queries.captured_queries == []
        sent = len(queries.captured_queries)
    assert sent == (1 if POSTGRES else 3)
    assert Session.objects.filter(pk=session.pk, user=user).exists()
    assert RefreshToken.objects.filter(session=session, token_hash="a" * 64).exists()
    assert User.objects.get(pk=user.pk).is_email_verified is True


@pytest.mark.django_db(transaction=True)
def test_a_failing_row_leaves_none_of_the_blocks_rows(user):
    existing = row_insert(new_session(user))
    row_insert(RefreshToken(session=existing, token_hash="b" * 64, created_at=timezone.now()))
    session = new_session(user)

    def flow():
        with transaction.atomic(), writes_together():
            row_insert(session)
            rows_update(User.objects.filter(pk=user.pk), is_email_verified=True)
            # The digest is unique: this row fails, at the block's end.
            row_insert(RefreshToken(session=session, token_hash="b" * 64, created_at=timezone.now()))

    with pytest.raises(IntegrityError):
        flow()
    assert not Session.objects.filter(pk=session.pk).exists()
    assert User.objects.get(pk=user.pk).is_email_verified is False
    assert RefreshToken.objects.filter(token_hash="b" * 64).count() == 1


@pytest.mark.django_db
def test_an_error_in_the_block_sends_nothing(user):
    session = new_session(user)

    def flow():
        with writes_together():
            row_insert(session)
            raise RuntimeError("the flow failed")

    with CaptureQueriesContext(connection) as queries, pytest.raises(RuntimeError):
        flow()
    assert writes(queries.captured_queries) == []
    assert not Session.objects.filter(pk=session.pk).exists()
    # The queue is gone with the block: a later write goes out at once.
    row_insert(AuthEvent(kind=AuthEventKind.LOGOUT, user_id=user.pk, user_ref=user.pk))
    assert AuthEvent.objects.filter(kind=AuthEventKind.LOGOUT, user_id=user.pk).count() == 1


@pytest.mark.django_db
def test_outside_a_block_rows_are_written_at_once_and_get_their_key(user):
    event = row_insert(AuthEvent(kind=AuthEventKind.LOGOUT, user_id=user.pk, user_ref=user.pk))
    assert event.pk is not None
    rows_update(User.objects.filter(pk=user.pk), is_email_verified=True)
    assert AuthEvent.objects.get(pk=event.pk).user_id == user.pk
    assert User.objects.get(pk=user.pk).is_email_verified is True


@pytest.mark.django_db(transaction=True)
def test_a_nested_block_joins_the_outer_one(user):
    first, second = new_session(user), new_session(user)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries, writes_together():
        row_insert(first)
        with writes_together():
            row_insert(second)
        assert queries.captured_queries == []
    assert Session.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


@pytest.mark.django_db
def test_fields_are_converted_as_save_converts_them(user):
    # An aware datetime, a UUID key, an IP address and a blank text: read back equal.
    session = new_session(user, ip_address="2001:db8::1", user_agent="", device_id="d" * 22)
    with transaction.atomic(), writes_together():
        row_insert(session)
    stored = Session.objects.get(pk=session.pk)
    assert (stored.created_at, stored.expires_at) == (session.created_at, session.expires_at)
    assert (stored.ip_address, stored.user_agent, stored.device_id) == ("2001:db8::1", "", "d" * 22)


@pytest.mark.django_db(transaction=True)
def test_a_sign_in_writes_its_four_rows_in_one_statement_on_postgres(gql, make_user):
    user = make_user(email="batch@example.com")
    with CaptureQueriesContext(connection) as queries:
        body = gql(LOGIN, {"e": "batch@example.com", "p": PASSWORD})
    assert body["data"]["tokenAuth"]["token"]
    sent = writes(queries.captured_queries)
    tables = ("accounts_session", "accounts_refreshtoken", "accounts_authevent", "accounts_user")
    if POSTGRES:
        assert len(sent) == 1
        assert all(table in sent[0] for table in tables)
    else:
        assert len(sent) == 4
    # And every row is there.
    session = Session.objects.get(user=user)
    assert RefreshToken.objects.filter(session=session).count() == 1
    assert (
        AuthEvent.objects.filter(kind=AuthEventKind.LOGIN_SUCCEEDED, user_id=user.pk, session_id=session.pk).count()
        == 1
    )
    assert User.objects.get(pk=user.pk).last_login is not None
