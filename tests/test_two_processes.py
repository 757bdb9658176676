"""Two server processes on one database and one Redis agree on every account change at once.

A deployment runs several gunicorn processes behind one address, and a client's next
request may reach any of them. So a session ended, a password changed, an account
deactivated, deleted or renamed, or a refresh token replayed through one process must be
seen by the other on its very next request, even after both have served (and may have
cached) the token; and the login budgets are one budget, not one per process.

The module serves Gatehouse twice with the shipped command (gunicorn, config/gunicorn.py,
production settings, one worker each) on one scratch database of the shared Postgres and
one redis-server of its own, and drives both over HTTP only: nothing here knows how a
process keeps what it knows. It needs no DATABASE_URL, so it runs in both passes of CI;
without Postgres or redis-server it skips, except in CI, where it fails.
"""

import base64
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from accounts.error_codes import AuthErrorCode
from tests.live import RedisServer, free_port, production_env, scratch_postgres

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))
POSTGRES = "postgres://postgres@127.0.0.1:5432"
PASSWORD = "a-Long-passphrase-for-two-processes"
NEW_PASSWORD = "another-Long-passphrase-2"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "the-Administrators-passphrase-9"
# The per-account budget (password checks in 300 s) that the rate-limit test exhausts; the
# other cases stay within it (the password-change case makes exactly four checks).
ACCOUNT_BUDGET = 4
REQUEST_TIMEOUT = 15
START_DEADLINE = 40

ME = "query { me { id username email } }"
ME_SESSIONS = "query { me { sessions { id current } } }"
REGISTER = (
    "mutation($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) "
    "{ user { id username email } errors { field code } } }"
)
TOKEN_AUTH = "mutation($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token refreshToken } }"
REFRESH = "mutation($r: String!) { refreshToken(refreshToken: $r) { token refreshToken } }"
REVOKE_TOKEN = "mutation($r: String!) { revokeToken(refreshToken: $r) { revoked } }"
LOGOUT_ALL = "mutation { logoutAll { success revokedSessions } }"
REVOKE_SESSION = "mutation($id: ID!) { revokeSession(id: $id) { success errors { field code } } }"
PASSWORD_CHANGE = (
    "mutation($o: String!, $n: String!) { passwordChange(oldPassword: $o, newPassword: $n) "
    "{ success token refreshToken errors { field code } } }"
)
UPDATE_ACCOUNT = (
    "mutation($u: String!) { updateAccount(username: $u) { success user { username } errors { field code } } }"
)
DELETE_ACCOUNT = "mutation($p: String!) { deleteAccount(password: $p) { success errors { field code } } }"

REVOKED = AuthErrorCode.TOKEN_REVOKED.value
INVALID = AuthErrorCode.TOKEN_INVALID.value
INVALID_CREDENTIALS = AuthErrorCode.INVALID_CREDENTIALS.value
RATE_LIMITED = AuthErrorCode.RATE_LIMITED.value


# The two processes ------------------------------------------------------------------------


