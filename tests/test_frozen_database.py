"""A frozen Postgres (a network partition, a stalled failover) must not hang the service.

The last test starts its own Postgres cluster on a free port (never the shared one), serves
Gatehouse against it with the shipped command (gunicorn, config/gunicorn.py, production
settings), then stops every Postgres process with SIGSTOP: the kernel still accepts
connections and acknowledges bytes, but nothing ever answers. It needs no DATABASE_URL,
so it runs in both passes of CI. It skips when the Postgres server binaries are missing,
except in CI, where it fails. The tests before it check the pieces: the client-side
limits of config.db (on the Postgres pass) and the GraphQL answer to an outage.
"""

import contextlib
import glob
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from django.db import OperationalError, close_old_connections, connection
from psycopg2 import extensions

from config.db import database_deadline, database_unavailable, wait_bounded
from config.db.base import DatabaseWrapper as BackendWrapper
from tests.live import missing

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a-Long-passphrase-for-freezing"
ME = "{ me { username } }"
# Requests sent while the database is frozen wait at most this long for an answer; the
# old build answered none of them before gunicorn killed its workers at 30 s.
FROZEN_WAIT = 15
# What a correct build must meet, each well above what it takes (readyz gives up after
# 2 s, a request after at most two 3 s waits) and far below the old build's "never".
READYZ_BOUND = 3.0
DATABASE_REQUEST_BOUND = 8.0
OTHER_REQUEST_BOUND = 5.0
CLIENT_PARAMETERS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)
LEAKS = ("Traceback", 'File "', "SELECT", "psycopg", "postgres", "OperationalError", "statement")


needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs Postgres")


