"""Sign-in throughput and log volume while Redis is up, frozen and gone.

Starts its own redis-server on a free port (never the shared one), migrates a SQLite
database in a temporary folder, and serves the shipped command (gunicorn with
config/gunicorn.py and the production settings) with REDIS_URL pointing at that Redis.
Then, for each phase, four client threads post `tokenAuth` with a wrong password for a
few seconds, each from its own documentation address (X-Forwarded-For behind one trusted
proxy), and the script prints requests per second, how many wrong guesses were checked
rather than refused by the budget, and the ERROR and traceback lines the server wrote:

    .venv/bin/python bench/redis_outage.py            # PHASE_SECONDS=8 LOGIN_RATE_PER_ACCOUNT=5/300

Phases: Redis up; Redis frozen (SIGSTOP: it accepts connections, never answers); Redis
killed. Every loop is bounded in time; everything started is stopped at the end.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PHASE_SECONDS = float(os.environ.get("PHASE_SECONDS", "8"))
RATE = os.environ.get("LOGIN_RATE_PER_ACCOUNT", "5/300")
THREADS = 4
LOGIN = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(base: str, address: str) -> str:
    body = json.dumps({"query": LOGIN, "variables": {"e": "alice@example.com", "p": "wrong-password"}}).encode()
    request = urllib.request.Request(base + "/graphql", data=body, method="POST")
    for name, value in (
        ("Content-Type", "application/json"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", address),
    ):
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return "failed"
    codes = [error.get("extensions", {}).get("code") for error in answer.get("errors", [])]
    return codes[0] if codes else "signed in"


def phase(base: str, seconds: float) -> dict:
    counts: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int):
        n = 0
        while time.monotonic() < deadline and n < 100_000:
            n += 1
            outcome = post(base, f"198.51.100.{index * 50 + n % 50 + 1}")
            with lock:
                counts[outcome] = counts.get(outcome, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    return {"req/s": round(total / elapsed, 1), **counts}


def main():
    folder = Path(tempfile.mkdtemp(prefix="gatehouse-redis-outage-"))
    redis_port, port = free_port(), free_port()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server is not installed")
    redis = subprocess.Popen(
        [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "STATIC_ROOT": str(folder / "static"),
        "TRUSTED_PROXY_COUNT": "1",
        "LOGIN_RATE_PER_ACCOUNT": RATE,
        "LOGIN_RATE_PER_ADDRESS": "1000/60",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = None
    try:
        for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [
                PYTHON,
                "manage.py",
                "shell",
                "-c",
                "from accounts.models import User; "
                "User.objects.create_user(username='alice', email='alice@example.com', password='a-Long-passphrase-1')",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        gunicorn = Path(PYTHON).with_name("gunicorn")
        server = subprocess.Popen(
            [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        results = {}
        results["Redis up"] = phase(base, PHASE_SECONDS)
        log_mark = (folder / "server.log").stat().st_size
        redis.send_signal(signal.SIGSTOP)
        results["Redis frozen"] = phase(base, PHASE_SECONDS)
        redis.send_signal(signal.SIGCONT)
        redis.kill()
        redis.wait(timeout=10)
        results["Redis gone"] = phase(base, PHASE_SECONDS)
        outage_log = (folder / "server.log").read_text(errors="replace")[log_mark:]
        print(f"rate per account {RATE}; {THREADS} threads; {PHASE_SECONDS:g} s a phase")
        for name, figures in results.items():
            print(f"{name:13} {figures}")
        lines = outage_log.splitlines()
        print(
            f"outage log: {len(lines)} lines, {sum(' ERROR ' in line for line in lines)} ERROR, "
            f"{sum('Traceback' in line for line in lines)} tracebacks, "
            f"{sum(' WARNING ' in line for line in lines)} WARNING"
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if redis.poll() is None:
            redis.send_signal(signal.SIGCONT)
            redis.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
