"""Gatehouse's own load benchmark (`make bench`): req/s, latency, SQL and Redis per request.

Serves Gatehouse as production does (gunicorn, 2 sync workers, config.wsgi with the
production settings) on a scratch Postgres database, once without Redis and once with
REDIS_URL pointing at a redis-server of its own, and loads both with wrk (bench/load.lua
checks every response). Then it serves two copies of the database side by side, one of
1,000 users and one grown to 1,000,000, and measures `me` on both in alternating rounds. It
prints figures; it asserts no target.

    .venv/bin/python bench/load.py                   # about 4 minutes on 2 cores
    DURATION=1 WARMUP=1 SKIP_MILLION=1 .venv/bin/python bench/load.py   # the set-up, quickly

Scenarios: me_valid, me_none, me_invalid, me_expired (the `me` query with a valid, no, a
tampered and an expired token), tokenAuth, refreshToken (each token used once), register.

Knobs (environment): DURATION (5 s per measured run), WARMUP (2 s before each), CONNECTIONS
(8), SCENARIOS (a comma-separated subset), SKIP_MILLION=1 (no 1M step), BENCH_PG_URL
(postgres://postgres@127.0.0.1:5432, a role that may create databases).
LOGIN_RATE_PER_ACCOUNT, LOGIN_RATE_PER_ADDRESS and REGISTER_RATE_PER_ADDRESS are passed on
to Gatehouse (`off` relaxes one); the header says which differ from the defaults.

Everything it starts (servers, databases, files) is stopped or removed, by PID and by
name, on success, failure and Ctrl-C. `python bench/load.py --django CMD ...` is the
in-process half (seeding, minting, SQL counting), run in child processes that have the
same settings as the servers.
"""

import base64
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "load.lua"
PYTHON = sys.executable

SCENARIOS = ("me_valid", "me_none", "me_invalid", "me_expired", "tokenAuth", "refreshToken", "register")
USERS = 1_000
MILLION = 1_000_000
# Alternating rounds of the 1k/1M comparison: the shared machine's drift between two runs a
# few seconds apart is of the order of the effect measured, so four rounds by default.
SIZE_ROUNDS = int(os.environ.get("SIZE_ROUNDS", "4"))
PROBE_POOL = 400  # refresh tokens for the one-second probe that sizes the refresh pool
TOKENS = 100  # access tokens of distinct users that the me_* scenarios rotate over
PASSWORD = "bench-Password-1"  # noqa: S105 - every seeded user's password, on a scratch database
NEW_PASSWORD = "Sturdy-Lantern-Ridge-42"  # noqa: S105 - the password of accounts that `register` creates
DB_PREFIX = "gh_loadbench"
# The workers of the production command (config/gunicorn.py: WEB_CONCURRENCY=2 sync workers),
# without its access log and its max_requests recycling, which would reset the memory figures
# mid-run. gunicorn 27's control socket has one default path per host: two servers would fight.
GUNICORN = ("-w", "2", "-k", "sync", "--no-control-socket")
RATE_SETTINGS = {
    "LOGIN_RATE_PER_ACCOUNT": "10/360",
    "LOGIN_RATE_PER_ADDRESS": "30/60",
    "REGISTER_RATE_PER_ADDRESS": "20/3600",
}
# What wrk's requests carry, as they would through the TLS proxy (TRUSTED_PROXY_COUNT=1).
BASE_HEADERS = {"X-Forwarded-Proto": "https", "Accept": "application/json"}
ME_QUERY = "query { me { id username email } }"
LOGIN = "mutation($e:String!,$p:String!){ tokenAuth(email:$e,password:$p){ token refreshToken } }"
REFRESH = "mutation($r:String!){ refreshToken(refreshToken:$r){ token refreshToken } }"
REGISTER = (
    "mutation($u:String!,$e:String!,$p:String!){ register(username:$u,email:$e,password:$p)"
    "{ token refreshToken errors { field code } } }"
)
CLIENT_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")  # RFC 5737 documentation ranges
TOKEN_CODES = {"me_invalid": "TOKEN_INVALID", "me_expired": "TOKEN_EXPIRED"}


class BenchError(Exception):
    """A run that cannot give figures: the message says why."""


