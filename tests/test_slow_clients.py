"""Slow clients must not take the shipped deployment down (slowloris).

gunicorn's sync workers give a whole process to a connection until its request is read, so
a few clients that send their headers a byte a second stop the service. The deployment
therefore puts nginx in front, which reads every request completely before gunicorn sees it.

These tests serve Gatehouse the way docker-compose.yml ships it: the service that publishes
a port is the one clients reach. When that is the nginx `proxy` service, nginx runs with the
template the service mounts, rendered as the official image renders it, in front of the
image's command (`gunicorn -c config/gunicorn.py config.wsgi:application`, production
settings). On the old compose file, which published gunicorn itself, the same probe finds
the service down. bench/slow_clients.py reuses these helpers to print figures.
"""

import contextlib
import http.client
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests.live import missing

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))
ME = json.dumps({"query": "{ me { id } }"}).encode()
SLOW_CLIENTS = 100


def nginx_binary() -> str | None:
    """Return the nginx executable (Debian installs it in /usr/sbin, often not on PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# docker-compose.yml: the shipped arrangement ------------------------------------------


def compose_services() -> dict:
    """Return the services of docker-compose.yml (YAML merge keys resolved)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def compose_default(value) -> str:
    """Return a compose value as `docker compose` interpolates it with nothing set: the defaults."""

    def default(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return match.group("default") or ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?::?-)(?P<default>[^}]*)|(?::?\?)[^}]*)?\}", default, str(value))


def published_service() -> tuple[str, dict]:
    """Return the one service of docker-compose.yml that publishes a port, and its definition."""
    published = [(name, service) for name, service in compose_services().items() if service.get("ports")]
    assert len(published) == 1, f"expected one published service, found {[name for name, _ in published]}"
    return published[0]


def nginx_template(service: dict) -> Path:
    """Return the nginx template file a compose service mounts into /etc/nginx/templates."""
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        if target.startswith("/etc/nginx/templates/") and target.endswith(".template"):
            assert options == ["ro"], f"the template must be mounted read-only: {volume}"
            return (ROOT / source).resolve()
    raise AssertionError(f"no template mounted into /etc/nginx/templates: {service.get('volumes')}")


def render_template(template: str, values: dict[str, str]) -> str:
    """Substitute `${NAME}` and `$NAME` for each NAME in `values`, as envsubst does."""
    for name, value in values.items():
        template = re.sub(rf"\$(\{{{name}\}}|{name}\b)", lambda _match, value=value: value, template)
    assert "${GATEHOUSE_" not in template, "a placeholder of the template has no value"
    return template


# Running it ------------------------------------------------------------------------------


@dataclass
class Served:
    gunicorn: tuple[str, int]
    public: tuple[str, int]
    nginx: bool
    logs: Path


