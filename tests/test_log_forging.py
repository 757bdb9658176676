"""Client input cannot forge log lines, and each client error logs one WARNING line.

Runs the shipped server command (`gunicorn -c config/gunicorn.py config.wsgi:application`
with the production settings) on a fresh SQLite database, sends hostile requests over raw
sockets (http.client refuses to send most of them) and reads what the server wrote: the
access log on stdout, gunicorn's error log and Django's records on stderr.
"""

import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.live import production_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# TEST-NET-3 (RFC 5737): an address no real request here comes from.
FORGED = "203.0.113.66"
FORGED_LINE = f'{FORGED} "POST /graphql" 200 1234 5ms'
# Every character a log reader may take for the end of a line, or that drives a terminal.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# The first line of a record: Django's formatter, or gunicorn's error log.
RECORD_START = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) "
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[(?P<glevel>[A-Z]+)\] )"
)
START_TIMEOUT = 30
STEP_TIMEOUT = 10
CSRF_COOKIE = "csrftoken=" + "a" * 32


def request(method: str, target: str, headers: dict[str, bytes | str] | None = None, body: bytes = b"") -> bytes:
    """Return the raw bytes of one HTTP/1.1 request; nothing is checked or encoded."""
    fields = {"Host": "127.0.0.1", "Connection": "close", **({"Content-Length": str(len(body))} if body else {})}
    fields.update(headers or {})
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    for name, value in fields.items():
        lines.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Probe:
    name: str
    raw: bytes
    status: int
    # Whether the request is a client error that must log exactly one WARNING line.
    client_error: bool = True
    # Requests gunicorn refuses while parsing never reach the access log.
    access_lines: int = 1
    # Text that must appear, escaped, in the lines the request produced.
    escaped: tuple[str, ...] = ()


@dataclass
class Outcome:
    probe: Probe
    status: int | None
    access: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[str]:
        return [line for line in self.errors if RECORD_START.match(line)]

    def levels(self) -> list[str]:
        found = []
        for line in self.records:
            match = RECORD_START.match(line)
            found.append(match["level"] or match["glevel"])
        return found