def test_an_unavailable_database_is_a_clean_graphql_error_logged_on_one_line(gql, token, caplog):
    # given: the database fails as a frozen one does once the client gives up on it
    def frozen(execute, sql, params, many, context):
        cause = psycopg2.OperationalError("The database did not answer in time (client-side limit).\nSELECT secret")
        raise OperationalError(*cause.args) from cause

    # when
    with connection.execute_wrapper(frozen):
        body = gql(ME, token=token)
    # then: the client may retry; nothing internal is shown; the log has one line, no traceback
    assert body == {
        "data": {"me": None},
        "errors": [
            {
                "message": "The service is temporarily unavailable. Try again.",
                "path": ["me"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ],
    }
    [record] = [record for record in caplog.records if record.name == "schema.errors"]
    assert record.getMessage() == (
        "The database is unavailable while resolving ['me']: The database did not answer in time (client-side limit)."
    )
    assert record.exc_info is None


def test_only_a_postgres_connection_failure_counts_as_unavailable():
    # SQLite's errors and errors without a driver cause stay unforeseen: masked, with a traceback in the log.
    assert not database_unavailable(OperationalError("database is locked"))
    assert not database_unavailable(RuntimeError("boom"))


@pytest.mark.parametrize(
    ("timeouts", "accepted"),
    [({"DATABASE_STATEMENT_TIMEOUT": "5000", "DATABASE_CLIENT_TIMEOUT": "5000"}, False),
     ({"DATABASE_STATEMENT_TIMEOUT": "5000", "DATABASE_CLIENT_TIMEOUT": "5001"}, True),
     ({"DATABASE_CONNECT_TIMEOUT": "0"}, False)],
)  # fmt: skip
def test_the_client_limit_leaves_slow_queries_to_the_server_statement_timeout(timeouts, accepted):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/never",
        **timeouts,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert (result.returncode == 0) is accepted, result.stderr[-500:]
    if not accepted:
        assert b"ImproperlyConfigured" in result.stderr


def test_a_server_that_accepts_the_connection_but_never_answers_is_given_up_at_the_connect_timeout(
    django_db_blocker,
):
    # given: a port whose kernel completes the handshake for a process that never answers
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(8)
        wrapper = BackendWrapper(
            {
                **connection.settings_dict,
                "ENGINE": "config.db",
                "NAME": "gatehouse",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": frozen.getsockname()[1],
                "OPTIONS": {"connect_timeout": 1},
            },
            alias="frozen",
        )
        # when
        started = time.monotonic()
        with (
            django_db_blocker.unblock(),
            pytest.raises(OperationalError, match="did not accept the connection") as failure,
        ):
            wrapper.ensure_connection()
        # then
        assert 0.9 < time.monotonic() - started < 3
        assert database_unavailable(failure.value)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@needs_postgres
def test_every_connection_is_bounded_on_the_client_side():
    connection.ensure_connection()
    raw = connection.connection
    assert extensions.get_wait_callback() is wait_bounded
    # the defaults: 3 s to connect; 7 s for a query, 2 s past the server's statement timeout
    assert (raw.connect_timeout, raw.query_timeout) == (3.0, 7.0)
    params = raw.get_dsn_parameters()
    assert {name: params.get(name) for name in CLIENT_PARAMETERS} == {
        "connect_timeout": "3",
        "keepalives": "1",
        "keepalives_idle": "10",
        "keepalives_interval": "5",
        "keepalives_count": "3",
        "tcp_user_timeout": "7000",
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("5s",)
        # and the server ends a query whose client has gone
        cursor.execute("SHOW client_connection_check_interval")
        assert cursor.fetchone() == ("1s",)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@needs_postgres
def test_a_slow_query_is_cancelled_by_the_server_and_the_connection_stays():
    with connection.cursor() as cursor:
        # when: the server's limit (scaled down here) ends a query before the client's
        with pytest.raises(OperationalError, match="statement timeout") as failure:
            cursor.execute("SET LOCAL statement_timeout = 100; SELECT pg_sleep(1)")
        # then: the server's own error, on a connection still open and working
        assert failure.value.__cause__.pgcode == "57014"
        assert not connection.connection.closed
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@needs_postgres
def test_a_query_that_is_not_answered_in_time_is_cut_off_by_the_client_and_the_next_request_reconnects():
    # when: code gives the database less time than the query takes
    started = time.monotonic()
    with (
        pytest.raises(OperationalError, match="client-side limit") as failure,
        database_deadline(0.2),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(1)")
    # then: given up at the deadline; psycopg2 closed the connection
    assert time.monotonic() - started < 0.9
    assert database_unavailable(failure.value)
    assert connection.connection.closed
    # when: the request ends and the next one starts, as Django does at both ends
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        # then: a new connection
        assert cursor.fetchone() == (1,)
        # The abandoned server process finishes its sleep and leaves: wait, so the test
        # database can be dropped at the end of the run.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(1)'")
            if cursor.fetchone() == (0,):
                break
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path | None:
    """Return the newest installed Postgres server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def children_of(pid: int) -> list[int]:
    """Return the processes whose parent is `pid` (from /proc)."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(stat.split("/")[2]))
    return children


@dataclass
class Cluster:
    port: int
    data: Path

    @property
    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def signal_all(self, signum: int) -> None:
        """Send `signum` to the postmaster, then to every child (twice, to catch late forks)."""
        postmaster = self.postmaster
        os.kill(postmaster, signum)
        for _ in range(2):
            for child in children_of(postmaster):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)


@pytest.fixture
def own_postgres():
    """A throw-away Postgres cluster on a free port, stopped and deleted afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        missing("the Postgres server binaries (initdb, pg_ctl) are not installed")
    # initdb refuses to run as root: run the cluster as the postgres user then.
    as_owner = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            missing("running as root needs runuser to start Postgres as the postgres user")
        as_owner = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="gh-frozen-", dir="/tmp"))
    if as_owner:
        shutil.chown(base, user="postgres")
    cluster = Cluster(port=free_port(), data=base / "data")

    def run(*command):
        subprocess.run([*as_owner, *command], check=True, capture_output=True, timeout=60)  # noqa: S603 - fixed programs

    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        server_options = (
            f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=20"
        )
        started = True
        run(str(bindir / "pg_ctl"), "-D", str(cluster.data), "-o", server_options, "-l", str(base / "postgres.log"),
            "-w", "-t", "30", "start")  # fmt: skip
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "gatehouse")
        yield cluster
    finally:
        if started:
            # A stopped postmaster cannot shut down: wake everything first.
            with contextlib.suppress(OSError, ValueError, IndexError):
                cluster.signal_all(signal.SIGCONT)
            with contextlib.suppress(subprocess.SubprocessError):
                run(str(bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-t", "30", "stop")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Server:
    port: int
    log: Path

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None, timeout=10):
        """Return (status or None, body, seconds) of one request; None when no answer came in time."""
        headers = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = connection.getresponse()
            return response.status, response.read(), time.monotonic() - started
        except (TimeoutError, OSError, http.client.HTTPException):
            return None, b"", time.monotonic() - started
        finally:
            connection.close()

    def graphql(self, query: str, variables: dict | None = None, token: str | None = None, timeout=10):
        return self.request("POST", "/graphql", {"query": query, "variables": variables or {}}, token, timeout)


@pytest.fixture
def server(own_postgres, tmp_path):
    """The shipped server command (gunicorn, production settings) against `own_postgres`."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{own_postgres.port}/gatehouse",
        # Account mail goes nowhere, at once: nothing listens on this port.
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(free_port()),
        "STATIC_ROOT": str(tmp_path / "static"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    # The Dockerfile's steps: collectstatic at build time (production refuses to start
    # without it), migrate before start.
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120)  # noqa: S603
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own server command
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    running = Server(port=port, log=log)
    try:
        deadline = time.monotonic() + 30
        while running.request("GET", "/healthz", timeout=2)[0] != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def assert_clean(body: bytes):
    """A JSON answer that names nothing internal."""
    text = body.decode()
    json.loads(text)
    for leak in LEAKS:
        assert leak not in text, text


def sign_in(server: Server) -> str:
    register = (
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
        "{ token errors { field code } } }"
    )
    status, body, _ = server.graphql(register, {"u": "frozen", "e": "frozen@example.com", "p": PASSWORD})
    assert status == 200
    assert json.loads(body)["data"]["register"]["errors"] == [], body
    login = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"
    status, body, _ = server.graphql(login, {"e": "frozen@example.com", "p": PASSWORD})
    assert status == 200
    return json.loads(body)["data"]["tokenAuth"]["token"]


def during_freeze(server: Server, token: str) -> dict:
    """Send readyz and an authenticated `me` together, then healthz and an anonymous `me`.

    Returns each one's (status, body, seconds).
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        ready = pool.submit(server.request, "GET", "/readyz", timeout=FROZEN_WAIT)
        me = pool.submit(server.graphql, ME, token=token, timeout=FROZEN_WAIT)
        # Both workers are now waiting on the database; these need none.
        time.sleep(0.5)
        health = pool.submit(server.request, "GET", "/healthz", timeout=FROZEN_WAIT)
        anonymous = pool.submit(server.graphql, ME, timeout=FROZEN_WAIT)
        return {
            "readyz": ready.result(),
            "me": me.result(),
            "healthz": health.result(),
            "anonymous me": anonymous.result(),
        }


def test_a_frozen_database_fails_requests_fast_and_cleanly_and_the_server_recovers(own_postgres, server):
    # given: a signed-in user, and both workers holding a database connection
    token = sign_in(server)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(4):
            warm = list(pool.map(lambda _: server.graphql(ME, token=token), range(2)))
            assert all(status == 200 for status, _, _ in warm)
    frozen_at = server.log.stat().st_size

    # when: every Postgres process stops, twice (first on the open connections, then on new ones)
    own_postgres.signal_all(signal.SIGSTOP)
    try:
        rounds = [during_freeze(server, token), during_freeze(server, token)]
    finally:
        own_postgres.signal_all(signal.SIGCONT)
    timings = [{name: (status, round(seconds, 1)) for name, (status, _, seconds) in r.items()} for r in rounds]

    # then: readyz says 503 within 3 s; the request that needs the database fails within a
    # few seconds with a clean GraphQL error; the others are answered meanwhile
    for answers in rounds:
        status, body, seconds = answers["readyz"]
        assert status == 503, timings
        assert seconds < READYZ_BOUND, timings
        assert json.loads(body) == {"status": "unavailable"}

        status, body, seconds = answers["me"]
        assert status == 200, timings
        assert seconds < DATABASE_REQUEST_BOUND, timings
        assert_clean(body)
        [error] = json.loads(body)["errors"]
        assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
        assert error["message"] == "The service is temporarily unavailable. Try again."

        status, body, seconds = answers["healthz"]
        assert (status, json.loads(body)) == (200, {"status": "ok"}), timings
        assert seconds < OTHER_REQUEST_BOUND, timings
        status, body, seconds = answers["anonymous me"]
        assert (status, json.loads(body)) == (200, {"data": {"me": None}}), timings
        assert seconds < OTHER_REQUEST_BOUND, timings

    # then: the log says why, without tracebacks or SQL, and no worker was killed
    with server.log.open("rb") as log:
        log.seek(frozen_at)
        frozen_log = log.read().decode()
    assert "Traceback" not in frozen_log, frozen_log
    assert "SELECT" not in frozen_log, frozen_log
    assert "WORKER TIMEOUT" not in frozen_log, frozen_log
    assert "client-side limit" in frozen_log, frozen_log

    # then: once the database answers again, so does the server, without a restart
    deadline = time.monotonic() + 15
    while server.request("GET", "/readyz", timeout=5)[0] != 200:
        assert time.monotonic() < deadline, "readyz did not recover within 15 s"
        time.sleep(0.2)
    status, body, _ = server.graphql(ME, token=token)
    assert (status, json.loads(body)) == (200, {"data": {"me": {"username": "frozen"}}})