def _wait_healthy(address, process, name, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection(*address, timeout=2)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer /healthz within {seconds} s")


def _stop(process, quit_signal):
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, quit_signal)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def serve(tmp: Path, *, proxy: dict | None, environment: dict | None = None):
    """Run the image's gunicorn command and, when `proxy` is a compose nginx service, nginx in front.

    Production settings with a fresh SQLite database in `tmp`; both processes are children
    in their own process groups and are stopped on exit, whatever happens.
    """
    web = compose_services()["web"]
    gunicorn_port = free_port()
    env = {
        **{
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_", "GATEHOUSE_"))
            and key not in {"HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT", "TRUSTED_PROXY_COUNT"}
        },
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{tmp / 'gatehouse.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),
        "SECURE_SSL_REDIRECT": "false",
        "TRUSTED_PROXY_COUNT": compose_default(web["environment"]["TRUSTED_PROXY_COUNT"]),
        "HOST": "127.0.0.1",
        "PORT": str(gunicorn_port),
        **(environment or {}),
    }
    # The Dockerfile's steps (collectstatic at build time, migrate before start), in `tmp`.
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120)  # noqa: S603
    gunicorn = nginx = None
    with (tmp / "gunicorn.log").open("wb") as gunicorn_log:
        try:
            gunicorn = subprocess.Popen(  # noqa: S603 - our own server command
                [GUNICORN, "-c", "config/gunicorn.py", "config.wsgi:application"],
                cwd=ROOT,
                env=env,
                stdout=gunicorn_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            public = ("127.0.0.1", gunicorn_port)
            _wait_healthy(public, gunicorn, "gunicorn")
            if proxy is not None:
                public = ("127.0.0.1", free_port())
                nginx = _start_nginx(tmp, proxy, gunicorn_port, public[1])
                _wait_healthy(public, nginx, "nginx")
            yield Served(("127.0.0.1", gunicorn_port), public, nginx is not None, tmp)
        finally:
            _stop(nginx, signal.SIGTERM)
            _stop(gunicorn, signal.SIGINT)


def _start_nginx(tmp: Path, proxy: dict, upstream_port: int, port: int) -> subprocess.Popen:
    """Render the proxy service's template into a main configuration of our own and start nginx."""
    values = {name: compose_default(value) for name, value in proxy.get("environment", {}).items()}
    values |= {
        "GATEHOUSE_LISTEN": f"127.0.0.1:{port}",
        "GATEHOUSE_UPSTREAM": f"127.0.0.1:{upstream_port}",
        "GATEHOUSE_ACCESS_LOG": str(tmp / "nginx-access.log"),
    }
    (tmp / "gatehouse.conf").write_text(render_template(nginx_template(proxy).read_text(), values))
    # What the image's own nginx.conf provides, with every path in `tmp`.
    (tmp / "nginx.conf").write_text(
        f"""
        daemon off;
        worker_processes 2;
        pid {tmp}/nginx.pid;
        error_log {tmp}/nginx-error.log notice;
        events {{ worker_connections 1024; }}
        http {{
            client_body_temp_path {tmp}/client_body;
            proxy_temp_path {tmp}/proxy;
            fastcgi_temp_path {tmp}/fastcgi;
            uwsgi_temp_path {tmp}/uwsgi;
            scgi_temp_path {tmp}/scgi;
            default_type application/octet-stream;
            include {tmp}/gatehouse.conf;
        }}
        """
    )
    nginx = nginx_binary()
    check = subprocess.run(  # noqa: S603 - nginx with our own configuration
        [nginx, "-t", "-q", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert check.returncode == 0, check.stderr
    return subprocess.Popen(  # noqa: S603 - nginx with our own configuration
        [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")],
        start_new_session=True,
    )


# The probe ------------------------------------------------------------------------------


class SlowClients:
    """`count` connections that send a request line and one header, then one header byte a second."""

    def __init__(self, address: tuple[str, int], count: int):
        self.address = address
        self.count = count
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self):
        try:
            for _ in range(self.count):
                sock = socket.create_connection(self.address, timeout=2)
                self.sockets.append(sock)
                sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        except BaseException:
            self.close()
            raise
        self._thread.start()
        return self

    def _trickle(self):
        while not self._stop.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def still_open(self) -> int:
        """Return how many of the connections the server has not closed."""
        count = 0
        for sock in self.sockets:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                count += 1
                continue
            with contextlib.suppress(OSError):
                if sock.recv(1, socket.MSG_PEEK):
                    count += 1  # an answer, but the connection is still there
        return count

    def close(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)
        for sock in self.sockets:
            sock.close()

    def __exit__(self, *exc_info):
        self.close()


@dataclass
class Traffic:
    seconds: float
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


def normal_traffic(
    address: tuple[str, int], seconds: float, *, threads: int = 4, token: str | None = None, timeout: float = 5.0
) -> Traffic:
    """Send normal requests from `threads` threads for `seconds`, one connection each, and count them.

    Anonymous `{ me { id } }` POSTs and `GET /healthz` alternate; with `token`, only `me`
    with that Bearer token. Every request is bounded by `timeout`; a failure counts its time too.
    """
    traffic = Traffic(seconds)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one(kind: int) -> bool:
        connection = http.client.HTTPConnection(*address, timeout=timeout)
        try:
            if token is None and kind % 2:
                connection.request("GET", "/healthz")
                return connection.getresponse().status == 200
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            connection.request("POST", "/graphql", body=ME, headers=headers)
            response = connection.getresponse()
            body = json.loads(response.read())
            return response.status == 200 and "errors" not in body and (token is None or body["data"]["me"])
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            connection.close()

    def run():
        kind = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            ok = one(kind)
            elapsed = time.monotonic() - started
            kind += 1
            with lock:
                traffic.latencies.append(elapsed)
                if ok:
                    traffic.ok += 1
                else:
                    traffic.failed += 1

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + timeout + 5)
    return traffic


def shipped_proxy() -> dict | None:
    """Return the compose service that fronts gunicorn with nginx, or None when gunicorn is published."""
    _name, service = published_service()
    return service if "nginx" in str(service.get("image", "")) else None


# The tests ----------------------------------------------------------------------------

pytestmark = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="serves its own SQLite database: runs once, in the SQLite pass",
)


def test_compose_publishes_nginx_only_and_counts_it_as_a_proxy():
    # given the shipped compose file
    services = compose_services()
    name, proxy = published_service()

    # then only the nginx proxy is published, with the template mounted read-only,
    assert name == "proxy"
    assert proxy["image"].startswith("nginx:")
    assert nginx_template(proxy) == ROOT / "deploy" / "nginx" / "gatehouse.conf.template"
    assert "ports" not in services["web"]
    assert compose_default(proxy["environment"]["GATEHOUSE_UPSTREAM"]) == "web:8000"
    assert compose_default(proxy["environment"]["GATEHOUSE_BEHIND_TLS_PROXY"]) == "off"
    # and the web service counts nginx in X-Forwarded-For.
    assert compose_default(services["web"]["environment"]["TRUSTED_PROXY_COUNT"]) == "1"


def test_normal_clients_are_served_while_100_slow_clients_are_open(tmp_path):
    proxy = shipped_proxy()
    if proxy is not None and nginx_binary() is None:
        missing("nginx is not installed (.ci/run installs it)")

    # given the shipped deployment, and its rate of normal traffic
    with serve(tmp_path, proxy=proxy) as served:
        normal_traffic(served.public, 1.0)
        before = normal_traffic(served.public, 3.0)

        # when 100 clients are sending their headers a byte a second
        with SlowClients(served.public, SLOW_CLIENTS) as slow:
            time.sleep(1.0)
            during = normal_traffic(served.public, 4.0)
            still_open = slow.still_open()

    # then normal clients are served at half the rate or better, none waiting long,
    figures = (
        f"nginx in front: {served.nginx}; before {before.rate:.1f} req/s; with {SLOW_CLIENTS} slow clients "
        f"{during.rate:.1f} req/s, {during.failed} failed, slowest {max(during.latencies):.2f} s"
    )
    assert before.rate >= 10, figures
    assert during.failed == 0, figures
    assert during.rate >= before.rate / 2, figures
    assert max(during.latencies) < 2.0, figures
    # while the slow clients were still connected.
    assert still_open >= SLOW_CLIENTS * 0.9, f"only {still_open} slow clients were still connected; {figures}"


def _raw(address, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes, return the status, headers and body of the answer (read by its Content-Length).

    Not to the end of the stream: after refusing a body it never read, nginx keeps the
    connection open a few seconds to drain it.
    """
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines)
        while len(body) < int(headers["Content-Length"]) and (chunk := sock.recv(65536)):
            body += chunk
    return int(status_line.split()[1]), headers, body


def test_the_proxy_counts_itself_in_x_forwarded_for_and_refuses_in_json(tmp_path):
    proxy = shipped_proxy()
    assert proxy is not None, "docker-compose.yml publishes gunicorn itself"
    if nginx_binary() is None:
        missing("nginx is not installed (.ci/run installs it)")
    register = (
        "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) { token } }"
    )
    variables = {"u": "carol", "e": "carol@example.com", "p": "a-Long-passphrase-1"}

    with serve(tmp_path, proxy=proxy) as served:
        # given a client that forges X-Forwarded-For through the proxy
        connection = http.client.HTTPConnection(*served.public, timeout=10)
        connection.request(
            "POST",
            "/graphql",
            json.dumps({"query": register, "variables": variables}),
            {"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"},
        )
        token = json.loads(connection.getresponse().read())["data"]["register"]["token"]
        connection.request(
            "POST",
            "/graphql",
            json.dumps({"query": "{ me { sessions { ipAddress } } }"}),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        sessions = json.loads(connection.getresponse().read())["data"]["me"]["sessions"]
        connection.close()
        # when the proxy refuses requests itself
        too_large = _raw(
            served.public,
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000\r\nConnection: close\r\n\r\n",
        )
        malformed = _raw(served.public, b"GARBAGE\r\n\r\n")
        trace = _raw(served.public, b"TRACE /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        coding = _raw(
            served.public,
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: foo\r\nConnection: close\r\n\r\n",
        )

    # then the session records the address nginx saw, not the forged one,
    assert sessions == [{"ipAddress": "127.0.0.1"}]
    # and the refusals are JSON with a code, from an nginx that does not name its version.
    refusals = (
        (too_large, (413, "PAYLOAD_TOO_LARGE")),
        (malformed, (400, "BAD_REQUEST")),
        (trace, (405, "METHOD_NOT_ALLOWED")),
        (coding, (501, "BAD_REQUEST")),
    )
    for (status, headers, body), expected in refusals:
        assert (status, json.loads(body)["errors"][0]["extensions"]["code"]) == expected
        assert headers["Content-Type"] == "application/json"
        assert headers["Server"] == "nginx"
