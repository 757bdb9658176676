"""Serve Gatehouse exactly as the Dockerfile does and drive it over real HTTP.

Production settings, gunicorn with config/gunicorn.py, a fresh Postgres database and
Redis: migrate, collectstatic, start, then register / tokenAuth / refresh / me / logout and a
few refusals, then the housekeeping command.
Exits non-zero on the first wrong answer. Run by .ci/run.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG = "postgres://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, path, body=None, headers=None, method=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("X-Forwarded-Proto", "https")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def check(name, condition, detail=""):
    print(("ok   " if condition else "FAIL ") + name, detail if not condition else "")
    if not condition:
        raise SystemExit(1)


REDIS_URL = "redis://127.0.0.1:6379/14"


def main():
    # Rate-limit counters of an earlier run in the same window must not refuse this one.
    redis.Redis.from_url(REDIS_URL).flushdb()
    database = f"gatehouse_smoke_{os.getpid()}"
    admin = psycopg2.connect(f"{PG}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": REDIS_URL,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    server = None
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "ERROR"], cwd=ROOT, env=env, check=True
        )
        gunicorn = Path(PYTHON).with_name("gunicorn")
        server = subprocess.Popen(
            [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"], cwd=ROOT, env=env
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if call(base, "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        check("healthz", call(base, "/healthz")[0] == 200)
        check("readyz", call(base, "/readyz")[0] == 200)

        register = (
            "mutation($u:String!,$e:String!,$p:String!){ register(username:$u,email:$e,password:$p)"
            "{ user { email } token errors { field code } } }"
        )
        status, headers, raw = call(
            base,
            "/graphql",
            {"query": register, "variables": {"u": "smoke", "e": "Smoke@Example.com", "p": "a-Long-passphrase-1"}},
        )
        body = json.loads(raw)
        check("register", status == 200 and body["data"]["register"]["errors"] == [], raw[:300])
        check("register lowercases the email", body["data"]["register"]["user"]["email"] == "smoke@example.com")
        check("no-store", "no-store" in headers.get("Cache-Control", ""))

        login = "mutation($e:String!,$p:String!){ tokenAuth(email:$e,password:$p){ token refreshToken } }"
        status, _, raw = call(
            base, "/graphql", {"query": login, "variables": {"e": "SMOKE@example.com", "p": "a-Long-passphrase-1"}}
        )
        signed_in = json.loads(raw)["data"]["tokenAuth"]
        check("tokenAuth", status == 200 and signed_in["token"] and signed_in["refreshToken"], raw[:300])

        refresh = "mutation($r:String!){ refreshToken(refreshToken:$r){ token refreshToken } }"
        status, _, raw = call(base, "/graphql", {"query": refresh, "variables": {"r": signed_in["refreshToken"]}})
        rotated = json.loads(raw)["data"]["refreshToken"]
        check("refreshToken rotates", rotated["refreshToken"] != signed_in["refreshToken"], raw[:300])
        token = rotated["token"]

        status, _, raw = call(base, "/graphql", {"query": "{ me { username } }"}, {"Authorization": f"Bearer {token}"})
        check("me", json.loads(raw) == {"data": {"me": {"username": "smoke"}}}, raw[:300])
        revoke = "mutation($r:String!){ revokeToken(refreshToken:$r){ revoked } }"
        status, _, raw = call(base, "/graphql", {"query": revoke, "variables": {"r": rotated["refreshToken"]}})
        check("revokeToken", json.loads(raw)["data"]["revokeToken"]["revoked"] > 0, raw[:300])
        status, _, raw = call(base, "/graphql", {"query": "{ me { username } }"}, {"Authorization": f"Bearer {token}"})
        check("logout reaches the access token", json.loads(raw)["errors"][0]["extensions"]["code"] == "TOKEN_REVOKED")
        status, _, raw = call(base, "/graphql", {"query": refresh, "variables": {"r": signed_in["refreshToken"]}})
        check("a used refresh token is refused", "errors" in json.loads(raw), raw[:300])
        status, _, raw = call(base, "/graphql", {"query": "{ me { username } }"})
        check("me anonymous", json.loads(raw) == {"data": {"me": None}}, raw[:300])

        status, _, raw = call(base, "/graphql", {"query": login, "variables": {"e": "smoke@example.com", "p": "wrong"}})
        check("wrong password", json.loads(raw)["errors"][0]["extensions"]["code"] == "INVALID_CREDENTIALS", raw[:300])
        status, _, raw = call(base, "/graphql", {"query": "{ __schema { types { name } } }"})
        check("introspection off", json.loads(raw)["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED")
        status, _, raw = call(base, "/graphql", headers={"Accept": "text/html"})
        check("no GraphiQL", b"<html" not in raw.lower(), raw[:200])
        status, _, _ = call(
            base,
            "/graphql?query=mutation%7BtokenAuth(email:%22a@b.io%22,password:%22x%22)%7Btoken%7D%7D",
            headers={"Apollo-Require-Preflight": "1"},
        )
        check("no mutation over GET", status == 405, status)
        status, _, raw = call(base, "/graphql", b"[" * 60_000)
        check("deeply nested JSON is a 4xx", 400 <= status < 500, status)
        status, _, _ = call(base, "/static/admin/css/base.css")
        check("admin static files", status == 200, status)
        forgot = "mutation($e:String!){ sendPasswordResetEmail(email:$e){ success errors { field } } }"
        answers = [
            json.loads(call(base, "/graphql", {"query": forgot, "variables": {"e": address}})[2])
            for address in ("smoke@example.com", "nobody@example.com")
        ]
        check(
            "reset requests answer alike",
            answers[0] == answers[1] == {"data": {"sendPasswordResetEmail": {"success": True, "errors": []}}},
            answers,
        )
        # The lookup, token and mail run in a background thread after the response; no SMTP
        # server listens here, so the mail fails (logged) and the audit entries remain.
        events = []
        for _ in range(50):
            with psycopg2.connect(f"{PG}/{database}") as db, db.cursor() as cursor:
                cursor.execute("SELECT detail FROM accounts_authevent WHERE kind = 'password_reset_requested'")
                events = [row[0] for row in cursor.fetchall()]
            if len(events) == 2:
                break
            time.sleep(0.1)
        check("reset requests handled in the background", sorted(events) == ["", "no such account"], events)
        swept = subprocess.run(
            [PYTHON, "manage.py", "housekeeping"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        check("housekeeping", swept.stdout.startswith("Deleted "), swept.stdout + swept.stderr)
        print("production smoke test: all checks passed")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
