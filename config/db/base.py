"""Django's Postgres backend with every wait on the server bounded on the client side (see config.db).

OPTIONS, besides libpq's own parameters:
- `connect_timeout` (seconds, default 3): libpq's parameter, enforced by the wait callback;
  it also bounds the health check of a kept connection, so that a request on a frozen
  server spends at most two of these before it fails;
- `client_timeout` (milliseconds, default 7000): how long one query may keep its caller
  waiting; keep it above the server's statement_timeout;
- TCP keepalives (`keepalives_idle` 10 s, `keepalives_interval` 5 s, `keepalives_count` 3)
  and `tcp_user_timeout` (the client timeout) by default, so that the kernel drops a
  connection to a host that has vanished, idle or not.
"""

import functools

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3

from config.db import BoundedConnection, database_deadline, install_wait_callback

if is_psycopg3:
    # psycopg 3 would be picked over psycopg2 and bypass the wait callback without a word.
    raise ImproperlyConfigured("config.db needs psycopg2; uninstall psycopg (3) or use Django's own backend.")

DEFAULT_CONNECT_TIMEOUT = 3
DEFAULT_CLIENT_TIMEOUT_MS = 7000
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        client_timeout_ms = int(params.pop("client_timeout", DEFAULT_CLIENT_TIMEOUT_MS))
        params.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        for name, value in KEEPALIVES.items():
            params.setdefault(name, value)
        params.setdefault("tcp_user_timeout", client_timeout_ms)
        params["connection_factory"] = functools.partial(
            BoundedConnection, connect_timeout=float(params["connect_timeout"]), query_timeout=client_timeout_ms / 1000
        )
        return params

    def get_new_connection(self, conn_params):
        install_wait_callback()
        return super().get_new_connection(conn_params)

    def is_usable(self):
        # A kept connection answers `SELECT 1` at once or is as good as dead: give it no
        # longer than a new connection would get, not a whole query's limit.
        connect_timeout = float(self.settings_dict["OPTIONS"].get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        with database_deadline(connect_timeout):
            return super().is_usable()
