"""What the tests that run real servers and tools (gunicorn with production settings, nginx, redis-server) share."""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest


def missing(reason: str):
    """Skip a test whose tool or service is absent on a developer's machine; fail it in CI.

    `make test` needs only Python, but CI installs (or starts) everything, so there a
    missing tool is a broken set-up, never a reason to skip.
    """
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(tmp: Path, *, port: int | None = None, **overrides: str) -> dict[str, str]:
    """Return the environment of a production server on a SQLite file and a STATIC_ROOT in `tmp`.

    Fresh secrets, the loopback address, a free port (or `port`) and one worker; nothing
    from the caller's environment that configures Gatehouse leaks in.
    """
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),
        "HOST": "127.0.0.1",
        "PORT": str(port or free_port()),
        "WEB_CONCURRENCY": "1",
        **overrides,
    }


class RedisServer:
    """A redis-server of the test's own on a free port of 127.0.0.1, without persistence.

    The test may freeze it (SIGSTOP), thaw it, kill it or stop it; the shared Redis is
    never touched. `start()` skips the test when redis-server is absent (fails in CI).
    """

    def __init__(self, binary: str, directory):
        import redis

        self.port = free_port()
        self.process = subprocess.Popen(  # noqa: S603 - a fixed program
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.05)

    @classmethod
    def start(cls, directory) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed")
        return cls(binary, directory)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.kill()
        self.client.close()


ROOT = Path(__file__).resolve().parent.parent


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    """Run one of our management commands with `env`; return its output, failing the test on an error."""
    done = subprocess.run(  # noqa: S603 - our own management commands
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout.decode()


@contextmanager
def production_server(tmp: Path, *, start_deadline: float = 40, **overrides: str) -> Iterator[tuple[str, dict]]:
    """Serve Gatehouse as the image does and yield (base URL, environment); stop it afterwards.

    The Dockerfile's steps: collectstatic (build time), migrate, then gunicorn with
    config/gunicorn.py and the production settings (production_env, with `overrides`), on
    a free loopback port. Ready once /readyz answers 200; its log is `tmp/server.log`.
    """
    env = production_env(tmp, **overrides)
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "migrate", "--noinput", "-v0")
    base = f"http://127.0.0.1:{env['PORT']}"
    with gunicorn_serving(env, tmp / "server.log", ready_url=f"{base}/readyz", start_deadline=start_deadline):
        yield base, env


@contextmanager
def gunicorn_serving(
    env: dict,
    log_path: Path,
    *,
    ready_url: str,
    gunicorn_args: tuple[str, ...] = (),
    ssl_context: ssl.SSLContext | None = None,
    start_deadline: float = 40,
) -> Iterator[subprocess.Popen]:
    """Run the image's server command (gunicorn, config/gunicorn.py) with `env` until the block ends.

    Prepared already (migrated, static files collected). Ready once `ready_url` answers 200
    (with `ssl_context` for a server that terminates TLS itself); stopped with its worker
    afterwards, killed with its process group if it does not stop in time.
    """
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the image's own server command
            [gunicorn, "-c", "config/gunicorn.py", *gunicorn_args, "config.wsgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + start_deadline
        while not _ready(ready_url, ssl_context):
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _ready(url: str, ssl_context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ssl_context) as answer:  # noqa: S310 - loopback
            return answer.status == 200
    except (OSError, ValueError):
        return False


def scratch_postgres(stack: contextlib.ExitStack, server_url: str, prefix: str) -> str:
    """Create an empty database on the Postgres at `server_url`, dropped when `stack` closes; return its URL."""
    import psycopg2

    parts = urlsplit(server_url)
    try:
        admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=3)
    except psycopg2.OperationalError as exc:
        missing(f"Postgres is not reachable at {parts.hostname}:{parts.port}: {exc}")
    admin.autocommit = True
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"

    def drop():
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    stack.callback(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def live_database_url(stack: contextlib.ExitStack, tmp: Path, prefix: str) -> str:
    """A live server's database: a scratch one beside this run's Postgres (dropped at the end), else SQLite.

    So the module runs on both databases, as CI's two passes do.
    """
    run_url = os.environ.get("DATABASE_URL", "")
    if run_url.startswith(("postgres://", "postgresql://")):
        return scratch_postgres(stack, run_url, prefix)
    return f"sqlite:///{tmp / 'db.sqlite3'}"


@contextmanager
def system_chromium(*extra_args: str) -> Iterator:
    """Debian's Chromium launched by Playwright (which cannot download a browser here); yield the browser.

    Skipped when chromium or playwright is absent, failed in CI (`missing`). The browser's
    own background traffic is off: it would only knock on a closed network.
    """
    executable = shutil.which("chromium")
    if executable is None:
        missing("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                *extra_args,
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
