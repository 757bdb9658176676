"""A Postgres backend (`ENGINE: "config.db"`) whose every wait on the server is bounded.

Once psycopg2 has sent a query, libpq waits for the answer with no timeout of its own: a
frozen server (a network partition, a stalled failover), whose kernel still accepts
connections and acknowledges bytes, holds the worker until gunicorn kills it. TCP
keepalives and `tcp_user_timeout` catch a dead network, not a stopped process. So the
backend puts psycopg2 in "green" mode (`psycopg2.extensions.set_wait_callback`, as
psycogreen does): psycopg2 then hands every wait on the socket, the connection set-up
included, to `wait_bounded`, which polls with a deadline. On expiry it raises
psycopg2.OperationalError; psycopg2 closes the connection, Django raises
django.db.OperationalError, and a later request reconnects.

The deadline of a wait is the earliest of:
- the connection's own limit: `connect_timeout` while connecting (libpq ignores it in
  this mode), its query limit afterwards (above the server's statement_timeout, so that
  the server cancels a slow query first);
- a deadline the calling code set for the thread with `database_deadline`.
"""

import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from django.db import InterfaceError, OperationalError
from psycopg2 import extensions


class _ThreadDeadline(threading.local):
    at: float | None = None


_thread = _ThreadDeadline()
_READY = frozenset({extensions.STATUS_READY, extensions.STATUS_BEGIN, extensions.STATUS_PREPARED})
_EVENTS = {extensions.POLL_READ: select.POLLIN, extensions.POLL_WRITE: select.POLLOUT}
# SQLSTATE classes that mean "not reachable or not answering": connection exception,
# insufficient resources (too many connections), operator intervention (shutdown,
# starting up, statement timeout).
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})


class BoundedConnection(extensions.connection):
    """A psycopg2 connection that carries its own wait limits, in seconds (None: no limit)."""

    def __init__(self, dsn, *args, connect_timeout: float | None, query_timeout: float | None, **kwargs):
        # Set before connecting: the set-up itself already waits through wait_bounded.
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        super().__init__(dsn, *args, **kwargs)


@contextmanager
def database_deadline(seconds: float) -> Iterator[None]:
    """Bound every wait on Postgres in this thread, within the block, to end `seconds` from now.

    An enclosing deadline that ends sooner still applies. Outside Postgres this does nothing.
    """
    previous = _thread.at
    deadline = time.monotonic() + seconds
    _thread.at = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _thread.at = previous


def wait_bounded(conn) -> None:
    """Wait until psycopg2 `conn` is done with its operation; raise OperationalError at the deadline."""
    connecting = conn.status not in _READY
    limit = getattr(conn, "connect_timeout" if connecting else "query_timeout", None)
    now = time.monotonic()
    deadline = _thread.at
    if limit is not None and (deadline is None or now + limit < deadline):
        deadline = now + limit
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        events = _EVENTS.get(state)
        if events is None:
            raise psycopg2.OperationalError(f"Unexpected state from psycopg2's poll(): {state}")
        timeout_ms = None
        if deadline is not None:
            if now >= deadline:
                waited = "accept the connection" if connecting else "answer"
                raise psycopg2.OperationalError(f"The database did not {waited} in time (client-side limit).")
            timeout_ms = (deadline - now) * 1000  # poll() rounds up
        # poll(), not select(): a worker may hold file descriptors above select's 1024.
        # The descriptor is read again each time: libpq opens a new socket per address tried.
        poller = select.poll()
        poller.register(conn.fileno(), events)
        poller.poll(timeout_ms)
        now = time.monotonic()


def install_wait_callback() -> None:
    """Route every psycopg2 wait in this process through `wait_bounded` (idempotent)."""
    if extensions.get_wait_callback() is not wait_bounded:
        extensions.set_wait_callback(wait_bounded)


def database_unavailable(exc: BaseException) -> bool:
    """Tell whether `exc` means Postgres could not be reached or did not answer in time.

    Client-side failures (no SQLSTATE: refused, reset, a client-side limit, a connection
    closed by an earlier failure) and the SQLSTATE classes 08, 53 and 57 count; a
    deadlock, a constraint or an SQL error is a bug or a conflict, not an outage.
    """
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if not isinstance(cause, psycopg2.Error):
        return False
    return cause.pgcode is None or cause.pgcode[:2] in _UNAVAILABLE_CLASSES


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message: driver messages add hints and context lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