def knob_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number of seconds or a count, not {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return value


def client_address(i: int) -> str:
    """Return the (documentation) client address of request i; the same formula as load.lua."""
    a = i % 762
    return f"{CLIENT_NETS[a // 254]}{a % 254 + 1}"


def as_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def right_answer(scenario: str, status: int, text: str) -> bool:
    """Is this what `scenario` must answer? load.lua checks the same, with patterns."""
    body = as_json(text)
    if status != 200 or not isinstance(body, dict):
        return False
    data, errors = body.get("data") or {}, body.get("errors")
    codes = [((e or {}).get("extensions") or {}).get("code") for e in errors or []]
    if scenario == "me_valid":
        email = (data.get("me") or {}).get("email") or ""
        return not errors and re.fullmatch(r"user\d+@example\.com", email) is not None
    if scenario == "me_none":
        return not errors and "me" in data and data["me"] is None
    if scenario in TOKEN_CODES:
        return codes == [TOKEN_CODES[scenario]] and not data.get("me")
    payload = data.get(scenario) or {}
    if errors or not payload.get("token") or not payload.get("refreshToken"):
        return False
    return scenario != "register" or payload.get("errors") == []


def tamper(token: str) -> str:
    """Return `token` with every signature byte flipped: the server verifies up to the signature, which fails."""
    head, claims, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    return f"{head}.{claims}.{base64.urlsafe_b64encode(bytes(b ^ 0x5A for b in raw)).rstrip(b'=').decode()}"


# ---------------------------------------------------------------- the in-process half (child processes)


def django_setup():
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def django_seed(first: int, last: int):
    """COPY users user<first>..user<last> in, all with one password hash, then VACUUM ANALYZE.

    The hash is made once, by Gatehouse's own make_password under the production settings
    (so its configured hasher), or taken from user1 when topping up.
    """
    django_setup()
    import psycopg2
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import identify_hasher, make_password
    from django.db import models
    from django.utils import timezone

    user_model = get_user_model()
    table = user_model._meta.db_table
    started = time.monotonic()
    # A plain connection of our own: Gatehouse's database backend puts psycopg2 in "green"
    # mode (config/db), where COPY is not available, and bounds statements to seconds.
    psycopg2.extensions.set_wait_callback(None)
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    cur = conn.cursor()
    cur.execute("SET statement_timeout = 0")
    cur.execute(f"SELECT password FROM {table} WHERE username = %s", ["user1"])  # noqa: S608 - our own table
    row = cur.fetchone()
    encoded = row[0] if row and first > 1 else make_password(PASSWORD)
    # One COPY row: every column but the key, in the model's order.
    columns, parts = [], []
    now = timezone.now().isoformat()
    for field in user_model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.name == "username":
            parts.append("user{0}")
        elif field.name == "email":
            parts.append("user{0}@example.com")
        elif field.name == "password":
            parts.append(encoded.replace("{", "{{").replace("}", "}}"))
        elif isinstance(field, models.BooleanField):
            # Seeded accounts are ready to sign in: every "...verified" flag is set.
            parts.append("t" if "verified" in field.name or field.get_default() else "f")
        elif isinstance(field, models.DateTimeField) and not field.null:
            parts.append(now)
        elif field.null:
            parts.append(r"\N")
        else:
            sys.exit(f"seed: the user model has a column this script cannot fill: {field.name}")
    template = "\t".join(parts) + "\n"
    copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    chunk = 50_000
    for start in range(first, last + 1, chunk):
        rows = "".join(template.format(i) for i in range(start, min(start + chunk, last + 1)))
        cur.copy_expert(copy_sql, io.StringIO(rows))
    conn.commit()
    copied = time.monotonic()
    # VACUUM as well as ANALYZE: otherwise autovacuum would visit the fresh table (and set
    # its hint bits) in the middle of the next measurement.
    conn.autocommit = True
    cur.execute(f"VACUUM (ANALYZE) {table}")
    cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - our own table
    total = cur.fetchone()[0]
    conn.close()
    summary = identify_hasher(encoded).safe_summary(encoded)
    hasher = ", ".join(f"{k} {v}" for k, v in summary.items() if "salt" not in k and "hash" not in k)
    result = {
        "rows": last - first + 1,
        "total": total,
        "copy_seconds": copied - started,
        "vacuum_seconds": time.monotonic() - copied,
        "hasher": hasher,
    }
    print("SEEDJSON " + json.dumps(result))


def django_mint(out: str, tokens: int, spread: int, refresh: int):
    """Write access tokens of `tokens` users spread over user1..user<spread> to OUT, an expired
    one to OUT.expired, their tampered twins to OUT.invalid, and `refresh` never-used refresh
    tokens (each the first of its own session) to OUT.refresh. Sessions are opened through
    accounts.services.sessions.session_open, as a sign-in opens them.
    """
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from accounts.exceptions import TokenExpired
    from accounts.services.sessions import session_open
    from accounts.tokens import access_token_verify, jwt_encode, jwt_payload

    user_model = get_user_model()
    started = time.monotonic()
    names = [f"user{max(1, round(i * spread / tokens))}" for i in range(1, tokens + 1)]
    users = {u.username: u for u in user_model.objects.filter(username__in=names)}
    if len(users) != len(set(names)):
        sys.exit(f"mint: {len(set(names)) - len(users)} of the seeded users are missing")
    with transaction.atomic():
        access = [session_open(user=users[name]).token for name in names]
    Path(out).write_text("".join(t + "\n" for t in access))
    Path(out + ".invalid").write_text("".join(tamper(t) + "\n" for t in access))

    # A genuinely expired token: a real session's, signed with the server's key, whose `exp`
    # passed a minute ago. The server checks its signature and claims, then refuses it.
    user = users[names[0]]
    session_id = access_token_verify(session_open(user=user).token).session_id
    payload = jwt_payload(user, session_id=session_id)
    payload["iat"], payload["exp"] = int(time.time()) - 120, int(time.time()) - 60
    expired = jwt_encode(payload)
    try:
        access_token_verify(expired)
        sys.exit("mint: the expired token still verifies")
    except TokenExpired:
        pass
    Path(out + ".expired").write_text(expired + "\n")

    pool = []
    # Refresh tokens of sessions spread over every seeded user, as many clients would hold them.
    everyone = (
        list(user_model.objects.filter(username__in=[f"user{i}" for i in range(1, spread + 1)])) if refresh else []
    )
    for start in range(0, refresh, 1000):
        with transaction.atomic():
            pool += [
                session_open(user=everyone[i % len(everyone)]).refresh_token
                for i in range(start, min(start + 1000, refresh))
            ]
    Path(out + ".refresh").write_text("".join(t + "\n" for t in pool))
    print(
        "MINTJSON " + json.dumps({"access": len(access), "refresh": len(pool), "seconds": time.monotonic() - started})
    )


def django_sqlcount(tokens_file: str, scenarios: list[str]):
    """Print the SQL queries of one warm request per scenario (the third of three), counted with
    CaptureQueriesContext through Django's test client under the settings of the servers."""
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.mail import mail_wait
    from accounts.services.sessions import session_open

    access = Path(tokens_file).read_text().split()[0]
    invalid = Path(tokens_file + ".invalid").read_text().split()[0]
    expired = Path(tokens_file + ".expired").read_text().split()[0]
    user = get_user_model().objects.get(username="user1")
    refresh = [session_open(user=user).refresh_token for _ in range(3)]
    tag = secrets.token_hex(3)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https", HTTP_ACCEPT="application/json")

    def request(scenario: str, i: int):
        meta = {"HTTP_X_FORWARDED_FOR": client_address(9000 + i)}
        if scenario in ("me_valid", "me_invalid", "me_expired"):
            token = {"me_valid": access, "me_invalid": invalid, "me_expired": expired}[scenario]
            meta["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        if scenario.startswith("me_"):
            body = {"query": ME_QUERY}
        elif scenario == "tokenAuth":
            body = {"query": LOGIN, "variables": {"e": f"user{900 + i}@example.com", "p": PASSWORD}}
        elif scenario == "refreshToken":
            body = {"query": REFRESH, "variables": {"r": refresh[i]}}
        else:
            name = f"sq{tag}{i}"
            body = {"query": REGISTER, "variables": {"u": name, "e": f"{name}@example.com", "p": NEW_PASSWORD}}
        return client.post("/graphql", body, content_type="application/json", secure=True, **meta)

    counts = {}
    for scenario in scenarios:
        for i in range(3):  # the last of three: warm caches, as in a long run
            with CaptureQueriesContext(connection) as ctx:
                response = request(scenario, i)
        text = response.content.decode()
        counts[scenario] = len(ctx.captured_queries) if right_answer(scenario, response.status_code, text) else None
        if counts[scenario] is None:
            print(f"sqlcount {scenario}: wrong answer {response.status_code} {text[:300]}", file=sys.stderr)
    mail_wait()
    print("SQLJSON " + json.dumps(counts))


def django_main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "seed":
        django_seed(int(args[0]), int(args[1]))
    elif cmd == "mint":
        django_mint(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "sqlcount":
        django_sqlcount(args[0], args[1].split(","))
    else:
        sys.exit(f"unknown --django command {cmd}")


# ---------------------------------------------------------------- the orchestrator


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(port: int, method: str, path: str, body=None, headers=None, timeout: float = 30) -> tuple[int, str]:
    """One request to 127.0.0.1:port. Returns (status, text)."""
    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {**BASE_HEADERS, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def stop_pid(proc: subprocess.Popen, grace: float = 20) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class SmtpSink(socketserver.ThreadingTCPServer):
    """A mail server on loopback that accepts every message and keeps none.

    `register` emails a verification link from a background thread; production settings
    send it over SMTP, so the benchmark gives them a server that answers like one.
    """

    daemon_threads = True
    allow_reuse_address = True

    class Handler(socketserver.StreamRequestHandler):
        timeout = 10

        def handle(self):
            self.wfile.write(b"220 bench ESMTP\r\n")
            in_data = False
            for _ in range(10_000):  # bounded: a message of the benchmark is a few dozen lines
                line = self.rfile.readline(65_536)
                if not line:
                    return
                if in_data:
                    if line in (b".\r\n", b".\n"):
                        in_data = False
                        self.wfile.write(b"250 kept nowhere\r\n")
                    continue
                verb = line[:4].upper()
                if verb == b"DATA":
                    in_data = True
                    self.wfile.write(b"354 go on\r\n")
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    def __init__(self):
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


class Server:
    """One gunicorn, served as production serves Gatehouse, on a free loopback port."""

    def __init__(self, name: str, env: dict, log_path: Path):
        self.name, self.env, self.log_path = name, env, log_path
        self.port = free_port()
        self.redis = "REDIS_URL" in env
        self.log_file = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{self.port}", "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it by PID
        )

    def wait_ready(self, seconds: float = 90):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"gunicorn ({self.name}) exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if http(self.port, "GET", "/readyz", timeout=10)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise BenchError(f"gunicorn ({self.name}) not ready after {seconds:.0f} s:\n{self.log_tail()}")

    def drain(self, max_s: float = 60):
        """Wait until the workers have served what the last run left queued: a sync worker still
        serves a request whose client has hung up, and it must not leak into the next
        measurement. Done when three probes in a row answer fast."""
        deadline, fast = time.monotonic() + max_s, 0
        while fast < 3 and time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                http(self.port, "GET", "/healthz", timeout=max_s)
            except OSError:
                time.sleep(0.1)
                continue
            fast = fast + 1 if time.perf_counter() - t0 < 0.05 else 0
        time.sleep(0.2)

    def worker_rss_mib(self) -> list[float]:
        """VmRSS of each worker (the master's children), in MiB."""
        pid = self.proc.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        sizes = []
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            if found:
                sizes.append(int(found.group(1)) / 1024)
        return sorted(sizes)

    def log_problems(self) -> int:
        """Count ERROR lines and tracebacks in the server's log."""
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(r"\bERROR\b|Traceback \(most recent call last\)", text))

    def log_tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        pid = self.proc.pid
        try:
            workers = [int(w) for w in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            workers = []
        stop_pid(self.proc)
        # A master that had to be killed leaves its workers to exit on their own: make sure.
        for worker in workers:
            try:
                if "gunicorn" in Path(f"/proc/{worker}/cmdline").read_text(errors="replace"):
                    os.kill(worker, signal.SIGKILL)
            except OSError:
                pass
        self.log_file.close()


class RedisServer:
    """A redis-server of our own on a free loopback port: no persistence, stopped at the end."""

    def __init__(self, binary: str, log_path: Path):
        import redis

        self.port = free_port()
        self.log_file = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not start (see {log_path})") from None
                time.sleep(0.1)
        self.version = self.client.info("server")["redis_version"]
        # What our own INFO calls add to a delta (measured, not assumed).
        first, second = self.commandstats(), self.commandstats()
        self.own_calls = sum(second.values()) - sum(first.values())

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def commandstats(self) -> dict[str, int]:
        return {k.removeprefix("cmdstat_"): v["calls"] for k, v in self.client.info("commandstats").items()}

    def stop(self):
        self.client.close()
        stop_pid(self.proc)
        self.log_file.close()


def parse_marked(output: str, mark: str) -> dict:
    for line in output.splitlines():
        if line.startswith(mark + " "):
            return json.loads(line[len(mark) + 1 :])
    raise BenchError(f"no {mark} line in:\n{output[-2000:]}")


class Bench:
    def __init__(self):
        self.duration = knob_int("DURATION", 5, 1)
        self.warmup = knob_int("WARMUP", 2, 0)
        self.connections = knob_int("CONNECTIONS", 8, 1)
        self.skip_million = os.environ.get("SKIP_MILLION", "").strip() not in ("", "0")
        self.pg_url = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
        wanted = [s.strip() for s in os.environ.get("SCENARIOS", ",".join(SCENARIOS)).split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(SCENARIOS))
        if unknown or not wanted:
            raise SystemExit(
                f"SCENARIOS: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SCENARIOS)}"
            )
        self.scenarios = [s for s in SCENARIOS if s in wanted]
        self.wrk = shutil.which("wrk")
        if self.wrk is None:
            raise SystemExit(
                "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or build it from "
                "https://github.com/wg/wrk, then run `make bench` again."
            )
        self.redis_server = shutil.which("redis-server")
        if self.redis_server is None:
            raise SystemExit("redis-server is not installed: `sudo apt-get install redis-server`, then run again.")
        self.tag = f"{os.getpid()}_{secrets.token_hex(2)}"
        self.tmp: Path | None = None
        self.dbs: list[str] = []
        self.servers: list[Server] = []
        self.redis: RedisServer | None = None
        self.smtp: SmtpSink | None = None
        # Requests sent so far: where the next run's users and client addresses start.
        self.offset = 0
        self.pool_used = 0  # the next line of the refresh pool
        self.pool_size = 0
        self.results: dict[tuple[str, bool], dict] = {}
        self.sql: dict[bool, dict] = {}
        self.rss: dict[bool, list[float]] = {}
        self.problems: dict[bool, int] = {}
        self.size: dict[tuple[int, bool], list[dict]] = {}

    # -------------------------------------------------------- resources

    def admin(self):
        import psycopg2

        url = urlsplit(self.pg_url)
        try:
            conn = psycopg2.connect(url._replace(path="/postgres").geturl(), connect_timeout=5)
        except psycopg2.Error as exc:
            shown = url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@")) if url.password else url
            raise BenchError(
                f"Postgres refused {shown.geturl()}: {str(exc).strip()}\n"
                "BENCH_PG_URL must name a role that may create databases, e.g. postgres://user:password@127.0.0.1:5432"
            ) from None
        conn.autocommit = True
        return conn

    def db_url(self, name: str) -> str:
        return urlsplit(self.pg_url)._replace(path="/" + name).geturl()

    def create_db(self, name: str, template: str | None = None):
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                self.dbs.append(name)
                cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        finally:
            conn.close()

    def cleanup(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave things behind
        for server in self.servers:
            try:
                server.stop()
            except Exception as exc:
                print(f"cleanup: gunicorn {server.proc.pid}: {exc}", file=sys.stderr)
        if self.redis is not None:
            try:
                self.redis.stop()
            except Exception as exc:
                print(f"cleanup: redis-server: {exc}", file=sys.stderr)
        if self.smtp is not None:
            self.smtp.stop()
        if self.dbs:
            try:
                conn = self.admin()
                with conn.cursor() as cur:
                    for name in self.dbs:
                        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.close()
            except Exception as exc:
                print(f"cleanup: could not drop {', '.join(self.dbs)}: {exc}", file=sys.stderr)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def env(self, db: str, redis_db: int | None = None) -> dict:
        env = {**self.base_env, "DATABASE_URL": self.db_url(db)}
        if redis_db is not None:
            env["REDIS_URL"] = self.redis.url(redis_db)
        return env

    def django(self, env: dict, *args, timeout: float = 600) -> str:
        """Run the in-process half in a child with `env`; return its output."""
        out = subprocess.run(
            [PYTHON, str(Path(__file__).resolve()), "--django", *map(str, args)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise BenchError(f"{' '.join(map(str, args))} failed:\n{out.stdout[-1500:]}{out.stderr[-3000:]}")
        return out.stdout + out.stderr

    def manage(self, env: dict, *args):
        out = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        if out.returncode:
            raise BenchError(f"manage.py {' '.join(args)} failed:\n{out.stdout[-1500:]}{out.stderr[-3000:]}")

    def start_server(self, name: str, env: dict) -> Server:
        server = Server(name, env, self.tmp / f"gunicorn-{name}.log")
        self.servers.append(server)
        return server

    def stop_server(self, server: Server):
        server.stop()
        self.servers.remove(server)

    # -------------------------------------------------------- load

    def wrk_run(self, server: Server, scenario: str, seconds: int, file: str = "-", count: int = 0) -> dict:
        """One wrk run. A wrong answer, or no answer at all, stops the benchmark."""
        password = NEW_PASSWORD if scenario == "register" else PASSWORD
        offset = self.pool_used if scenario == "refreshToken" else self.offset
        cmd = [self.wrk, "-t1", f"-c{self.connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(LUA)]
        cmd += [f"http://127.0.0.1:{server.port}/graphql", "--", scenario, file, str(offset), str(count)]
        cmd += [f"{self.tag}r{self.offset}x", str(USERS), password]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        try:
            res = parse_marked(out.stdout, "WRKJSON")
        except BenchError:
            raise BenchError(f"wrk failed ({' '.join(cmd)}):\n{out.stdout}{out.stderr}") from None
        sample = next((ln[7:] for ln in out.stdout.splitlines() if ln.startswith("WRKBAD ")), "")
        # Requests the server got: wrk calls request() once more before the load, to check
        # what it returns (script_verify_request), and never sends that one.
        res["served"] = max(0, res["sent"] - 1)
        if scenario == "refreshToken":
            self.pool_used += res["sent"]
        else:
            self.offset += res["sent"]
        if not res["requests"]:
            raise BenchError(f"wrk got no answers from {server.name}: is it still up?\n{server.log_tail()}")
        if res["bad"] or res["non2xx"] or res["timeouts"]:
            raise BenchError(
                f"{scenario} on {server.name}: {res['bad']} of {res['requests']} responses were wrong "
                f"({res['non2xx']} not 2xx, {res['timeouts']} timed out); the first: {sample[:400]}"
                + (
                    "\nA rate limit refused the load: relax it for the benchmark, e.g. LOGIN_RATE_PER_ACCOUNT=off, "
                    "LOGIN_RATE_PER_ADDRESS=off or REGISTER_RATE_PER_ADDRESS=off in the environment."
                    if "RATE_LIMITED" in sample
                    else ""
                )
            )
        res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
        return res

    def measure(self, server: Server, scenario: str, file: str = "-") -> dict:
        """Warm up, then one measured run; Redis commands counted across it and the drain after."""
        count = self.pool_size - self.pool_used if scenario == "refreshToken" else 0
        if self.warmup:
            warm = self.wrk_run(server, scenario, self.warmup, file, count)
            server.drain()
            if warm["exhausted"]:
                return {**warm, "exhausted": "warm-up"}
            count = self.pool_size - self.pool_used if scenario == "refreshToken" else 0
        before = self.redis.commandstats() if server.redis else None
        res = self.wrk_run(server, scenario, self.duration, file, count)
        server.drain()
        # The drain's probes can pass through one idle worker while the other still serves
        # the last request of the run: give that one a p99 latency to finish too.
        time.sleep(min(5.0, res["p99_us"] / 1e6))
        if res["exhausted"]:
            res["exhausted"] = "measured run"
        elif before is not None:
            after = self.redis.commandstats()
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            delta["info"] = delta.get("info", 0) - self.redis.own_calls
            # Per request the server served: wrk's completed ones plus the few in flight at the
            # end, which the workers still served (the drain waited for them).
            res["redis_per_request"] = sum(delta.values()) / res["served"]
            res["redis_by_command"] = {k: v / res["served"] for k, v in sorted(delta.items()) if v}
        return res

    def smoke(self, server: Server, scenario: str, tokens: dict[str, list[str]]):
        """One request of `scenario`, checked by parsing the JSON, before any load."""
        headers = {"X-Forwarded-For": client_address(5000)}
        if scenario in tokens:
            headers["Authorization"] = f"Bearer {tokens[scenario][0]}"
        if scenario.startswith("me_"):
            body = {"query": ME_QUERY}
        elif scenario == "tokenAuth":
            body = {"query": LOGIN, "variables": {"e": "user7@example.com", "p": PASSWORD}}
        elif scenario == "refreshToken":
            token = Path(self.pool_file).read_text().split()[self.pool_used]
            self.pool_used += 1
            body = {"query": REFRESH, "variables": {"r": token}}
        else:
            name = f"smoke{self.tag}{server.port}"
            body = {"query": REGISTER, "variables": {"u": name, "e": f"{name}@example.com", "p": NEW_PASSWORD}}
        status, text = http(server.port, "POST", "/graphql", body, headers)
        if not right_answer(scenario, status, text):
            raise BenchError(f"smoke {scenario} on {server.name}: WRONG answer {status} {text[:400]}")

    # -------------------------------------------------------- the run

    def run(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="gatehouse-load-"))
        self.smtp = SmtpSink()
        self.redis = RedisServer(self.redis_server, self.tmp / "redis.log")
        main_db = f"{DB_PREFIX}_{self.tag}"
        size_dbs = {USERS: f"{main_db}_1k", MILLION: f"{main_db}_1m"}
        self.base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "STATIC_ROOT": str(self.tmp / "static"),
            "TRUSTED_PROXY_COUNT": "1",
            # Tokens minted at the start must outlive the run.
            "JWT_ACCESS_TOKEN_LIFETIME": "86400",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(self.smtp.server_address[1]),
            "PYTHONUNBUFFERED": "1",
        }
        self.print_header()

        log("database, migrations, static files ...")
        self.create_db(main_db)
        env_main = self.env(main_db)
        self.manage(env_main, "migrate", "--noinput", "-v0")
        self.manage(env_main, "collectstatic", "--noinput", "-v0")
        seeded = parse_marked(self.django(env_main, "seed", 1, USERS), "SEEDJSON")
        self.hasher = seeded["hasher"]
        log(f"seeded {seeded['rows']:,} users in {seeded['copy_seconds']:.1f} s; password hasher: {self.hasher}")
        if not self.skip_million:
            for db in size_dbs.values():  # the same 1,000 users, for the size step
                self.create_db(db, template=main_db)
        tokens_file = str(self.tmp / "tokens")
        minted = parse_marked(self.django(env_main, "mint", tokens_file, TOKENS, USERS, 0), "MINTJSON")
        log(f"minted {minted['access']} access tokens (and an expired one) in {minted['seconds']:.1f} s")
        tokens = {
            "me_valid": Path(tokens_file).read_text().split(),
            "me_invalid": Path(tokens_file + ".invalid").read_text().split(),
            "me_expired": Path(tokens_file + ".expired").read_text().split(),
        }
        files = {
            "me_valid": tokens_file,
            "me_invalid": tokens_file + ".invalid",
            "me_expired": tokens_file + ".expired",
        }

        log("SQL queries per request, in process (third of three) ...")
        for redis in (False, True):
            env = self.env(main_db, 0 if redis else None)
            self.sql[redis] = parse_marked(
                self.django(env, "sqlcount", tokens_file, ",".join(self.scenarios)), "SQLJSON"
            )
        self.redis.client.flushall()  # what the in-process requests left is not the servers' cache

        servers = {
            False: self.start_server("no-redis", env_main),
            True: self.start_server("redis", self.env(main_db, 0)),
        }
        for server in servers.values():
            server.wait_ready()
        self.pool_file = tokens_file + ".refresh"
        Path(self.pool_file).write_text("")
        for i, scenario in enumerate(self.scenarios):
            if scenario == "refreshToken":
                self.prepare_refresh(env_main, servers[False])
            for redis in (False, True) if i % 2 == 0 else (True, False):  # alternate: drift hits both
                server = servers[redis]
                if scenario == "refreshToken" and self.pool_used >= self.pool_size:
                    res = {"exhausted": "before its run", "sent": 0}
                else:
                    self.smoke(server, scenario, tokens)
                    server.drain()
                    res = self.measure(server, scenario, files.get(scenario, self.pool_file))
                self.results[scenario, redis] = res
                log(f"{scenario:13s} redis={yes_no(redis):3s} " + self.brief(res))
        for redis, server in servers.items():
            self.rss[redis] = server.worker_rss_mib()
            self.problems[redis] = server.log_problems()
            self.stop_server(server)

        if not self.skip_million:
            self.size_step(size_dbs)
        self.print_report()

    def mint_refresh(self, env: dict, count: int) -> dict:
        """Append `count` never-used refresh tokens, each the first of its own session, to the pool."""
        out = str(self.tmp / f"refresh-{self.pool_size}")
        minted = parse_marked(self.django(env, "mint", out, 1, USERS, count), "MINTJSON")
        with open(self.pool_file, "a") as pool:
            pool.write(Path(out + ".refresh").read_text())
        self.pool_size += minted["refresh"]
        return minted

    def prepare_refresh(self, env: dict, server: Server):
        """Size the refresh pool for both runs (warm-ups and smoke checks included).

        A one-second probe on a small pool gives the rate; the pool then holds twice what
        that rate needs. A pool that still runs out is reported, never refilled with used tokens.
        """
        self.mint_refresh(env, PROBE_POOL)
        probe = self.wrk_run(server, "refreshToken", 1, self.pool_file, self.pool_size - self.pool_used)
        server.drain()
        rate = probe["sent"] / (probe["duration_us"] / 1e6)
        if probe["exhausted"]:  # faster than the probe could tell: bound it by the fastest scenario
            rate = max([rate, *(r["rps"] for r in self.results.values())])
        need = int(2 * 2 * rate * (self.warmup + self.duration)) + 4 * self.connections + 100
        minted = self.mint_refresh(env, need)
        log(
            f"refresh pool: probe {rate:.0f} req/s, so {need:,} more tokens (one session each), "
            f"minted in {minted['seconds']:.1f} s"
        )

    def size_step(self, dbs: dict[int, str]):
        """`me_valid` on a table of 1,000 users and on one of 1,000,000 (topped up with COPY).

        Both databases are served at once and measured in alternating rounds, each size
        right after the other with the same Redis setting (1k, 1M, then 1M, 1k), so that a
        drift in the machine's load hits both sizes alike. The tokens belong to users spread
        over the whole table.
        """
        log(f"seeding a copy to {MILLION:,} users (COPY) ...")
        seeded = parse_marked(self.django(self.env(dbs[MILLION]), "seed", USERS + 1, MILLION), "SEEDJSON")
        self.seeded = seeded
        log(
            f"seeded {seeded['rows']:,} users: COPY {seeded['copy_seconds']:.1f} s, "
            f"VACUUM ANALYZE {seeded['vacuum_seconds']:.1f} s; table: {seeded['total']:,} users"
        )
        files, servers = {}, {}
        for db_number, (users, db) in enumerate(dbs.items(), start=1):
            files[users] = str(self.tmp / f"tokens-{users}")
            self.django(self.env(db), "mint", files[users], TOKENS, users, 0)
            for redis in (False, True):
                name = f"{users}-users-{'redis' if redis else 'no-redis'}"
                servers[users, redis] = self.start_server(name, self.env(db, db_number if redis else None))
        for server in servers.values():
            server.wait_ready()
        order = [(users, redis) for redis in (False, True) for users in dbs]
        for round_ in range(SIZE_ROUNDS):
            for users, redis in order if round_ % 2 == 0 else order[::-1]:
                server = servers[users, redis]
                self.smoke_me(server, files[users])
                res = self.measure(server, "me_valid", files[users])
                self.size.setdefault((users, redis), []).append(res)
                log(f"me_valid at {users:>9,} users redis={yes_no(redis):3s} " + self.brief(res))
        for server in servers.values():
            self.stop_server(server)

    def smoke_me(self, server: Server, tokens_file: str):
        token = Path(tokens_file).read_text().split()[-1]
        headers = {"X-Forwarded-For": client_address(5000), "Authorization": f"Bearer {token}"}
        status, text = http(server.port, "POST", "/graphql", {"query": ME_QUERY}, headers)
        if not right_answer("me_valid", status, text):
            raise BenchError(f"smoke me_valid on {server.name}: WRONG answer {status} {text[:400]}")

    # -------------------------------------------------------- output

    @staticmethod
    def brief(res: dict) -> str:
        if res["exhausted"]:
            return f"refresh pool ran out ({res['exhausted']}), no figures"
        return f"{res['rps']:8.1f} req/s  p50 {fmt_ms(res['p50_us'])} ms  p99 {fmt_ms(res['p99_us'])} ms"

    def print_header(self):
        def output(*cmd):
            try:
                return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
            except OSError:
                return ""

        commit = output("git", "rev-parse", "--short", "HEAD") or "?"
        dirty = " (uncommitted changes)" if output("git", "status", "--porcelain", "--untracked-files=no") else ""
        conn = self.admin()
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            pg_version = cur.fetchone()[0].split()[0]
        conn.close()
        rates, relaxed = [], []
        for name, default in RATE_SETTINGS.items():
            value = os.environ.get(name, default).strip()
            rates.append(f"{name}={value}" + ("" if value == default else f" (default {default})"))
            if value.lower() in ("off", "none", "0"):
                relaxed.append(name)
        lines = [
            "Gatehouse load benchmark (bench/load.py)",
            f"  commit       {commit}{dirty}, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs",
            f"  server       gunicorn {' '.join(GUNICORN)} config.wsgi:application, no access log,",
            "               config.settings.production, TRUSTED_PROXY_COUNT=1, JWT_ACCESS_TOKEN_LIFETIME=86400,",
            "               mail to an SMTP sink that discards it",
            f"  services     Postgres {pg_version}, scratch databases {DB_PREFIX}_{self.tag}[_1k|_1m];",
            f"               redis-server {self.redis.version} of our own on port {self.redis.port} (no persistence)",
            f"  load         wrk -t1 -c{self.connections}, {self.warmup} s warm-up + {self.duration} s measured each,",
            "               X-Forwarded-For from 762 RFC 5737 addresses, X-Forwarded-Proto: https",
            f"  rate limits  {', '.join(rates)}",
            "               relaxed: "
            + (", ".join(relaxed) or "none (no user or address of the load comes back often enough to trip one)"),
            f"  data         {USERS:,} seeded users; me_* rotate over {TOKENS} tokens of distinct users",
            "",
        ]
        print("\n".join(lines), flush=True)

    def print_report(self):
        rows = []
        for scenario in self.scenarios:
            for redis in (False, True):
                res, sql = self.results[scenario, redis], self.sql[redis].get(scenario)
                if res["exhausted"]:
                    rows.append([scenario, yes_no(redis), f"refresh pool ran out ({res['exhausted']})", "", "", "", ""])
                    continue
                cmds = f"{res['redis_per_request']:.2f}" if redis else "-"
                rps, p50, p99 = f"{res['rps']:.1f}", fmt_ms(res["p50_us"]), fmt_ms(res["p99_us"])
                rows.append([scenario, yes_no(redis), rps, p50, p99, "?" if sql is None else str(sql), cmds])
        print()
        print(f"Password hasher: {self.hasher}")
        print()
        print_table(["scenario", "Redis", "req/s", "p50 ms", "p99 ms", "SQL/req", "Redis cmds/req"], rows, "llrrrrr")
        print()
        print("Redis commands per request, by command:")
        for scenario in self.scenarios:
            res = self.results[scenario, True]
            if not res["exhausted"]:
                by = ", ".join(f"{k} {v:.2f}" for k, v in res["redis_by_command"].items()) or "none"
                print(f"  {scenario:13s} {by}  ({res['served']:,} requests)")
        print()
        print("Worker resident memory after the load (VmRSS of the gunicorn master's children):")
        for redis in (False, True):
            sizes = ", ".join(f"{s:.1f} MiB" for s in self.rss[redis]) or "?"
            print(f"  {'with Redis   ' if redis else 'without Redis'}  {sizes}")
        print(f"ERROR lines and tracebacks in the server logs: without Redis {self.problems[False]}, ", end="")
        print(f"with Redis {self.problems[True]}")
        print()
        if self.skip_million:
            print("Size step skipped (SKIP_MILLION=1).")
            return
        seeded = self.seeded
        print(f"me_valid against the size of the user table: {TOKENS} tokens of users spread over the table,")
        print(
            f"{seeded['rows']:,} users added with COPY in {seeded['copy_seconds']:.1f} s, then VACUUM ANALYZE in "
            f"{seeded['vacuum_seconds']:.1f} s; both sizes served at once, means of {SIZE_ROUNDS} alternating rounds:"
        )
        print()
        rows = []
        for redis in (False, True):
            small, big = self.size[USERS, redis], self.size[MILLION, redis]
            mean = {
                key: {k: statistics.mean(r[k] for r in runs) for k in ("rps", "p50_us")}
                for key, runs in (("1k", small), ("1m", big))
            }
            by_round = ", ".join(f"{b['p50_us'] / s['p50_us']:.2f}" for s, b in zip(small, big, strict=True))
            rows.append(
                [
                    yes_no(redis),
                    f"{mean['1k']['rps']:.1f}",
                    fmt_ms(mean["1k"]["p50_us"]),
                    f"{mean['1m']['rps']:.1f}",
                    fmt_ms(mean["1m"]["p50_us"]),
                    f"{mean['1m']['p50_us'] / mean['1k']['p50_us']:.2f}",
                    by_round,
                    f"{mean['1m']['rps'] / mean['1k']['rps']:.2f}",
                ]
            )
        headers = ["Redis", "1k req/s", "1k p50 ms", "1M req/s", "1M p50 ms", "p50 1M/1k", "by round", "req/s 1M/1k"]
        print_table(headers, rows, "lrrrrrrr")


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def fmt_ms(us: float) -> str:
    ms = us / 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def print_table(headers: list[str], rows: list[list[str]], align: str):
    """Print a Markdown table, columns padded; `align` is l or r per column."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        padded = (c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True))
        return "| " + " | ".join(padded) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 1) + (":" if a == "r" else "-") for w, a in zip(widths, align, strict=True)) + "|")
    for row in rows:
        print(line(row))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--django":
        django_main(sys.argv[2:])
        return

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    bench = Bench()
    started = time.monotonic()
    code = 0
    try:
        bench.run()
    except BenchError as exc:
        print(f"\nbench stopped: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr, flush=True)
        code = 130
    finally:
        bench.cleanup()
    print(f"\n(whole run: {time.monotonic() - started:.0f} s; servers, redis-server and databases stopped and dropped)")
    sys.exit(code)


if __name__ == "__main__":
    main()