FORGING_PATH = "/x%0a" + FORGED_LINE.replace(" ", "%20").replace('"', "%22")
PROBES = [
    Probe(
        "forged access line in the path",
        request("GET", FORGING_PATH),
        404,
        escaped=(r"\n" + FORGED,),
    ),
    Probe(
        "CR, ESC, NEL, U+2028, a bidi override and a backslash in the path",
        request("GET", "/y%0d%1b[2J%c2%85%e2%80%a8%e2%80%ae-end%5cn"),
        404,
        # A backslash the client sent is doubled: it cannot pass for an escape.
        escaped=(r"\r", r"\x1b[2J", r"\x85", r"\u2028", r"\u202e-end\\n"),
    ),
    Probe(
        "control bytes gunicorn lets through in the User-Agent",
        request("GET", "/healthz", {"User-Agent": b"agent\t\x85" + FORGED.encode() + b"\x9b31m\xe2\x80\xa8"}),
        200,
        client_error=False,
        escaped=(r"\t", r"\x85" + FORGED, r"\x9b31m"),
    ),
    Probe(
        "a Host that is not allowed",
        request("GET", "/graphql", {"Host": "evil.example"}),
        400,
        escaped=("evil.example",),
    ),
    Probe(
        "a Host with control bytes",
        request("GET", "/graphql", {"Host": b"evil\x85" + FORGED.encode() + b".example"}),
        400,
    ),
    Probe(
        "too many form fields",
        request(
            "POST",
            "/admin/login/",
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": CSRF_COOKIE},
            b"&".join(b"f%04d=" % n for n in range(1100)),
        ),
        400,
    ),
    Probe(
        "a form body over the size limit",
        # Declared only: Django refuses on the header, so nothing is left unread on the socket.
        request(
            "POST",
            "/admin/login/",
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": CSRF_COOKIE, "Content-Length": "700000"},
        ),
        400,
    ),
    Probe(
        "a broken JSON body",
        request("POST", "/graphql", {"Content-Type": "application/json"}, b'{"query":'),
        400,
    ),
    Probe(
        "a JSON body over the size limit",
        request("POST", "/graphql", {"Content-Type": "application/json", "Content-Length": "700000"}),
        413,
    ),
    Probe(
        "a form post to the API",
        request("POST", "/graphql", {"Content-Type": "text/plain"}, b"{}"),
        415,
    ),
    Probe("a method the API does not serve", request("PUT", "/graphql", {"Content-Length": "0"}), 405),
    Probe(
        "a header gunicorn refuses",
        request("GET", "/z", {"X-Bad": b"a\x1b[2J\n" + FORGED.encode()}),
        400,
        access_lines=0,
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(port: int, raw: bytes) -> int | None:
    """Send one raw request and return the response's status code (None if there was none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as sock:
        sock.sendall(raw)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match[1]) if match else None


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="backslashreplace")


def read_lines(path: Path) -> list[str]:
    # Split on "\n" only: any other line break in the file is a defect the tests look for.
    return read_text(path).split("\n")[:-1]


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@dataclass
class Served:
    outcomes: list[Outcome]
    stdout: str
    stderr: str
    # Requests answered before the probes (the readiness check).
    warm_up: int


def serve_and_probe(tmp: Path) -> Served:
    """Serve with the shipped command, send every probe, stop; return what each one logged."""
    port = free_port()
    env = production_env(
        tmp,
        port=port,
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="INFO",
        # What a container's C.UTF-8 locale gives: a C1 control is written as itself, not escaped.
        PYTHONIOENCODING="utf-8",
    )
    for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120)  # noqa: S603
    stdout, stderr = tmp / "stdout.log", tmp / "stderr.log"
    gunicorn = Path(PYTHON).with_name("gunicorn")
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(  # noqa: S603 - our own server command
            [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        # The worker loads Django when it boots: the first answer shows that it is ready.
        started = wait_for(lambda: server.poll() is not None or _answers(port), START_TIMEOUT)
        assert started, stderr.read_text()
        assert server.poll() is None, stderr.read_text()
        outcomes = []
        for probe in PROBES:
            access_before, errors_before = len(read_lines(stdout)), len(read_lines(stderr))
            status = send(port, probe.raw)
            # A request's records are written before its answer, its access line after it.
            if probe.access_lines:
                wait_for(lambda before=access_before: len(read_lines(stdout)) > before, STEP_TIMEOUT)
            else:
                wait_for(lambda before=errors_before: len(read_lines(stderr)) > before, STEP_TIMEOUT)
            time.sleep(0.1)
            access, errors = read_lines(stdout)[access_before:], read_lines(stderr)[errors_before:]
            outcomes.append(Outcome(probe, status, access, errors))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return Served(outcomes, read_text(stdout), read_text(stderr), warm_up=1)


def _answers(port: int) -> bool:
    try:
        return send(port, request("GET", "/healthz")) == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    return serve_and_probe(tmp_path_factory.mktemp("served"))


def outcome_of(served: Served, probe: Probe) -> Outcome:
    return next(outcome for outcome in served.outcomes if outcome.probe is probe)


@pytest.mark.parametrize("probe", PROBES, ids=[probe.name for probe in PROBES])
def test_each_request_is_one_access_log_line(served, probe):
    # when
    outcome = outcome_of(served, probe)
    # then
    assert outcome.status == probe.status
    assert len(outcome.access) == probe.access_lines, outcome.access
    assert all(line.startswith("127.0.0.1 ") for line in outcome.access), outcome.access


@pytest.mark.parametrize("probe", PROBES, ids=[probe.name for probe in PROBES])
def test_client_input_is_escaped_where_it_is_logged(served, probe):
    # when
    outcome = outcome_of(served, probe)
    logged = "\n".join(outcome.access + outcome.errors)
    # then: the client's control characters are shown as escapes, never written raw
    assert not RAW_CONTROL.search(logged), ascii(logged)
    for text in probe.escaped:
        assert text in logged, ascii(logged)


@pytest.mark.parametrize("probe", [probe for probe in PROBES if probe.client_error], ids=lambda probe: probe.name)
def test_a_client_error_logs_one_warning_and_no_traceback(served, probe):
    # when
    outcome = outcome_of(served, probe)
    # then
    assert outcome.levels() == ["WARNING"], outcome.errors
    assert len(outcome.errors) == 1, outcome.errors
    assert "Traceback" not in "\n".join(outcome.errors)


def test_no_log_line_is_forged(served):
    # then: every line is one record of the server's own, whatever a reader takes for a line break
    for text in (served.stdout, served.stderr):
        assert not RAW_CONTROL.search(text), ascii(RAW_CONTROL.findall(text))
        assert text.splitlines() == text.split("\n")[:-1]
        assert not any(line.lstrip().startswith(FORGED) for line in text.splitlines())
    access = served.stdout.splitlines()
    assert len(access) == served.warm_up + sum(probe.access_lines for probe in PROBES), access
    assert all(line.startswith("127.0.0.1 ") for line in access), access
    assert all(RECORD_START.match(line) for line in served.stderr.splitlines()), served.stderr