@dataclass
class Server:
    """One gunicorn of the pair, spoken to as a TLS-terminating proxy would."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """Return (status, headers, body) of one request; a missing answer raises."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(
                method, path, body, {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def graphql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        status, _, answer = self.request("POST", "/graphql", body, headers)
        assert status == 200, (self.name, status, answer[:500])
        return json.loads(answer)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start(name: str, env: dict, log: Path) -> Server:
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - the image's own server command
            [GUNICORN, "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Server(name=name, port=int(env["PORT"]), process=process, log=log)


def wait_ready(server: Server) -> None:
    """Poll /readyz (database and all) until it answers 200, within START_DEADLINE seconds."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        assert server.process.poll() is None, f"{server.name} exited:\n{server.log_tail()}"
        with contextlib.suppress(OSError, http.client.HTTPException):
            if server.request("GET", "/readyz")[0] == 200:
                return
        assert time.monotonic() < deadline, (
            f"{server.name} was not ready within {START_DEADLINE} s:\n{server.log_tail()}"
        )
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    """Stop a process this module started (and its group: gunicorn's workers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=25)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def own_redis(directory: Path, stack: contextlib.ExitStack) -> str:
    """Start a redis-server of this module's own on a free port; return its URL."""
    server = RedisServer.start(directory)
    stack.callback(server.stop)
    return server.url


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    """Two production servers (A, B) sharing one Postgres database, one Redis and one set of keys."""
    tmp = tmp_path_factory.mktemp("two-processes")
    with contextlib.ExitStack() as stack:
        database_url = scratch_postgres(stack, POSTGRES, "gh_twoproc")
        redis_url = own_redis(tmp, stack)
        env = production_env(
            tmp,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            # Account mail goes nowhere, at once: nothing listens on this port.
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(free_port()),
            LOGIN_RATE_PER_ACCOUNT=f"{ACCOUNT_BUDGET}/300",
            LOGIN_RATE_PER_ADDRESS="off",
            REGISTER_RATE_PER_ADDRESS="1000/3600",
            # A replayed refresh token is taken for a stolen copy at once.
            REFRESH_TOKEN_REUSE_GRACE="0",
        )
        # The Dockerfile's steps: collectstatic at build time, migrate (once) before start.
        preparing = [
            subprocess.Popen(  # noqa: S603 - our own management commands
                [PYTHON, "manage.py", *command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for command in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"])
        ]
        for process in preparing:
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, (process.args, output.decode(errors="replace")[-3000:])
        # The administrator who deactivates an account in the admin.
        created = subprocess.run(  # noqa: S603 - our own management command
            [PYTHON, "manage.py", "createsuperuser", "--noinput"],
            cwd=ROOT, timeout=60, capture_output=True,
            env={**env, "DJANGO_SUPERUSER_EMAIL": ADMIN_EMAIL, "DJANGO_SUPERUSER_USERNAME": "admin",
                 "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
        )  # fmt: skip
        assert created.returncode == 0, created.stderr.decode(errors="replace")[-3000:]
        servers = []
        for name in ("A", "B"):
            server = start(name, {**env, "PORT": str(free_port())}, tmp / f"server-{name}.log")
            stack.callback(stop, server.process)
            servers.append(server)
        for server in servers:
            wait_ready(server)
        yield servers[0], servers[1]


# What a client does ---------------------------------------------------------------------


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def register(server: Server, name: str) -> dict:
    """Create an account through `server`; return what `me` shows of it."""
    body = server.graphql(REGISTER, {"u": name, "e": f"{name}@example.com", "p": PASSWORD})
    assert body["data"]["register"]["errors"] == [], body
    account = body["data"]["register"]["user"]
    assert account["username"] == name, body
    return account


def sign_in(server: Server, account: dict, password: str = PASSWORD) -> dict:
    """Return `tokenAuth`'s token and refreshToken."""
    body = server.graphql(TOKEN_AUTH, {"e": account["email"], "p": password})
    assert "errors" not in body, (server.name, body)
    return body["data"]["tokenAuth"]


def assert_me(server: Server, token: str, account: dict) -> None:
    body = server.graphql(ME, token=token)
    assert body == {"data": {"me": account}}, (server.name, body)


def assert_refused(server: Server, token: str, code: str = REVOKED) -> None:
    body = server.graphql(ME, token=token)
    assert body["data"] == {"me": None}, (server.name, body)
    assert codes(body) == [code], (server.name, body)


def served_by_both(pair: tuple[Server, Server], account: dict, *tokens: str) -> None:
    """Have each process serve `me` with each token twice, so that either may have cached it."""
    for _ in range(2):
        for server in pair:
            for token in tokens:
                assert_me(server, token, account)


def account_pk(account: dict) -> str:
    kind, pk = base64.b64decode(account["id"]).decode().split(":")
    assert kind == "User", account
    return pk


class FormValues(HTMLParser):
    """The values a browser would submit from a page's form, as shown (no button pressed)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            kind = attributes.get("type", "text")
            if kind in {"checkbox", "radio"}:
                if "checked" in attributes:
                    self.values[name] = attributes.get("value") or "on"
            elif kind not in {"submit", "button", "image", "reset", "file"}:
                self.values[name] = attributes.get("value") or ""
        elif tag == "select":
            self.select = name
        elif tag == "option" and self.select and "selected" in attributes:
            self.values[self.select] = attributes.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def form_values(page: str) -> dict[str, str]:
    parser = FormValues()
    parser.feed(page)
    return parser.values


class AdminBrowser:
    """The Django admin through one server, with the cookie jar and CSRF token a browser keeps."""

    def __init__(self, server: Server):
        self.server = server
        self.cookies: dict[str, str] = {}

    def send(self, method: str, path: str, form: dict | None = None):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self.cookies["csrftoken"]}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = "https://127.0.0.1"
        status, response_headers, content = self.server.request(method, path, body, headers)
        for raw in response_headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value
        return status, response_headers, content

    def log_in(self, email: str, password: str) -> None:
        status, _, content = self.send("GET", "/admin/login/?next=/admin/")
        assert status == 200, content[:500]
        status, headers, content = self.send(
            "POST", "/admin/login/?next=/admin/", {"username": email, "password": password, "next": "/admin/"}
        )
        assert (status, headers.get("Location")) == (302, "/admin/"), content[:2000]


# The cases: each changes through one process and looks through the other -------------------


def test_a_logout_through_one_process_revokes_the_token_on_the_other_at_once(pair):
    a, b = pair
    account = register(a, "logout")
    session = sign_in(b, account)
    served_by_both(pair, account, session["token"])
    # when: the session is signed out through A
    body = a.graphql(REVOKE_TOKEN, {"r": session["refreshToken"]})
    assert isinstance(body["data"]["revokeToken"]["revoked"], int), body
    # then: B's very next request with its access token is refused, as is its refresh token
    assert_refused(b, session["token"])
    body = b.graphql(REFRESH, {"r": session["refreshToken"]})
    assert codes(body) == [REVOKED], body


def test_logout_everywhere_through_one_process_revokes_every_session_on_the_other_at_once(pair):
    a, b = pair
    account = register(b, "logout-all")
    first, second = sign_in(a, account), sign_in(b, account)
    served_by_both(pair, account, first["token"], second["token"])
    # when: every session is signed out through B (register's own session too)
    body = b.graphql(LOGOUT_ALL, token=first["token"])
    assert body == {"data": {"logoutAll": {"success": True, "revokedSessions": 3}}}, body
    # then
    assert_refused(a, second["token"])
    assert_refused(a, first["token"])


def test_a_session_ended_from_another_session_through_one_process_is_revoked_on_the_other_at_once(pair):
    a, b = pair
    account = register(a, "revoke-session")
    keeper, ended = sign_in(a, account), sign_in(b, account)
    sessions = b.graphql(ME_SESSIONS, token=ended["token"])["data"]["me"]["sessions"]
    [ended_id] = [session["id"] for session in sessions if session["current"]]
    served_by_both(pair, account, keeper["token"], ended["token"])
    # when: the keeper ends the other session through A
    body = a.graphql(REVOKE_SESSION, {"id": ended_id}, token=keeper["token"])
    assert body == {"data": {"revokeSession": {"success": True, "errors": []}}}, body
    # then: B refuses the ended session at once, and only that one
    assert_refused(b, ended["token"])
    assert_me(b, keeper["token"], account)


def test_a_password_change_through_one_process_revokes_the_other_sessions_on_the_other_at_once(pair):
    a, b = pair
    account = register(b, "password-change")
    changer, other = sign_in(a, account), sign_in(b, account)
    served_by_both(pair, account, changer["token"], other["token"])
    # when: the password changes through B
    body = b.graphql(PASSWORD_CHANGE, {"o": PASSWORD, "n": NEW_PASSWORD}, token=changer["token"])
    changed = body["data"]["passwordChange"]
    assert (changed["success"], changed["errors"]) == (True, []), body
    # then: A refuses the other session at once
    assert_refused(a, other["token"])
    # then: the changing session lives on, with its old and its new access token, but its
    # old refresh token is gone (only the new one refreshes it)
    assert_me(a, changer["token"], account)
    assert_me(a, changed["token"], account)
    assert codes(a.graphql(REFRESH, {"r": changer["refreshToken"]})) == [INVALID]
    assert "errors" not in a.graphql(REFRESH, {"r": changed["refreshToken"]})
    # then: the old password no longer signs in through A, the new one does
    assert codes(a.graphql(TOKEN_AUTH, {"e": account["email"], "p": PASSWORD})) == [INVALID_CREDENTIALS]
    assert_me(a, sign_in(a, account, NEW_PASSWORD)["token"], account)


def test_a_refresh_token_replayed_through_one_process_ends_the_session_on_the_other_at_once(pair):
    a, b = pair
    account = register(a, "replay")
    session = sign_in(b, account)
    served_by_both(pair, account, session["token"])
    # given: the refresh token was used through A, and the successor served by both
    body = a.graphql(REFRESH, {"r": session["refreshToken"]})
    assert "errors" not in body, body
    successor = body["data"]["refreshToken"]
    served_by_both(pair, account, successor["token"])
    # when: the used refresh token is presented again through B, after the grace window (0 s)
    body = b.graphql(REFRESH, {"r": session["refreshToken"]})
    assert codes(body) == [REVOKED], body
    # then: A's very next request with the session's access tokens is refused, and its
    # successor refresh token too
    assert_refused(a, successor["token"])
    assert_refused(a, session["token"])
    assert codes(a.graphql(REFRESH, {"r": successor["refreshToken"]})) == [REVOKED]


def test_an_account_deactivated_in_the_admin_through_one_process_is_revoked_on_the_other_at_once(pair):
    a, b = pair
    account = register(b, "deactivated")
    session = sign_in(a, account)
    served_by_both(pair, account, session["token"])
    # when: an administrator unticks "active" on the account's page, through A
    admin = AdminBrowser(a)
    admin.log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
    change_page = f"/admin/accounts/user/{account_pk(account)}/change/"
    status, _, content = admin.send("GET", change_page)
    assert status == 200, content[:500]
    form = form_values(content.decode())
    assert (form["username"], form["email"], form.get("is_active")) == (account["username"], account["email"], "on")
    # An unticked checkbox is not sent; every other field is sent back as shown.
    del form["is_active"]
    status, headers, content = admin.send("POST", change_page, {**form, "_save": "Save"})
    assert (status, headers.get("Location")) == (302, "/admin/accounts/user/"), content[-3000:]
    # then: B refuses the account's token at once, and the account can no longer sign in
    assert_refused(b, session["token"])
    assert codes(b.graphql(TOKEN_AUTH, {"e": account["email"], "p": PASSWORD})) == [INVALID_CREDENTIALS]


def test_an_account_deleted_through_one_process_is_revoked_on_the_other_at_once(pair):
    a, b = pair
    account = register(a, "deleted")
    session = sign_in(b, account)
    served_by_both(pair, account, session["token"])
    # when
    body = b.graphql(DELETE_ACCOUNT, {"p": PASSWORD}, token=session["token"])
    assert body == {"data": {"deleteAccount": {"success": True, "errors": []}}}, body
    # then
    assert_refused(a, session["token"])


def test_an_account_renamed_through_one_process_has_its_new_name_on_the_other_at_once(pair):
    a, b = pair
    account = register(b, "before-rename")
    session = sign_in(a, account)
    served_by_both(pair, account, session["token"])
    # when
    body = a.graphql(UPDATE_ACCOUNT, {"u": "after-rename"}, token=session["token"])
    renamed = {**account, "username": "after-rename"}
    assert body["data"]["updateAccount"] == {"success": True, "user": {"username": "after-rename"}, "errors": []}, body
    # then: B's very next `me` shows the new name, and so does A's
    assert_me(b, session["token"], renamed)
    assert_me(a, session["token"], renamed)


def test_failed_sign_ins_through_both_processes_spend_one_account_budget(pair):
    a, b = pair
    account = register(a, "budget")
    wrong = {"e": account["email"], "p": "not-the-passphrase-at-all"}
    # when: the budget's attempts alternate between the processes
    for attempt in range(ACCOUNT_BUDGET):
        server = pair[attempt % 2]
        body = server.graphql(TOKEN_AUTH, wrong)
        assert codes(body) == [INVALID_CREDENTIALS], (attempt, server.name, body)
    # then: the next attempt is refused on either process, even with the right password
    for server, password in ((a, wrong["p"]), (b, wrong["p"]), (b, PASSWORD), (a, PASSWORD)):
        body = server.graphql(TOKEN_AUTH, {"e": account["email"], "p": password})
        assert codes(body) == [RATE_LIMITED], (server.name, body)
        [error] = body["errors"]
        assert 0 < error["extensions"]["retryAfter"] <= 300, body
