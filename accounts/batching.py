"""Writes that travel together: a flow's INSERTs and UPDATEs sent in one database round trip.

A sign-in writes four rows (the account's `last_login`, the session, its first refresh
token, the audit entry) and reads none of them back. Sent one by one, each pays a round
trip and the ORM's save machinery; on the benchmark machine that was about 1.5 ms of a
sign-in's overhead. Inside `writes_together()`, `row_insert` and `rows_update` queue the
statements Django's own compilers write for them (so every field is converted exactly as
`save()` and `update()` convert it), and the block's end sends them: on Postgres as one
multi-statement query, elsewhere one by one (SQLite's driver runs one statement per call,
with no network to cross).

Outside the block both write at once, as `objects.create()` and `queryset.update()` do.
Queued rows are not saved yet: an AutoField primary key stays None, database errors
(a constraint) surface at the block's end, and nothing in the block may read them back.
Use it inside a transaction, so that a failure leaves none of them. No model signals are
sent for queued rows; queue only models with no `pre_save`/`post_save` receivers.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery


class _Queue(threading.local):
    statements: list[tuple[str, tuple]] | None = None


_queue = _Queue()


@contextmanager
def writes_together(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Queue the block's `row_insert` and `rows_update` calls; send them when it ends without an error.

    Nested blocks join the outermost one.
    """
    if _queue.statements is not None:
        yield
        return
    _queue.statements = statements = []
    try:
        yield
    finally:
        _queue.statements = None
    if not statements:
        return
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(statements) > 1:
            cursor.execute(";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        else:
            for sql, params in statements:
                cursor.execute(sql, params)


def row_insert(obj: Model, using: str = DEFAULT_DB_ALIAS) -> Model:
    """Insert `obj` as a new row (at once, or with the enclosing `writes_together` block); return it."""
    if _queue.statements is None:
        obj.save(force_insert=True, using=using)
        return obj
    meta = obj._meta
    fields = [field for field in meta.local_concrete_fields if not field.generated]
    if obj.pk is None:
        fields = [field for field in fields if field is not meta.auto_field]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj])
    [(sql, params)] = query.get_compiler(using=using).as_sql()
    _queue.statements.append((sql, tuple(params)))
    obj._state.adding = False
    obj._state.db = using
    return obj


def rows_update(queryset: QuerySet, **values) -> None:
    """Update the rows of `queryset` (at once, or with the enclosing `writes_together` block).

    Unlike `queryset.update()`, it does not say how many rows changed: queue only updates
    whose outcome the flow already knows (a row it holds locked).
    """
    if _queue.statements is None:
        queryset.update(**values)
        return
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    query.annotations = {}
    sql, params = query.get_compiler(queryset.db).as_sql()
    _queue.statements.append((sql, tuple(params)))
